#!/usr/bin/env bash
# `zonewall run --etcd-endpoints` with a real etcd and real packets, in throwaway namespaces:
# a put admits traffic within a second, a delete and a lease expiry withdraw it, enforcement
# continues while etcd is down (also across a daemon restart), new puts are followed once it is
# back, a compaction does not disturb the watch, and `member add` registers, keeps alive,
# withdraws on SIGTERM and expires with its TTL after SIGKILL.
#
#   Tests/Daemon/etcd.sh        (root; scripts/test runs it)
#
# etcd listens on 127.0.0.1 only, on random free ports, with a temporary data directory; it is
# killed and removed on exit, also on failure. The daemon programs only its lab namespace.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [[ $(id -u) -ne 0 ]]; then
    echo "############################################################"
    echo "# SKIPPED etcd daemon tests: they need root (netns)."
    echo "############################################################"
    exit 0
fi
# shellcheck source=../../scripts/lab
source "$ROOT/scripts/lab"
ZW=$(lab_zonewall) || exit 1
export ZONEWALL=$ZW

passed=0 failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

WORK=$(mktemp -d /tmp/zw-etcd-XXXXXX)
D=$WORK/policies
mkdir -p "$D"
cat >"$D/zones.yaml" <<'YAML'
zones:
  client: {members: [192.0.2.10, "2001:db8:1::10"]}
  server: {members: [198.51.100.20, "2001:db8:2::20"]}
allow:
  - {from: client, to: server, ports: [tcp/8080]}
settings: {denied: reject}
YAML

CPORT=$(lab_free_port) PPORT=$(lab_free_port) MPORT=$(lab_free_port)
EP=127.0.0.1:$CPORT
ETCD="" DAEMON="" MEMBER="" ID=""
start_etcd() {
    etcd --name zw --data-dir "$WORK/etcd" --listen-client-urls "http://$EP" --advertise-client-urls "http://$EP" \
        --listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
        --initial-cluster "zw=http://127.0.0.1:$PPORT" --log-level error >>"$WORK/etcd.log" 2>&1 &
    ETCD=$!
    for _ in $(seq 100); do ETCDCTL_API=3 etcdctl --endpoints "$EP" endpoint health >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "etcd did not start"; cat "$WORK/etcd.log"; return 1
}
ctl() { ETCDCTL_API=3 etcdctl --endpoints "$EP" "$@"; }
cleanup() {
    [[ -n $MEMBER ]] && kill -KILL "$MEMBER" 2>/dev/null
    [[ -n $DAEMON ]] && kill -KILL "$DAEMON" 2>/dev/null
    [[ -n $ETCD ]] && kill -KILL "$ETCD" 2>/dev/null
    wait 2>/dev/null
    lab_down "$ID"
    rm -rf "$WORK"
}
trap cleanup EXIT

start_etcd || exit 1
ID=$(lab_up "$D") || { echo "lab_up failed"; exit 1; }
R=zw-$ID-r
EPS=$LAB_STATE/$ID/endpoints
ns_of() { awk -v n="$1" '$1 == n {print $2}' "$EPS"; }
addr_of() { awk -v n="$1" -v f="$2" '$1 == n {print (f == 4 ? $3 : $4)}' "$EPS"; }
WORLD=$(ns_of world) WORLD4=$(addr_of world 4) WORLD6=$(addr_of world 6) SERVER4=$(addr_of server 4) SERVER6=$(addr_of server 6)

