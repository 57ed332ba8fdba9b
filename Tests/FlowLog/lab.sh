#!/usr/bin/env bash
# The flow log and audit mode with real packets, in throwaway network namespaces:
#   - an audit zone's denied flows pass, an enforced zone's do not;
#   - `zonewall log --json` beside `zonewall run` shows both, with the right zones and ports,
#     within a second;
#   - a flood of denied packets: the kernel's rate limit holds, the daemon's CPU stays low, and
#     nothing is lost on the way to zonewall;
#   - suggest round trip: the suggestion, applied, admits the observed flows and nothing next to them.
#
#   Tests/FlowLog/lab.sh     (root; scripts/test runs it)
#
# Never touches the machine's own namespace: the daemon runs with --netns zw-…, nft only with
# `ip netns exec zw-…`.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [[ $(id -u) -ne 0 ]]; then
    echo "############################################################"
    echo "# SKIPPED flow log lab tests: they need root (netns)."
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

WORK=$(mktemp -d /tmp/zw-flowlog-XXXXXX)
D=$WORK/policies
mkdir -p "$D"
cat >"$D/zones.yaml" <<'YAML'
zones:
  legacy: {members: [192.0.2.10, "2001:db8:1::10"], audit: true}
  web:    {members: [198.51.100.20, "2001:db8:2::20"]}
  db:     {members: [203.0.113.30, "2001:db8:3::30"]}
allow:
  - {from: web, to: db, ports: [tcp/5432]}
  - {from: db, to: web, ports: [tcp/8080]}
settings: {denied: reject, log_denied: true, log_group: 7, log_rate: 200}
YAML

ID="" DAEMON="" LOGGER="" NSID=""
cleanup() {
    [[ -n $LOGGER ]] && kill -KILL "$LOGGER" 2>/dev/null
    [[ -n $DAEMON ]] && kill -KILL "$DAEMON" 2>/dev/null
    lab_down "$ID"
    [[ -n $NSID ]] && rm -f /run/zonewall/flows-ns-"$NSID"-*.json /run/zonewall/flowlog-ns-"$NSID".sock
    rm -rf "$WORK"
}
trap cleanup EXIT

ID=$(lab_up "$D") || { echo "lab_up failed"; exit 1; }
R=zw-$ID-r
NSID=$(stat -L -c '%d-%i' "/run/netns/$R")  # the flow summary is named by the namespace's identity
EP=$LAB_STATE/$ID/endpoints
ns_of() { awk -v n="$1" '$1 == n {print $2}' "$EP"; }
addr_of() { awk -v n="$1" -v f="$2" '$1 == n {print (f == 4 ? $3 : $4)}' "$EP"; }
LEGACY=$(ns_of legacy) WEB=$(ns_of web) DB4=$(addr_of db 4) DB6=$(addr_of db 6) LEGACY4=$(addr_of legacy 4) WEB4=$(addr_of web 4)
probe() { LAB_TIMEOUT=1 lab_probe_one "$1" "$2" tcp "$3" "$4" | cut -d' ' -f1; }

"$ZW" run --netns "$R" --policies "$D" --state-file "$WORK/state.json" >"$WORK/daemon.log" 2>&1 &
DAEMON=$!
SOCK=/run/zonewall/flowlog-ns-$NSID.sock  # named by the namespace's identity, as the flow summary
for _ in $(seq 200); do [[ -S $SOCK ]] && grep -q '"inSync" : true' "$WORK/state.json" 2>/dev/null && break; sleep 0.05; done
check "daemon is up and owns the flow log socket" test -S "$SOCK"
check "the socket is root-only (0600)" test "$(stat -c %a "$SOCK")" = 600
if id nobody >/dev/null 2>&1; then
    check "a non-root user cannot read the daemon's stream" bash -c "! setpriv --reuid=nobody --regid=nogroup --clear-groups $ZW log --netns $R --policies $D --duration 0.5 2>/dev/null | grep -q ."
