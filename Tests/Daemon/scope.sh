#!/usr/bin/env bash
# Three hosts, each running `zonewall run --scope local` against the same etcd, with real packets:
# every host enforces only the rules of the zones it holds, instances register and leave with
# `zonewall member add`, and a host follows its own address changes (rtnetlink).
#
#   Tests/Daemon/scope.sh        (root; scripts/test runs it)
#
# etcd listens on 127.0.0.1 only (random ports, temporary data); the hosts are namespaces
# zw-<id>-h1..h3 behind a router namespace. Everything is removed on exit, also on failure.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [[ $(id -u) -ne 0 ]]; then
    echo "############################################################"
    echo "# SKIPPED three-host scope tests: they need root (netns)."
    echo "############################################################"
    exit 0
fi
# shellcheck source=../../scripts/lab
source "$ROOT/scripts/lab"
ZW=$(lab_zonewall) || exit 1
LABBIN=$(dirname "$ZW")/zonewall-lab

passed=0 failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

ID=$(printf '%04x%02x' $((RANDOM)) $((RANDOM % 256)))
WORK=$(mktemp -d /tmp/zw-scope-XXXXXX)
D=$WORK/policies
mkdir -p "$D"
cat >"$D/zones.yaml" <<'YAML'
zones:
  web: {members: [192.0.2.200]}
  api: {members: [192.0.2.201]}
  db: {members: [192.0.2.202]}
allow:
  - {from: web, to: api, ports: [tcp/8080]}
  - {from: api, to: db, ports: [tcp/5432]}
settings: {denied: reject}
YAML

ETCD="" PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    [[ -n $ETCD ]] && kill -KILL "$ETCD" 2>/dev/null
    wait 2>/dev/null
    for ns in $(ip netns list | awk '{print $1}' | grep "^zw-$ID-"); do
        pids=$(ip netns pids "$ns" 2>/dev/null); [[ -n $pids ]] && kill -KILL $pids 2>/dev/null
        ip netns delete "$ns" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# etcd on two free ports; tried again on others if it exits (a port taken after all).
for attempt in 1 2 3; do
    CPORT=$(lab_free_port) PPORT=$(lab_free_port)
    EP=127.0.0.1:$CPORT
    rm -rf "$WORK/etcd"
    etcd --name zw --data-dir "$WORK/etcd" --listen-client-urls "http://$EP" --advertise-client-urls "http://$EP" \
        --listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
        --initial-cluster "zw=http://127.0.0.1:$PPORT" --log-level error >"$WORK/etcd.log" 2>&1 &
    ETCD=$!
    up=""
    for _ in $(seq 100); do
        kill -0 "$ETCD" 2>/dev/null || break
        ETCDCTL_API=3 etcdctl --dial-timeout 1s --command-timeout 1s --endpoints "$EP" endpoint health >/dev/null 2>&1 && { up=1; break; }
        sleep 0.1
    done
    [[ -n $up ]] && break
    kill -KILL "$ETCD" 2>/dev/null; wait "$ETCD" 2>/dev/null; ETCD=""
    echo "etcd did not start (attempt $attempt): $(tail -n 1 "$WORK/etcd.log")"
done
[[ -n $ETCD ]] || { echo "scope: etcd would not start"; exit 1; }

# Router zw-ID-r; hosts zw-ID-hN with 198.51.100.N, each behind its own veth.
R=zw-$ID-r
ip netns add "$R"; ip -n "$R" link set lo up
ip netns exec "$R" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0 >/dev/null
for n in 1 2 3; do
    h=zw-$ID-h$n
    ip netns add "$h"; ip -n "$h" link set lo up
    ip -n "$R" link add "r$n" type veth peer name eth0 netns "$h"
    ip -n "$R" link set "r$n" up; ip -n "$h" link set eth0 up
    ip -n "$h" addr add "198.51.100.$n/32" dev eth0
    ip -n "$h" route add 198.51.100.254/32 dev eth0
    ip -n "$h" route add default via 198.51.100.254 dev eth0
    ip -n "$R" addr add 198.51.100.254/32 dev "r$n"
    ip -n "$R" route add "198.51.100.$n/32" dev "r$n"
    ip netns exec "$h" sysctl -qw net.ipv4.icmp_ratelimit=0 >/dev/null
    ip netns exec "$h" "$LABBIN" serve --tcp 8080 5432 </dev/null >/dev/null 2>&1 &
    PIDS+=($!)
    "$ZW" run --netns "$h" --policies "$D" --state-file "$WORK/state$n.json" --state-directory "$WORK/var$n" \
        --scope local --etcd-endpoints "$EP" >"$WORK/daemon$n.log" 2>&1 &
    PIDS+=($!)
