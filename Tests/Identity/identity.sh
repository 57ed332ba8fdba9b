#!/usr/bin/env bash
# Identity zones with real packets: processes moved into test cgroups, in throwaway network
# namespaces. Two units with one address (only one reaches the db), a unit listener that
# accepts only its rules' zones next to a plain host listener, loopback between units,
# host → unit denied, uid-based egress.
#
#   ZONEWALL=.build/debug/zonewall Tests/Identity/identity.sh      (root; scripts/test runs it)
#
# Cgroups are made under the cgroup2 mount found in /proc/self/mountinfo, named zw-<random>,
# and removed on exit; no other cgroup is touched. nft is never run; zonewall only with --netns.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [[ $(id -u) -ne 0 ]]; then
    echo "############################################################"
    echo "# SKIPPED identity packet tests: they need root (netns, cgroups)."
    echo "############################################################"
    exit 0
fi
ZW=${ZONEWALL:-$ROOT/.build/debug/zonewall}
CG=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' /proc/self/mountinfo)
[[ -n $CG ]] || { echo "# SKIPPED identity packet tests: no cgroup2 mount"; exit 0; }

T=zw-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
H=$T-h R=$T-r C=$T-c
WORK=$(mktemp -d /tmp/zw-identity-XXXXXX)
PIDS=()
passed=0 failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    # Whatever still runs in the test's own cgroups is the test's.
    for f in $(find "$CG/$T" -name cgroup.procs 2>/dev/null); do xargs -r kill <"$f" 2>/dev/null; done
    wait 2>/dev/null
    sleep 0.2
    # Children first; each must be empty of processes (they were killed above).
    for d in $(find "$CG/$T" -depth -type d 2>/dev/null); do rmdir "$d" 2>/dev/null; done
    ip netns del "$H" 2>/dev/null
    ip netns del "$R" 2>/dev/null
    ip netns del "$C" 2>/dev/null
    rm -rf "$WORK"
    if [[ -n ${FLOWS:-} ]]; then pkill -KILL -f "$FLOWS" 2>/dev/null; rm -rf "$FLOWS"; fi
}
trap cleanup EXIT INT TERM

ip netns add "$H" && ip netns add "$R" || exit 1
ip link add "${T}a" netns "$H" type veth peer name "${T}b" netns "$R" 2>/dev/null ||
    { ip link add zwa$$ type veth peer name zwb$$ && ip link set zwa$$ netns "$H" && ip link set zwb$$ netns "$R"; }
HI=$(ip -n "$H" -o link | awk -F': ' '$2 !~ /^lo/ {print $2}' | cut -d@ -f1)
RI=$(ip -n "$R" -o link | awk -F': ' '$2 !~ /^lo/ {print $2}' | cut -d@ -f1)
ip -n "$H" addr add 192.0.2.1/24 dev "$HI"; ip -n "$H" link set "$HI" up; ip -n "$H" link set lo up
ip -n "$R" addr add 192.0.2.2/24 dev "$RI"; ip -n "$R" link set "$RI" up; ip -n "$R" link set lo up
# A partner network routed through $H, arriving on interface zwpart0 (the interface zone).
ip netns add "$C" || exit 1
ip link add zwpart0 netns "$H" type veth peer name eth0 netns "$C" || exit 1
ip -n "$H" addr add 198.51.100.1/24 dev zwpart0; ip -n "$H" link set zwpart0 up
ip -n "$C" addr add 198.51.100.2/24 dev eth0; ip -n "$C" link set eth0 up; ip -n "$C" link set lo up
ip -n "$C" route add default via 198.51.100.1
ip -n "$R" route add 198.51.100.0/24 via 192.0.2.1
# An address of $H's in an address zone (local), for what partner may reach on this host.
ip -n "$H" addr add 203.0.113.1/32 dev lo
ip netns exec "$H" sysctl -qw net.ipv4.ip_forward=1