fi

"$ZW" log --json --netns "$R" --policies "$D" >"$WORK/log.jsonl" 2>"$WORK/log.err" &
LOGGER=$!
sleep 0.5

# within_a_second JQ_FILTER: the log shows a matching record within a second.
within_a_second() {
    local deadline=$(($(date +%s%N) + 1000000000))
    while :; do
        jq -e -s "map(select($1)) | length > 0" "$WORK/log.jsonl" >/dev/null 2>&1 && return 0
        (($(date +%s%N) > deadline)) && { echo "  (log so far:)"; cat "$WORK/log.jsonl"; return 1; }
        sleep 0.02
    done
}
echo "== audit zone passes, enforced zone does not; the log shows both within a second"
check "legacy → db tcp/5432 (denied by policy, legacy audited) passes (v4)" test "$(probe "$LEGACY" 4 "$DB4" 5432)" = ok
check "  log: audit legacy → db tcp 5432 (v4)" within_a_second ".verdict == \"audit\" and .from == \"legacy\" and .to == \"db\" and .proto == \"tcp\" and .port == 5432 and .src == \"$LEGACY4\" and .dst == \"$DB4\" and .hook == \"forward\""
check "web → db tcp/8080 (denied, both enforced) is refused (v4)" test "$(probe "$WEB" 4 "$DB4" 8080)" = refused
check "  log: denied web → db tcp 8080" within_a_second ".verdict == \"denied\" and .from == \"web\" and .to == \"db\" and .port == 8080 and .src == \"$WEB4\""
check "legacy → db tcp/8080 passes too (v6)" test "$(probe "$LEGACY" 6 "$DB6" 8080)" = ok
check "  log: audit legacy → db tcp 8080 (v6)" within_a_second ".verdict == \"audit\" and .from == \"legacy\" and .port == 8080 and .dst == \"$DB6\""
check "web → db tcp/5432 (allowed) passes" test "$(probe "$WEB" 4 "$DB4" 5432)" = ok
sleep 0.3
check "log: the allowed flow is not logged" bash -c "! jq -e -s 'map(select(.from == \"web\" and .port == 5432)) | length > 0' $WORK/log.jsonl >/dev/null"
check "log: every line has exactly the documented keys" bash -c "jq -e -s 'all(keys == [\"count\",\"dst\",\"from\",\"hook\",\"port\",\"proto\",\"src\",\"time\",\"to\",\"verdict\"])' $WORK/log.jsonl >/dev/null"

echo "== flood: $((FLOOD_RATE=20000)) denied UDP packets/s for 3 s against a 200/s limit"
cat >"$WORK/flood.py" <<'PY'
import socket, sys, time
dst, rate, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent, start = 0, time.monotonic()
while True:
    now = time.monotonic() - start
    if now >= secs: break
    want = int(now * rate)
    while sent < want:
        # A new source port per packet: each is a new conntrack entry, so each is logged.
        try: s.sendto(b"x", (dst, 9000 + sent % 50))
        except OSError: pass
        sent += 1