done
for n in 1 2 3; do
    for _ in $(seq 200); do grep -q '"inSync" : true' "$WORK/state$n.json" 2>/dev/null && break; sleep 0.05; done
done

H1=zw-$ID-h1 H2=zw-$ID-h2 H3=zw-$ID-h3
probe() { LAB_TIMEOUT=1 lab_probe_one "$1" 4 tcp "$2" "$3" | cut -d' ' -f1; }
until_probe() {
    local deadline=$(($(date +%s%N) + ${5:-2} * 1000000000)) got
    while :; do
        got=$(probe "$1" "$2" "$3")
        [[ $got == "$4" ]] && return 0
        (($(date +%s%N) > deadline)) && { echo "  (got $got, wanted $4)"; return 1; }
        sleep 0.05
    done
}
table() { ip netns exec "$1" nft list table inet zonewall 2>/dev/null; }
has_chain() { table "$1" | grep -q "chain $2 {"; }
no_chain() { ! has_chain "$@"; }
until_true() { local s=$1; shift; for _ in $(seq $((s * 20))); do "$@" && return 0; sleep 0.05; done; return 1; }

echo "== three hosts (lab $ID), etcd $EP; no instance registered yet"
check "h1 → h2 tcp/8080: nobody's zone yet, not governed" until_probe "$H1" 198.51.100.2 8080 ok
check "every host: input and output only, no forward chain" bash -c "! ip netns exec $H1 nft list table inet zonewall | grep -q 'hook forward'"

member() { "$ZW" member add --etcd-endpoints "$EP" --zone "$1" --address "$2" --id "$3" --ttl 5s >>"$WORK/member.log" 2>&1 & }
member web 198.51.100.1 h1; WEB=$!; PIDS+=($WEB)
member api 198.51.100.2 h2; API=$!; PIDS+=($API)
member db 198.51.100.3 h3; DB=$!; PIDS+=($DB)
echo "== web, api and db instances registered on h1, h2, h3"
check "h1 (web) programs web's rules only: z_web, no z_api" until_true 3 bash -c "$(declare -f table has_chain); has_chain $H1 z_web && ! has_chain $H1 z_api"
check "h3 (db) programs api → db, which names its zone: z_api, no z_web" until_true 3 bash -c "$(declare -f table has_chain); has_chain $H3 z_api && ! has_chain $H3 z_web"
check "h2 (api) programs both" until_true 3 bash -c "$(declare -f table has_chain); has_chain $H2 z_api && has_chain $H2 z_web"
check "web → api tcp/8080 allowed (h1 → h2)" until_probe "$H1" 198.51.100.2 8080 ok
check "web → db tcp/5432 denied by h1's output" until_probe "$H1" 198.51.100.3 5432 refused
check "api → db tcp/5432 allowed (h2 → h3)" until_probe "$H2" 198.51.100.3 5432 ok
check "db → api tcp/8080 denied (h3 → h2)" until_probe "$H3" 198.51.100.2 8080 refused

echo "== the api instance leaves"
kill -TERM "$API"; wait "$API" 2>/dev/null
check "h1 → h2 tcp/8080 now web → world: denied" until_probe "$H1" 198.51.100.2 8080 refused
check "h2 holds no zone: its table has no zone chain" until_true 3 bash -c "$(declare -f table has_chain); ! has_chain $H2 z_api && ! has_chain $H2 z_web"

echo "== a host follows its own addresses"
member api 198.51.100.22 h2b; API=$!; PIDS+=($API)
sleep 1
check "api's new address is not on h2 yet: h2 still holds no zone" bash -c "$(declare -f table has_chain); ! has_chain $H2 z_api"
ip -n "$H2" addr add 198.51.100.22/32 dev eth0
ip -n "$R" route add 198.51.100.22/32 dev r2
check "address added on h2: api becomes local there (rtnetlink → recompiled)" until_true 3 bash -c "$(declare -f table has_chain); has_chain $H2 z_api"
check "web → api at the new address allowed" until_probe "$H1" 198.51.100.22 8080 ok
ip -n "$H2" addr del 198.51.100.22/32 dev eth0
check "address removed: h2 drops api's rules" until_true 3 bash -c "$(declare -f table has_chain); ! has_chain $H2 z_api"

# status without --scope (the daemon's ZONEWALL_SCOPE may live in its environment file only)
# compares as the daemon runs.
out=$("$ZW" status --netns "$H1" --policies "$D" --state-file "$WORK/state1.json" --state-directory "$WORK/var1" 2>&1); rc=$?
check "status with no --scope compares as the scoped daemon runs: in sync (exit $rc)" \
    bash -c '[[ $1 -eq 0 ]] && grep -q "compared as the daemon runs: --scope local" <<<"$2"' _ "$rc" "$out"

echo "scope: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