U=zwt-${T#zw-}
mkdir -p "$CG/$T/system.slice/$U-billing.service" "$CG/$T/system.slice/$U-reports.service" "$CG/$T/system.slice/$U-pg.service"
# A cgroup at level 10 (nested containers, user sessions): below the 8 levels matched before.
DEEPPATH=/$T/d2/d3/d4/d5/d6/d7/d8/d9/d10
mkdir -p "$CG$DEEPPATH"

mkdir -p "$WORK/p"
cat >"$WORK/p/policy.yaml" <<YAML
zones:
  billing: {units: [$U-billing.service]}
  reports: {units: [$U-reports.service]}
  pg: {units: [$U-pg.service]}
  ops: {users: ["4242"]}
  db: {members: [192.0.2.2]}
  partner: {interfaces: ["zwpart*"]}
  local: {members: [203.0.113.1]}
  deep: {cgroups: ["$DEEPPATH"]}
allow:
  - {from: deep, to: db, ports: [tcp/443]}
  - {from: billing, to: db, ports: [tcp/5432]}
  - {from: billing, to: pg, ports: [tcp/5432]}
  - {from: db, to: pg, ports: [tcp/5432]}
  - {from: db, to: host, ports: [tcp/2222]}
  - {from: ops, to: db, ports: [tcp/443]}
  - {from: partner, to: db, ports: [tcp/5432]}
  - {from: partner, to: local, ports: [tcp/2224]}
settings: {failsafe: [tcp/2223]}
YAML

# Runs a command in unit cgroup $1 (moved there first, so every socket it opens is the unit's) inside $H.
in_unit() { local unit=$1; shift; sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG/$T/system.slice/$U-$unit.service" nsenter --net=/run/netns/"$H" "$@"; }
in_host() { nsenter --net=/run/netns/"$H" "$@"; }
in_deep() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG$DEEPPATH" nsenter --net=/run/netns/"$H" "$@"; }
# connect HOW... TARGET PORT: exit 0 if a TCP connection is established within 2 s.
connect() { local port=${*: -1} target=${*: -2:1}; "${@:1:$#-2}" nc -z -w 2 "$target" "$port" 2>/dev/null; }
expect_ok() { local what=$1; shift; if connect "$@"; then pass "$what"; else fail "$what (was refused or timed out)"; fi; }
expect_no() { local what=$1; shift; if connect "$@"; then fail "$what (connected)"; else pass "$what"; fi; }

# Servers: on the remote db; a pg-unit listener on 5432 and 5433 and a plain host listener on 2222 in $H.
for port in 5432 443; do ip netns exec "$R" socat TCP-LISTEN:$port,fork,reuseaddr EXEC:/bin/true & PIDS+=($!); done
# `( exec … ) &`: the recorded pid is the server itself, not a subshell around it.
for port in 5432 5433; do (exec sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG/$T/system.slice/$U-pg.service" \
    nsenter --net=/run/netns/"$H" socat TCP-LISTEN:$port,fork,reuseaddr EXEC:/bin/true) & PIDS+=($!); done
for port in 2222 2223 2224; do (exec nsenter --net=/run/netns/"$H" socat TCP-LISTEN:$port,fork,reuseaddr EXEC:/bin/true) & PIDS+=($!); done
sleep 0.5

out=$("$ZW" apply --netns "$H" --policies "$WORK/p" 2>&1) || { echo "$out"; fail "zonewall apply"; exit 1; }
echo "$out" | sed 's/^/  apply: /'

expect_ok "billing unit → db tcp/5432 (rule billing → db)" in_unit billing 192.0.2.2 5432
expect_no "reports unit, same address → db tcp/5432 (no rule)" in_unit reports 192.0.2.2 5432
expect_no "plain host process → db tcp/5432 (host → db has no rule)" in_host 192.0.2.2 5432
expect_ok "db → pg unit listener tcp/5432 (rule db → pg)" ip netns exec "$R" 192.0.2.1 5432
expect_no "db → pg unit listener tcp/5433 (rule is for 5432 only)" ip netns exec "$R" 192.0.2.1 5433
expect_ok "db → plain host listener tcp/2222 (rule db → host)" ip netns exec "$R" 192.0.2.1 2222
expect_ok "loopback billing → pg tcp/5432 (rule billing → pg)" in_unit billing 127.0.0.1 5432
expect_no "loopback reports → pg tcp/5432 (no rule)" in_unit reports 127.0.0.1 5432
expect_no "loopback host → pg tcp/5432 (host → unit needs a rule)" in_host 127.0.0.1 5432
expect_ok "loopback host → host tcp/2222 (not governed)" in_host 127.0.0.1 2222
expect_ok "uid 4242 → db tcp/443 (rule ops → db)" in_host setpriv --reuid=4242 --regid=4242 --clear-groups 192.0.2.2 443
expect_no "root → db tcp/443 (host → db has no rule)" in_host 192.0.2.2 443
expect_ok "a process in a level-10 cgroup → db tcp/443 (rule deep → db)" in_deep 192.0.2.2 443
expect_no "… the same process → db tcp/5432 (no rule)" in_deep 192.0.2.2 5432
expect_ok "interface zone: partner (arriving on zwpart0) → db tcp/5432, forwarded" ip netns exec "$C" 192.0.2.2 5432
expect_no "interface zone: partner → db tcp/443 (no rule)" ip netns exec "$C" 192.0.2.2 443
expect_ok "interface zone: partner → this host's failsafe port tcp/2223 (failsafe comes before identities)" ip netns exec "$C" 198.51.100.1 2223
expect_ok "interface zone: partner → local (a zoned address of this host) tcp/2224 (rule partner → local)" ip netns exec "$C" 203.0.113.1 2224
expect_no "interface zone: partner → this host's unzoned address tcp/2224 (no partner → host rule)" ip netns exec "$C" 198.51.100.1 2224

# The daemon: resolves at start, then follows a unit restart (cgroup removed and recreated with a
# new id) with element changes only.
"$ZW" run --netns "$H" --policies "$WORK/p" --state-file "$WORK/state.json" --resync-interval 600 >"$WORK/daemon.log" 2>&1 &
DPID=$!; PIDS+=($DPID)
BILLING=$CG/$T/system.slice/$U-billing.service
for _ in $(seq 100); do grep -q "cgroup id $(stat -c %i "$BILLING")" "$WORK/state.json" 2>/dev/null && break; sleep 0.05; done
# JSONEncoder writes "/" as "\/".
if sed 's#\\/#/#g' "$WORK/state.json" 2>/dev/null | grep -qF "billing: /$T/system.slice/$U-billing.service (cgroup id $(stat -c %i "$BILLING"), level 3)"; then
    pass "zonewall run resolved the billing unit at start (state shows path, id, level)"
else
    fail "zonewall run did not show the billing cgroup in its state"; cat "$WORK/daemon.log"
fi
expect_ok "daemon: billing unit → db tcp/5432" in_unit billing 192.0.2.2 5432
lines=$(wc -l <"$WORK/daemon.log")
start=$(date +%s%N)
rmdir "$BILLING" && mkdir "$BILLING"
NEW=$(stat -c %i "$BILLING")
for _ in $(seq 400); do grep -q "cgroup id $NEW," "$WORK/state.json" 2>/dev/null && break; sleep 0.005; done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
if grep -q "cgroup id $NEW," "$WORK/state.json"; then pass "restart followed: new cgroup id $NEW enforced after $ms ms (≤ 1000)"; else fail "restart not followed within 2 s"; fi
tail -n +$((lines + 1)) "$WORK/daemon.log" | grep -E "appeared|vanished|applied" | sed 's/^/  daemon: /'
expect_ok "no gap for other zones during the restart: db → pg tcp/5432" ip netns exec "$R" 192.0.2.1 5432
expect_ok "after the restart: billing unit → db tcp/5432" in_unit billing 192.0.2.2 5432
expect_no "after the restart: reports unit → db tcp/5432" in_unit reports 192.0.2.2 5432
if tail -n +$((lines + 1)) "$WORK/daemon.log" | grep -q "replaced table\|full resync"; then fail "the restart replaced the table"; else pass "the restart changed elements only (no table replacement in the log)"; fi

# Revocation by socket owner: three long-lived flows from one address of $H to db tcp/7000, sent
# by the billing unit, the reports unit and uid 4242 (ops), and two over loopback to the pg unit's
# tcp/7100, sent by billing and reports. Each edit removes one sender's rules; its flows must fail
# within a second while the others keep running. The conntrack entries look alike but for the
# source port: only the socket table (sock_diag) tells their owners apart.
TRICKLE=$ROOT/Tests/Daemon/trickle.py
FLOWS=$(mktemp -d /tmp/zw-identity-flows-XXXXXX); chmod 1777 "$FLOWS"
(exec ip netns exec "$R" /usr/bin/python3 "$TRICKLE" serve tcp 192.0.2.2 7000) & PIDS+=($!)
(exec sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG/$T/system.slice/$U-pg.service" \
    nsenter --net=/run/netns/"$H" /usr/bin/python3 "$TRICKLE" serve tcp 127.0.0.1 7100) & PIDS+=($!)
# The clients connect once, without retrying: wait until both servers listen (python's start
# can take longer than the rules' apply on a loaded machine, and a refused connect is final).
listening() { for _ in $(seq 200); do ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0; sleep 0.05; done; return 1; }
listening "$R" 7000 || fail "the db server did not listen on tcp/7000"
listening "$H" 7100 || fail "the pg unit's server did not listen on tcp/7100"
rules() {  # rules FROM:TO:PORT...: tcp rules, written in one rename
    { echo "allow:"; for r in "$@"; do IFS=: read -r f t p <<<"$r"; echo "  - {from: $f, to: $t, ports: [tcp/$p]}"; done; } >"$WORK/p/.flows.new"
    mv "$WORK/p/.flows.new" "$WORK/p/flows.yaml"
}
applied_count() { grep -c "applied" "$WORK/daemon.log"; }
wait_applied() { for _ in $(seq 100); do [[ $(applied_count) -gt $1 ]] && return 0; sleep 0.05; done; return 1; }
n=$(applied_count); rules billing:db:7000 reports:db:7000 ops:db:7000 billing:pg:7100 reports:pg:7100
wait_applied "$n" || fail "the daemon did not apply the flow rules"
flow() {  # flow NAME SRC DST PORT HOW...: a trickle client
    local name=$1 src=$2 dst=$3 port=$4; shift 4
    ("$@" /usr/bin/python3 "$TRICKLE" client tcp "$src" "$dst" "$port" "$FLOWS/$name") 2>/dev/null & PIDS+=($!); disown $!
}
flow billing 192.0.2.1 192.0.2.2 7000 in_unit billing
flow reports 192.0.2.1 192.0.2.2 7000 in_unit reports
flow ops 192.0.2.1 192.0.2.2 7000 in_host setpriv --reuid=4242 --regid=4242 --clear-groups
flow lo-billing 127.0.0.1 127.0.0.1 7100 in_unit billing
flow lo-reports 127.0.0.1 127.0.0.1 7100 in_unit reports
alive() { for _ in $(seq 100); do [[ -s $FLOWS/$1 ]] && read -r st _ c <"$FLOWS/$1" && [[ $st == alive && $c -ge 5 ]] && return 0; sleep 0.05; done; return 1; }
# cut_within_1s NAME T0: no echo later than 1 s after T0.
cut_within_1s() {
    for _ in $(seq 60); do [[ $(cut -d' ' -f1 "$FLOWS/$1") == failed ]] && break; sleep 0.05; done
    read -r st _ _ last <"$FLOWS/$1"
    [[ $st == failed ]] || { echo "  $1 still $st"; return 1; }
    local after; after=$(echo "$last - $2" | bc)
    echo "  $1: last echo $(printf '%.3f' "$after") s after the save"
    (( $(echo "$after <= 1" | bc) ))
}
growing() { local a b; read -r _ _ a <"$FLOWS/$1"; sleep 0.5; read -r st _ b <"$FLOWS/$1"; [[ $st == alive && $b -gt $a ]]; }
if alive billing && alive reports && alive ops && alive lo-billing && alive lo-reports; then
    pass "five flows running: to db tcp/7000 from billing, reports and uid 4242; over loopback to pg tcp/7100 from billing and reports"
    t0=$(date +%s.%N); rules billing:db:7000 ops:db:7000 billing:pg:7100
    if cut_within_1s reports "$t0"; then pass "reports lost its rules: its flow to db was cut within 1 s"; else fail "the reports unit's flow to db was not cut within 1 s"; fi
    if cut_within_1s lo-reports "$t0"; then pass "… and its loopback flow to pg too"; else fail "the reports unit's loopback flow to pg was not cut within 1 s"; fi
    if growing billing; then pass "the billing unit's flow (same address, same port) keeps running"; else fail "the billing unit's flow stopped"; fi
    if growing lo-billing; then pass "the billing unit's loopback flow to pg keeps running"; else fail "the billing unit's loopback flow stopped"; fi
    if growing ops; then pass "uid 4242's flow keeps running"; else fail "uid 4242's flow stopped"; fi
    if grep "revoked established flow" "$WORK/daemon.log" | grep -q "from=reports"; then
        pass "the revocation is logged with from=reports"
    else
        fail "no revocation logged for reports"; grep -i revo "$WORK/daemon.log" | tail -5
    fi
    # A false revocation of an allowed flow would not show as a cut (with tcp_loose its next
    # packet is admitted as a new flow again), so the log must not name billing at all.
    if grep "revoked established flow" "$WORK/daemon.log" | grep -q "from=billing"; then
        fail "a billing flow was revoked although billing kept its rules"
    else
        pass "no billing flow was revoked (the log names none)"
    fi
    t0=$(date +%s.%N); rules billing:db:7000 billing:pg:7100
    if cut_within_1s ops "$t0"; then pass "ops lost its rule: uid 4242's flow was cut within 1 s"; else fail "uid 4242's flow was not cut within 1 s"; fi
    if growing billing && growing lo-billing; then pass "the billing unit's two flows still run"; else fail "a billing unit's flow stopped"; fi
    if grep "revoked established flow" "$WORK/daemon.log" | grep -q "from=billing"; then fail "a billing flow was revoked"; fi
else
    fail "the long-lived flows did not start"
    for f in billing reports ops lo-billing lo-reports; do echo "  $f: $(cat "$FLOWS/$f" 2>/dev/null)"; done
fi
pkill -KILL -f "$FLOWS" 2>/dev/null
rm -rf "$FLOWS"
kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null

echo "identity packet tests: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