print(sent)
PY
before=$(awk '{print $14 + $15}' "/proc/$DAEMON/stat")
lines_before=$(wc -l <"$WORK/log.jsonl")
sent=$(ip netns exec "$WEB" python3 "$WORK/flood.py" "$DB4" "$FLOOD_RATE" 3)
sleep 1.5
after=$(awk '{print $14 + $15}' "/proc/$DAEMON/stat")
ticks=$(getconf CLK_TCK)
cpu=$(( (after - before) * 100 / ticks * 100 / 450 ))   # percent of one core over 4.5 s
logged=$(tail -n +$((lines_before + 1)) "$WORK/log.jsonl" | jq -s 'map(select(.proto == "udp")) | map(.count) | add // 0')
echo "  sent $sent, logged $logged, not logged (the kernel's rate limit) $((sent - logged)); daemon CPU ${cpu}% of a core"
# The kernel's bucket starts full with a second's worth plus the burst, then refills at the rate.
check "the kernel's rate limit holds (logged ≤ 200/s × 3 s + 200 + burst 20 + slack)" test "$logged" -le 900
check "the log is not starved (logged ≥ 200/s × 2.5 s)" test "$logged" -ge 500
check "daemon CPU stays low (< 20% of a core)" test "$cpu" -lt 20
"$ZW" status --netns "$R" --policies "$D" --state-file "$WORK/state.json" >"$WORK/status.txt" 2>&1
sleep 5.5   # the daemon writes its flow summary every 5 s
"$ZW" status --netns "$R" --policies "$D" --state-file "$WORK/state.json" >"$WORK/status.txt" 2>&1
cat "$WORK/status.txt" | sed -n '1,6p'
check "status shows the top denied pair of the last hour" grep -qE "denied +web → db: [0-9]+ packets" "$WORK/status.txt"
check "no logged packet was lost on the way to zonewall" grep -q ", 0 lost before reading" "$WORK/status.txt"
mkdir -p "$WORK/other" && cp "$D"/*.yaml "$WORK/other/"
"$ZW" status --netns "$R" --policies "$WORK/other" --state-file '' >"$WORK/status-other.txt" 2>&1
check "status with other policies shows no flow summary (it is this daemon's)" bash -c "! grep -q 'flow log:' '$WORK/status-other.txt'"

echo "== SIGINT ends zonewall log cleanly, after writing every packet logged before it"
# Three denied datagrams, then SIGINT 50 ms after the last: each packet reaches the follower as
# the kernel logs it (no batching held back in the kernel), and what has arrived is written.
ip netns exec "$WEB" python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for p in (7001, 7002, 7003):
    s.sendto(b'x', ('$DB4', p)); time.sleep(0.01)"
sleep 0.05
kill -INT "$LOGGER"
rc=0; wait "$LOGGER" || rc=$?
LOGGER=""
check "zonewall log exits 0 on SIGINT" test "$rc" -eq 0
late=$(jq -s 'map(select(.proto == "udp" and .port >= 7001 and .port <= 7003)) | length' "$WORK/log.jsonl")
check "the 3 packets logged 50 ms before SIGINT are written ($late)" test "$late" -eq 3

echo "== text mode, replaying what the daemon kept (--since)"
"$ZW" log --netns "$R" --policies "$D" --since 5m --duration 1 >"$WORK/text.txt" 2>&1
sed -n '1,4p' "$WORK/text.txt"
check "text mode: an aligned header" grep -qE "^TIME +VERDICT +HOOK +FROM +TO +SRC +DST +PROTO +PORT +COUNT$" "$WORK/text.txt"
check "text mode: each value starts under its column's name" python3 -c '
import re, sys
lines = open(sys.argv[1]).read().splitlines()
head = [m.start() for m in re.finditer(r"\S+", next(l for l in lines if l.startswith("TIME")))]
rows = [l for l in lines if re.match(r"^20[0-9][0-9]-", l)]
assert rows, "no rows"
for r in rows:
    starts = [m.start() for m in re.finditer(r"\S+", r)]
    assert starts == head, (r, starts, head)
' "$WORK/text.txt"
check "text mode: the replayed audit flow and the rule that would admit it" \
    grep -qE "^  allow: \{from: legacy, to: db, ports: \[tcp/5432\]\}" "$WORK/text.txt"

echo "== a follower outlives a daemon restart"
"$ZW" log --json --netns "$R" --policies "$D" >"$WORK/log2.jsonl" 2>"$WORK/log2.err" &
LOGGER=$!
sleep 0.5
kill -TERM "$DAEMON"; wait "$DAEMON" 2>/dev/null
rm -f "$WORK/state.json" /run/zonewall/flows-ns-"$NSID"-*.json  # what the new daemon writes tells when it is ready
"$ZW" run --netns "$R" --policies "$D" --state-file "$WORK/state.json" >"$WORK/daemon2.log" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do grep -q "connected to the daemon's flow log again" "$WORK/log2.err" 2>/dev/null && break; sleep 0.05; done
check "the follower says the stream closed and connects again" grep -q "connected to the daemon's flow log again" "$WORK/log2.err"
check "  … and is still running" kill -0 "$LOGGER"
# The new daemon is ready once it is in sync and holds the NFLOG group (its flow summary says so).
for _ in $(seq 100); do
    grep -q '"inSync" : true' "$WORK/state.json" 2>/dev/null && cat /run/zonewall/flows-ns-"$NSID"-*.json 2>/dev/null | grep -q '"bound":true' && break
    sleep 0.05
done
ip netns exec "$WEB" python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('$DB4', 7101))"
check "  … and writes what the new daemon logs" bash -c "for _ in \$(seq 40); do jq -e -s 'map(select(.port == 7101)) | length == 1' '$WORK/log2.jsonl' >/dev/null 2>&1 && exit 0; sleep 0.05; done; echo '  (the follower wrote:)'; cat '$WORK/log2.jsonl' '$WORK/log2.err'; echo '  (the daemon said:)'; tail -n 20 '$WORK/daemon2.log'; exit 1"
# An edit of the policy reaches the running follower: web renamed front, then back.
cp "$D/zones.yaml" "$WORK/zones.orig"
sed 's/\bweb\b/front/g' "$WORK/zones.orig" >"$WORK/zones.front" && mv "$WORK/zones.front" "$D/zones.yaml"
sleep 1.5
ip netns exec "$WEB" python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('$DB4', 7102))"
check "  … and classifies with the edited policy (from front, not web)" bash -c "for _ in \$(seq 40); do jq -e -s 'map(select(.port == 7102 and .from == \"front\")) | length == 1' '$WORK/log2.jsonl' >/dev/null 2>&1 && exit 0; sleep 0.05; done; exit 1"
cp "$WORK/zones.orig" "$WORK/zones.back" && mv "$WORK/zones.back" "$D/zones.yaml"
sleep 1.5
kill -INT "$LOGGER"; rc=0; wait "$LOGGER" || rc=$?; LOGGER=""
check "  … and ends cleanly on SIGINT ($rc)" test "$rc" -eq 0

echo "== suggest round trip"
"$ZW" suggest --from-log "$WORK/log.jsonl" --policies "$D" >"$WORK/suggested.yaml"
cat "$WORK/suggested.yaml" | sed -n '1,12p'
mkdir -p "$WORK/enforced"
sed 's/, audit: true//' "$D/zones.yaml" >"$WORK/enforced/zones.yaml"
cp "$WORK/suggested.yaml" "$WORK/enforced/50-suggested.yaml"
# Expectations from the observed flows (between zones), plus unobserved neighbours.
jq -r -s 'map(select(.from != "world" and .to != "world" and (.proto == "tcp" or .proto == "udp"))) | unique_by([.from, .to, .proto, .port]) | .[] | "  - {from: \(.from), to: \(.to), port: \(.proto)/\(.port), verdict: allow}"' \
    "$WORK/log.jsonl" >"$WORK/expect.txt"
{ echo "expect:"; cat "$WORK/expect.txt"
  echo "  - {from: legacy, to: db, port: tcp/5431, verdict: deny}"
  echo "  - {from: legacy, to: db, port: tcp/5433, verdict: deny}"
  echo "  - {from: web, to: db, port: tcp/8081, verdict: deny}"; } >"$WORK/enforced/90-expect.yaml"
check "suggest printed allow rules" grep -q "^allow:" "$WORK/suggested.yaml"
check "zonewall test: observed flows allowed, neighbours denied" "$ZW" test --policies "$WORK/enforced"
"$ZW" test --policies "$WORK/enforced" | tail -3

echo "$passed passed, $failed failed"
((failed == 0))
