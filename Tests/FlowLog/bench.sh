#!/usr/bin/env bash
# The flow log's benchmark, run by `scripts/bench flowlog` (root, namespaces only):
#   1. forwarding of an allowed flow with the daemon running, audit off vs `settings: audit: true`
#      (iperf3 -u -l 64 packets/s, alternated runs, medians; target ≥ 0.97×);
#   2. the log path at 10,000 denied packets/s with `log_rate: 10000`: what the kernel logged
#      reaches `zonewall log --json` (beside `zonewall run`) without loss and without lag.
#
#   Tests/FlowLog/bench.sh ZONEWALL [--reps N] [--duration S]
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ZW=${1:?usage: bench.sh ZONEWALL [--reps N] [--duration S]}; shift
REPS=3 DURATION=4
while (($#)); do case $1 in --reps) REPS=$2; shift ;; --duration) DURATION=$2; shift ;; *) echo "unknown $1" >&2; exit 1 ;; esac; shift; done
[[ $(id -u) -eq 0 ]] || { echo "bench flowlog: needs root" >&2; exit 1; }
export ZONEWALL=$ZW
# shellcheck source=../../scripts/lab
source "$ROOT/scripts/lab"

WORK=$(mktemp -d /tmp/zw-flowbench-XXXXXX)
D=$WORK/policies
mkdir -p "$D"
zones() {
    cat <<'YAML'
zones:
  legacy: {members: [192.0.2.10]}
  web:    {members: [198.51.100.20]}
  db:     {members: [203.0.113.30]}
allow:
  - {from: web, to: db, ports: [tcp/5200-5210, udp/5200-5210]}   # iperf3 on 5205: the lab listens on the edges
YAML
}
zones >"$D/zones.yaml"
echo "settings: {log_denied: true, log_group: 7, log_rate: 10000}" >"$D/settings.yaml"

ID="" DAEMON="" LOGGER="" SERVER="" NSID=""
cleanup() {
    for p in $LOGGER $DAEMON $SERVER; do kill -KILL "$p" 2>/dev/null; done
    lab_down "$ID"
    [[ -n $NSID ]] && rm -f "/run/zonewall/flowlog-ns-$NSID.sock" /run/zonewall/flows-ns-"$NSID"-*.json
    rm -f "$WORK/flows.json"
    rm -rf "$WORK"
}
trap cleanup EXIT

ID=$(lab_up "$D") || { echo "lab_up failed"; exit 1; }
R=zw-$ID-r EP=$LAB_STATE/$ID/endpoints
NSID=$(stat -L -c '%d-%i' "/run/netns/$R")  # the flow log socket is named by the namespace's identity
ns_of() { awk -v n="$1" '$1 == n {print $2}' "$EP"; }
addr_of() { awk -v n="$1" '$1 == n {print $3}' "$EP"; }
WEB=$(ns_of web) DBNS=$(ns_of db) DB4=$(addr_of db)

"$ZW" run --netns "$R" --policies "$D" --state-file "$WORK/state.json" --flow-summary-file "$WORK/flows.json" >"$WORK/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 200); do grep -q '"inSync" : true' "$WORK/state.json" 2>/dev/null && [[ -S /run/zonewall/flowlog-ns-$NSID.sock ]] && break; sleep 0.05; done

# set_audit on|off: the daemon reloads; the kernel change is elements of audit_v4 only.
set_audit() {
    local want=$1
    if [[ $want == on ]]; then echo "settings: {log_denied: true, log_group: 7, log_rate: 10000, audit: true}" >"$D/settings.yaml"
    else echo "settings: {log_denied: true, log_group: 7, log_rate: 10000}" >"$D/settings.yaml"; fi
    for _ in $(seq 100); do
        local n; n=$(ip netns exec "$R" nft -j list set inet zonewall audit_v4 | jq '[.nftables[].set.elem // [] | length] | add')
        { [[ $want == on && $n -gt 0 ]] || [[ $want == off && $n -eq 0 ]]; } && return 0
        sleep 0.05
    done
    echo "audit did not turn $want" >&2; return 1
}

ip netns exec "$DBNS" iperf3 -s -B "$DB4" -p 5205 >/dev/null 2>&1 &
SERVER=$!
sleep 0.5
# pps: received packets/s of one iperf3 UDP run (64-byte payloads, unlimited rate).
pps() {
    ip netns exec "$WEB" iperf3 -u -b 0 -l 64 -c "$DB4" -p 5205 -t "$DURATION" -J 2>/dev/null \
        | jq '.end.sum as $s | (($s.packets - $s.lost_packets) / $s.seconds) | floor'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

[[ ${SKIP_FORWARD:-0} == 1 ]] && REPS=0
echo "== flowlog 1: allowed flow web → db udp/5205 through zonewall run, audit off vs on ($REPS × ${DURATION}s each, alternated)"
off=() on=()
for i in $(seq "$REPS"); do
    set_audit off && off+=("$(pps)")
    set_audit on && on+=("$(pps)")
done
m_off=$(median "${off[@]}") m_on=$(median "${on[@]}")
ratio=$(awk -v a="$m_on" -v b="$m_off" 'BEGIN{printf "%.3f", a/b}')
echo "  audit off: ${off[*]} pkt/s (median $m_off)"
echo "  audit on:  ${on[*]} pkt/s (median $m_on)"
echo "  ratio on/off: $ratio (target ≥ 0.97): $(awk -v r="$ratio" 'BEGIN{print (r >= 0.97) ? "PASS" : "MISS"}')"
set_audit off

echo "== flowlog 2: 10,000 denied packets/s for 5 s, log_rate 10000, read by zonewall log --json beside zonewall run"
"$ZW" log --json --netns "$R" --policies "$D" >"$WORK/log.jsonl" 2>"$WORK/log.err" &
LOGGER=$!
sleep 0.5
kill -0 "$LOGGER" 2>/dev/null || { echo "zonewall log did not start:"; cat "$WORK/log.err"; exit 1; }
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
        # A new 5-tuple per packet (ports 10000-59999 round robin): each is a new flow, so each is logged.
        try: s.sendto(b"x", (dst, 10000 + sent % 50000))
        except OSError: pass
        sent += 1
print(sent, f"{time.monotonic() - start:.3f}")
PY
cpu0=$(awk '{print $14 + $15}' "/proc/$DAEMON/stat") lcpu0=$(awk '{print $14 + $15}' "/proc/$LOGGER/stat")
t0=$(date +%s%N)
read -r sent secs < <(ip netns exec "$WEB" python3 "$WORK/flood.py" "$DB4" 10000 5)
tend=$(date +%s%N)
# Lag: how long after the flood ends the log stops growing.
last=-1 stable_at=$tend
while :; do
    n=$(wc -l <"$WORK/log.jsonl")
    if [[ $n != "$last" ]]; then last=$n stable_at=$(date +%s%N); fi
    (($(date +%s%N) - stable_at > 500000000)) && break
    sleep 0.05
done
cpu1=$(awk '{print $14 + $15}' "/proc/$DAEMON/stat") lcpu1=$(awk '{print $14 + $15}' "/proc/$LOGGER/stat")
ticks=$(getconf CLK_TCK)
wall=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{print (b - a) / 1e9}')
logged=$(jq -s 'map(select(.proto == "udp" and .verdict == "denied")) | map(.count) | add // 0' "$WORK/log.jsonl")
lag=$(awk -v a="$tend" -v b="$stable_at" 'BEGIN{v = (b - a) / 1e9; printf "%.2f", v < 0 ? 0 : v}')
kill -INT "$LOGGER"; wait "$LOGGER" 2>/dev/null; LOGGER=""; [[ -s $WORK/log.err ]] && { echo "  zonewall log said:"; head -5 "$WORK/log.err"; }
sleep 5.5
lost=$(jq .lost "$WORK/flows.json" 2>/dev/null || echo "?")
echo "  sent $sent in ${secs}s ($(awk -v n="$sent" -v s="$secs" 'BEGIN{printf "%d", n/s}')/s); logged to zonewall log: $logged ($(awk -v a="$logged" -v b="$sent" 'BEGIN{printf "%.4f", a/b}') of sent)"
echo "  the daemon's count of packets lost before reading: $lost; last record written ${lag}s after the flood ended"
echo "  CPU over ${wall}s: daemon $(awk -v t=$((cpu1 - cpu0)) -v k="$ticks" -v w="$wall" 'BEGIN{printf "%.0f", 100 * t / k / w}')% of a core, zonewall log $(awk -v t=$((lcpu1 - lcpu0)) -v k="$ticks" -v w="$wall" 'BEGIN{printf "%.0f", 100 * t / k / w}')%"
ok=$(awk -v a="$logged" -v b="$sent" -v l="$lag" -v lost="$lost" 'BEGIN{print (a >= 0.99 * b && l < 1 && lost == 0) ? "PASS" : "MISS"}')
echo "  target (every packet under the limit logged, lag < 1 s, nothing lost): $ok"