probe() { local a; [[ $2 == 4 ]] && a=$SERVER4 || a=$SERVER6; LAB_TIMEOUT=1 lab_probe_one "$1" "$2" tcp "$a" "$3" | cut -d' ' -f1; }
# until_probe NS FAMILY PORT WANT [SECONDS]: polls (1 s by default); true when WANT comes in time.
until_probe() {
    local deadline=$(($(date +%s%N) + ${5:-1} * 1000000000)) got
    while :; do
        got=$(probe "$1" "$2" "$3")
        [[ $got == "$4" ]] && return 0
        (($(date +%s%N) > deadline)) && { echo "  (got $got, wanted $4)"; return 1; }
        sleep 0.05
    done
}
STATE=$WORK/state.json
start_daemon() {
    rm -f "$STATE"
    "$ZW" run --netns "$R" --policies "$D" --state-file "$STATE" --state-directory "$WORK/var" \
        --metrics-address "127.0.0.1:$MPORT" --etcd-endpoints "$EP" >>"$WORK/daemon.log" 2>&1 &
    DAEMON=$!
    for _ in $(seq 200); do
        [[ -s $STATE ]] && grep -q '"inSync" : true' "$STATE" && return 0
        sleep 0.05
    done
    echo "daemon did not become ready"; cat "$WORK/daemon.log"; return 1
}
state_has() { grep -q "$1" "$STATE"; }
metric() { curl -s "http://127.0.0.1:$MPORT/metrics" | awk -v m="$1" '$1 == m {print $2+0}'; }
# until_true SECONDS CMD…
until_true() { local s=$1; shift; for _ in $(seq $((s * 20))); do "$@" && return 0; sleep 0.05; done; return 1; }
put() { ctl put "/zonewall/members/$1" "{\"addresses\": [$2]}" "${@:3}" >/dev/null; }

start_daemon || exit 1
echo "== lab $ID, etcd $EP, daemon pid $DAEMON"
check "initial: the world host is denied server tcp/8080" until_probe "$WORLD" 4 8080 refused
check "status: etcd connected" until_true 2 state_has '"connected" : true'
check "metrics: zonewall_etcd_connected 1" until_true 2 test "$(metric zonewall_etcd_connected)" = 1

echo "== register and withdraw"
put client/i1 "\"$WORLD4\""
check "put admits the new member within a second (v4)" until_probe "$WORLD" 4 8080 ok
ctl del /zonewall/members/client/i1 >/dev/null
check "delete withdraws it" until_probe "$WORLD" 4 8080 refused
LEASE=$(ctl lease grant 2 | awk '{print $2}')
put client/leased "\"$WORLD6\"" --lease="$LEASE"
check "leased put admits (v6)" until_probe "$WORLD" 6 8080 ok
check "lease expiry withdraws it" until_probe "$WORLD" 6 8080 refused 5

echo "== bad keys are ignored, logged once, counted; the daemon goes on"
ctl put /zonewall/members/nosuch/x '{"addresses": ["192.0.2.99"]}' >/dev/null
ctl put /zonewall/members/client/bad '{"addresses": ["192.0.2.99"], "units": ["x.service"]}' >/dev/null
ctl put /zonewall/members/client/bad2 'not json' >/dev/null
put client/i2 "\"$WORLD4\""
check "a good put after bad ones is followed" until_probe "$WORLD" 4 8080 ok
check "the rejections are counted (3)" until_true 2 test "$(metric zonewall_etcd_rejected_keys_total)" = 3
check "each logged once" test "$(grep -c 'key ignored' "$WORK/daemon.log")" -eq 3
check "  … unknown zone named" grep -q "zone 'nosuch' is not declared" "$WORK/daemon.log"
check "  … unknown field named" grep -q "unknown field(s) 'units'" "$WORK/daemon.log"
check "daemon still running" kill -0 "$DAEMON"
# The daemon runs with --state-directory $WORK/var: status finds its etcd members there without
# being told (before, it read the default directory and reported the members as extra elements).
status_in_sync() { "$ZW" status --netns "$R" --policies "$D" --state-file "$STATE" >"$WORK/status-members.txt" 2>&1; grep -q "^in sync" "$WORK/status-members.txt"; }
check "status without --state-directory: in sync, the daemon's etcd members counted" until_true 3 status_in_sync
# A bad key's bytes reach the log escaped: no forged line, no terminal escape.
ctl put "/zonewall/members/client/$(printf 'esc\x1b]0;x\x07\nforged line')" 'nope' >/dev/null
check "a key with control characters is logged escaped, on one line" \
    until_true 2 grep -qF 'client/esc\x1b]0;x\x07\nforged line' "$WORK/daemon.log"
check "  … and forges no line of its own" bash -c "! grep -q '^forged line' '$WORK/daemon.log'"

echo "== etcd failures"
kill -KILL "$ETCD"; wait "$ETCD" 2>/dev/null; ETCD=""
check "etcd killed: status says not connected" until_true 5 state_has '"connected" : false'
check "  … metrics: zonewall_etcd_connected 0" test "$(metric zonewall_etcd_connected)" = 0
check "  … enforcement continues with the last members" until_probe "$WORLD" 4 8080 ok
"$ZW" status --netns "$R" --policies "$D" --state-file "$STATE" >"$WORK/status.txt" 2>&1
check "  … zonewall status shows it" grep -q "NOT CONNECTED, last known members kept" "$WORK/status.txt"
kill -TERM "$DAEMON"; wait "$DAEMON"; DAEMON=""
ip netns exec "$R" nft delete table inet zonewall  # the restart must rebuild from the cache, not adopt
start_daemon || exit 1
check "daemon restarted while etcd is down starts with the last known members" until_probe "$WORLD" 4 8080 ok
start_etcd || exit 1
check "etcd back: connected again" until_true 10 state_has '"connected" : true'
put client/i3 "\"$WORLD6\""
check "new puts are followed after the restart" until_probe "$WORLD" 6 8080 ok 2

echo "== a restart without a member cache waits for etcd's list"
kill -TERM "$DAEMON"; wait "$DAEMON"; DAEMON=""
rm -f "$WORK/var/etcd-members.json"
start_daemon || exit 1
# The table left in force holds the etcd members: a first commit of the files alone would have
# removed them (and revoked their flows) until the list came a second later.
check "the first commit already holds the etcd members (no change to the table in force)" \
    jq -e '(.lastApplyChanges // 0) == 0' "$STATE"
check "  … and the members' access never lapsed" test "$(probe "$WORLD" 6 8080)" = ok
REV=$(ctl put /zonewall/members/other/z '{"addresses": []}' -w json | jq -r .header.revision)
ctl compact "$REV" --physical >/dev/null
ctl del /zonewall/members/client/i3 >/dev/null
check "after a compaction the watch still follows (delete)" until_probe "$WORLD" 6 8080 refused
ctl del /zonewall/members/client/i2 >/dev/null
check "  … and again" until_probe "$WORLD" 4 8080 refused

echo "== zonewall member add"
"$ZW" member add --etcd-endpoints "$EP" --zone client --address "$WORLD4" --id sidecar --ttl 3s >"$WORK/member.log" 2>&1 &
MEMBER=$!
check "member add registers" until_probe "$WORLD" 4 8080 ok 2
sleep 4  # beyond the TTL: only the keep-alives hold it
check "  … and keeps the lease alive past its TTL" test "$(probe "$WORLD" 4 8080)" = ok
check "  … member list shows it" bash -c "'$ZW' member list --etcd-endpoints '$EP' --zone client | grep -q '^client	sidecar	$WORLD4'"
kill -TERM "$MEMBER"; wait "$MEMBER"; rc=$?; MEMBER=""
check "SIGTERM: exits 0 ($rc)" test "$rc" -eq 0
check "  … withdraws at once (revoked)" until_probe "$WORLD" 4 8080 refused
"$ZW" member add --etcd-endpoints "$EP" --zone client --address "$WORLD4" --id sidecar --ttl 3s >>"$WORK/member.log" 2>&1 &
MEMBER=$!
check "member add again" until_probe "$WORLD" 4 8080 ok 2
kill -KILL "$MEMBER"; wait "$MEMBER" 2>/dev/null; MEMBER=""
check "SIGKILL: still a member right after" test "$(probe "$WORLD" 4 8080)" = ok
check "  … expires with the TTL" until_probe "$WORLD" 4 8080 refused 5

kill -TERM "$DAEMON"; wait "$DAEMON"; rc=$?; DAEMON=""
check "daemon SIGTERM exits 0 ($rc)" test "$rc" -eq 0
echo "etcd: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
