#!/usr/bin/env bash
# Acceptance tests of `zonewall run` with real packets, in throwaway network namespaces:
# edits change traffic within a second, bad edits keep the old policy, drift is repaired,
# no gap during SIGKILL + restart and 200 reloads, and shutdown behaves.
#
#   Tests/Daemon/acceptance.sh        (root; scripts/test runs it)
#
# Never touches the machine's own namespace: the daemon runs with --netns zw-…, nft only
# with `ip netns exec zw-…`.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [[ $(id -u) -ne 0 ]]; then
    echo "############################################################"
    echo "# SKIPPED daemon acceptance tests: they need root (netns)."
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

WORK=$(mktemp -d /tmp/zw-daemon-XXXXXX)
D=$WORK/policies
mkdir -p "$D"
cat >"$D/zones.yaml" <<'YAML'
zones:
  client: {members: [192.0.2.10, "2001:db8:1::10"]}
  server: {members: [198.51.100.20, "2001:db8:2::20"]}
  other:  {members: [203.0.113.30, "2001:db8:3::30"]}
YAML
cat >"$D/rules.yaml" <<'YAML'
allow:
  - {from: client, to: server, ports: [tcp/8080]}
  - {from: other, to: server, ports: [tcp/9090]}
settings: {denied: reject}
YAML
cp "$D/zones.yaml" "$WORK/zones.orig"; cp "$D/rules.yaml" "$WORK/rules.orig"

ID=""
DAEMON=""
GONE=""
cleanup() {
    [[ -n $DAEMON ]] && kill -KILL "$DAEMON" 2>/dev/null
    [[ -n $GONE ]] && ip netns delete "$GONE" 2>/dev/null
    lab_down "$ID"
    rm -rf "$WORK"
}
trap cleanup EXIT

ID=$(lab_up "$D") || { echo "lab_up failed"; exit 1; }
R=zw-$ID-r
EP=$LAB_STATE/$ID/endpoints
ns_of() { awk -v n="$1" '$1 == n {print $2}' "$EP"; }
addr_of() { awk -v n="$1" -v f="$2" '$1 == n {print (f == 4 ? $3 : $4)}' "$EP"; }
CLIENT=$(ns_of client) OTHER=$(ns_of other) SERVER4=$(addr_of server 4) SERVER6=$(addr_of server 6)
OTHER4=$(addr_of other 4)

# probe NS FAMILY PORT -> ok|refused|timeout…
probe() { local a; [[ $2 == 4 ]] && a=$SERVER4 || a=$SERVER6; LAB_TIMEOUT=1 lab_probe_one "$1" "$2" tcp "$a" "$3" | cut -d' ' -f1; }
# until_probe NS FAMILY PORT WANT: polls for up to 1 s; true when the probe gives WANT in time.
until_probe() {
    local deadline=$(($(date +%s%N) + 1000000000)) got
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
    local running; running=$(grep -c 'zonewall running' "$WORK/daemon.log" 2>/dev/null || true)
    "$ZW" run --netns "$R" --policies "$D" --state-file "$STATE" --resync-interval 60 "$@" >>"$WORK/daemon.log" 2>&1 &
    DAEMON=$!
    for _ in $(seq 200); do
        [[ -s $STATE ]] && grep -q '"inSync" : true' "$STATE" \
            && (($(grep -c 'zonewall running' "$WORK/daemon.log") > ${running:-0})) && return 0
        sleep 0.05
    done
    echo "daemon did not become ready"; cat "$WORK/daemon.log"; return 1
}
table_text() { ip netns exec "$R" nft list table inet zonewall 2>/dev/null; }
in_sync() { "$ZW" status --netns "$R" --policies "$D" --state-file "$STATE" >/dev/null; }

start_daemon || exit 1
echo "== lab $ID, daemon pid $DAEMON"
check "initial: client → server tcp/8080 allowed (v4)" until_probe "$CLIENT" 4 8080 ok
check "initial: client → server tcp/8080 allowed (v6)" until_probe "$CLIENT" 6 8080 ok
check "initial: client → server tcp/9090 denied" until_probe "$CLIENT" 4 9090 refused

echo "== edits reach real traffic within a second"
sed -i "s|client: {members: \[192.0.2.10,|client: {members: [192.0.2.10, $OTHER4,|; s|other:  {members: \[203.0.113.30, |other:  {members: [|" "$D/zones.yaml"
check "move a member (add to client, remove from other): other's host now reaches 8080" until_probe "$OTHER" 4 8080 ok
check "  … and no longer 9090" until_probe "$OTHER" 4 9090 refused
cp "$WORK/zones.orig" "$D/zones.yaml"
check "revert membership: other's host denied 8080 again" until_probe "$OTHER" 4 8080 refused
with_9090() { sed 's|^settings:|  - {from: client, to: server, ports: [tcp/9090]}\nsettings:|' "$WORK/rules.orig"; }
with_9090 >"$D/rules.yaml"
check "add an allow rule: client → server tcp/9090 allowed" until_probe "$CLIENT" 4 9090 ok
cp "$WORK/rules.orig" "$D/rules.yaml"
check "remove the allow rule: client → server tcp/9090 denied" until_probe "$CLIENT" 4 9090 refused
mv "$D/rules.yaml" "$D/10-rules.yaml"
sleep 0.3
check "rename a file: policy unchanged, 8080 still allowed" until_probe "$CLIENT" 4 8080 ok
check "rename a file: kernel in sync" in_sync
# An editor's save: write a temporary file, then rename it over the original.
with_9090 >"$D/.10-rules.yaml.swp"
mv "$D/.10-rules.yaml.swp" "$D/10-rules.yaml"
check "editor rename-save adds tcp/9090" until_probe "$CLIENT" 4 9090 ok
cp "$WORK/rules.orig" "$D/10-rules.yaml"
check "editor-style revert" until_probe "$CLIENT" 4 9090 refused

echo "== a bad edit keeps the last good policy"
printf 'allow:\n  - {from: client, to: serverr, ports: [tcp/8080]}\n' >"$D/20-bad.yaml"
sleep 0.5
check "bad edit: 8080 still allowed" until_probe "$CLIENT" 4 8080 ok
check "bad edit: 9090 still denied" until_probe "$CLIENT" 4 9090 refused
status=$("$ZW" status --netns "$R" --policies "$D" --state-file "$STATE" 2>&1)
check "bad edit: status shows the error with its place" grep -q "20-bad.yaml:2:[0-9]*: error: unknown zone 'serverr'" <<<"$status"
ip netns exec "$R" nft flush set inet zonewall zoned_v4
for _ in $(seq 40); do in_sync && break; sleep 0.05; done
status=$("$ZW" status --netns "$R" --policies "$D" --state-file "$STATE" 2>&1)
check "bad edit, then drift repaired: status still shows the policy's error" grep -q "20-bad.yaml:2:[0-9]*: error: unknown zone 'serverr'" <<<"$status"
rm "$D/20-bad.yaml"
sleep 0.5
status=$("$ZW" status --netns "$R" --policies "$D" --state-file "$STATE" 2>&1); rc=$?
check "bad edit fixed: status exits 0 ($rc)" test "$rc" -eq 0
check "bad edit fixed: status says in sync" grep -q '^in sync' <<<"$status"
check "bad edit fixed: status shows no error" bash -c '! grep -q "last error" <<<"$1"' _ "$status"
check "bad edit fixed: the daemon logs that the policy is valid again" grep -q "policy valid again" "$WORK/daemon.log"

echo "== an emptied file is refused, not read as a policy without its zones"
cp "$D/zones.yaml" "$WORK/zones.saved"
: >"$D/zones.yaml"
sleep 0.5
check "emptied zones file: 8080 still allowed" until_probe "$CLIENT" 4 8080 ok
check "emptied zones file: 9090 still denied" until_probe "$CLIENT" 4 9090 refused
status=$("$ZW" status --netns "$R" --policies "$D" --state-file "$STATE" 2>&1)
check "emptied zones file: status names it" grep -q "zones.yaml:1:1: error: the file holds no YAML document" <<<"$status"
cp "$WORK/zones.saved" "$D/zones.yaml"
sleep 0.5
check "zones file back: in sync" in_sync

echo "== one controller per namespace"
out=$("$ZW" run --netns "$R" --policies "$D" --state-file "$WORK/second.json" 2>&1); rc=$?
check "a second daemon on the namespace exits 1 ($rc)" test "$rc" -eq 1
check "  … naming the one in charge" grep -q "network namespace $R is already managed by zonewall run, policies .* (pid $DAEMON)" <<<"$out"
out=$("$ZW" apply --netns "$R" --policies "$D" 2>&1); rc=$?
check "apply while the daemon runs exits 1 ($rc)" test "$rc" -eq 1
check "  … and says why" grep -q "already managed by zonewall run" <<<"$out"
check "apply by the namespace's path is refused too" bash -c "! '$ZW' apply --netns /run/netns/'$R' --policies '$D' 2>/dev/null"
check "apply from inside the namespace is refused too" bash -c "! ip netns exec '$R' '$ZW' apply --policies '$D' 2>/dev/null"
check "  … and the daemon is still in sync" in_sync
mkdir -p "$WORK/other-policies" && cp "$D"/*.yaml "$WORK/other-policies/"
out=$("$ZW" status --netns "$R" --policies "$WORK/other-policies" 2>&1)
check "status with other policies names the daemon in charge" grep -q "^daemon: none with policies .*/other-policies; network namespace $R is managed by zonewall run, policies .* (pid $DAEMON)" <<<"$out"

echo "== a commit refused while another process owns the table is retried soon, not at the next resync"
kill -STOP "$DAEMON"
ip netns exec "$R" nft delete table inet zonewall
# An nft session that owns a table of that name for 2 s, then exits: the kernel drops the table
# with no event the daemon could see.
{ echo 'add table inet zonewall { flags owner; }'; sleep 2; } | ip netns exec "$R" nft -i >/dev/null 2>&1 &
OWNER=$!
sleep 0.5
kill -CONT "$DAEMON"
wait $OWNER
for _ in $(seq 80); do table_text | grep -q 'vmap @src_v4' && break; sleep 0.05; done
check "the table is back within 4 s of the owner leaving (resync interval 60 s)" bash -c "$(declare -f table_text); R=$R; table_text | grep -q 'vmap @src_v4'"
check "  … and in sync" in_sync

echo "== a closed log pipe does not stop the daemon"
kill -TERM "$DAEMON"; wait "$DAEMON"; DAEMON=""
rm -f "$STATE"
( "$ZW" run --netns "$R" --policies "$D" --state-file "$STATE" --resync-interval 60 2>&1; echo "rc=$?" >"$WORK/pipe.rc" ) | head -c 1 >/dev/null &
for _ in $(seq 200); do [[ -s $STATE ]] && grep -q '"inSync" : true' "$STATE" && break; sleep 0.05; done
ip netns exec "$R" nft flush chain inet zonewall forward
sleep 1
check "after its log reader left, the daemon repaired drift (in sync)" in_sync
check "  … and still runs" test ! -s "$WORK/pipe.rc"
pkill -TERM -f -- "--state-file $STATE" ; for _ in $(seq 100); do [[ -s $WORK/pipe.rc ]] && break; sleep 0.05; done
check "  … and exits 0 on SIGTERM ($(cat "$WORK/pipe.rc" 2>/dev/null))" grep -q '^rc=0$' "$WORK/pipe.rc"
start_daemon || exit 1

echo "== drift is repaired"
before=$(table_text)
# Every comparison below is against this listing: it must hold the table, or they prove nothing.
check "the table listing is not empty" grep -q 'vmap @src_v4' <<<"$before"
# tamper WHAT COMMAND…: runs an nft command in the namespace (it must succeed), then waits until
# the listing is back to $before, for up to 1 s; prints how long the repair took.
tamper() {
    local what=$1; shift
    if ! ip netns exec "$R" "$@"; then fail "$what: the tampering command failed: $*"; return; fi
    local start; start=$(date +%s%N)
    local deadline=$((start + 1000000000)) now
    while :; do
        [[ "$(table_text)" == "$before" ]] && { now=$(date +%s%N); pass "$what: repaired in $(((now - start) / 1000000)) ms"; return; }
        (($(date +%s%N) > deadline)) && { fail "$what: not repaired within 1 s"; diff <(echo "$before") <(table_text) | head -5; return; }
        sleep 0.01
    done
}
h=$(ip netns exec "$R" nft -a list chain inet zonewall forward | awk '/vmap @src_v4/ {print $NF}')
check "the rule to delete has a handle ($h)" test -n "$h"
tamper "nft delete rule" nft delete rule inet zonewall forward handle "$h"
tamper "nft delete element" nft delete element inet zonewall zoned_v4 "{ $SERVER4 }"
tamper "nft delete chain" nft delete chain inet zonewall input
tamper "nft delete table" nft delete table inet zonewall
tamper "nft flush ruleset" nft flush ruleset
# Attributes that a listing of the rules alone would not show as different.
tamper "dormant table" nft add table inet zonewall '{ flags dormant; }'
tamper "chain policy drop" nft add chain inet zonewall forward '{ policy drop; }'
# Objects that are not chains or sets: they filter nothing until a rule uses them, but they are
# not the declared table.
tamper "nft add counter" nft add counter inet zonewall tampered
tamper "nft add limit" nft add limit inet zonewall slow '{ rate 10/second }'
h=$(ip netns exec "$R" nft -a list chain inet zonewall forward | awk '/vmap @src_v4/ {print $NF}')
rule=$(ip netns exec "$R" nft list chain inet zonewall forward | grep -m1 'vmap @src_v4' | sed 's/^[[:space:]]*//')
tamper "rule user data (a comment)" nft replace rule inet zonewall forward handle "$h" "$rule" comment '"tampered"'
# A chain's priority and a set's flags and timeout cannot be changed in place: replace the table
# with the same one but for that attribute.
ip netns exec "$R" nft list table inet zonewall >"$WORK/table.nft"
{ echo "delete table inet zonewall"; sed 's/hook forward priority filter;/hook forward priority filter + 5;/' "$WORK/table.nft"; } >"$WORK/prio.nft"
check "the priority edit changes the table text" bash -c '! cmp -s <(tail -n +2 "$1") "$2"' _ "$WORK/prio.nft" "$WORK/table.nft"
tamper "chain priority" nft -f "$WORK/prio.nft"
{ echo "delete table inet zonewall"; sed '0,/^\t\tflags interval$/s//\t\tflags interval\n\t\ttimeout 1h/' "$WORK/table.nft"; } >"$WORK/timeout.nft"
check "the set edit changes the table text" bash -c '! cmp -s <(tail -n +2 "$1") "$2"' _ "$WORK/timeout.nft" "$WORK/table.nft"
tamper "set flags and timeout" nft -f "$WORK/timeout.nft"
check "after drift: traffic as declared (allowed)" until_probe "$CLIENT" 4 8080 ok
check "after drift: traffic as declared (denied)" until_probe "$CLIENT" 4 9090 refused
repairs=$(jq .driftRepairs "$STATE")
check "drift repairs counted ($repairs ≥ 10)" test "$repairs" -ge 10

echo "== no gap: SIGKILL + restart, and 200 reloads, under a continuous probe"
# Each prober hammers one pair; a line per attempt: ok | refused | timeout.
prober() { while [[ -e $WORK/probing ]]; do LAB_TIMEOUT=1 lab_probe_one "$1" 4 tcp "$SERVER4" "$2" | cut -d' ' -f1; sleep 0.005; done >"$3"; }
touch "$WORK/probing"
# Three probers per pair, so an attempt starts every few milliseconds for each pair.
PROBERS=()
for k in 1 2 3; do
    prober "$CLIENT" 8080 "$WORK/allowed.$k.log" & PROBERS+=($!)
    prober "$CLIENT" 9090 "$WORK/denied.$k.log" & PROBERS+=($!)
done
sleep 0.5
kill -KILL "$DAEMON"; wait "$DAEMON" 2>/dev/null
check "SIGKILL leaves the table in force" test "$(table_text)" = "$before"
# Its pid taken by another process: status asks the namespace's lock, which died with the daemon.
sleep 30 & OTHER_PID=$!
python3 -c 'import json, sys; p = sys.argv[1]; s = json.load(open(p)); s["pid"] = int(sys.argv[2]); json.dump(s, open(p, "w"))' "$STATE" "$OTHER_PID"
check "status: a killed daemon whose pid was reused is not running" grep -q "^daemon: pid $OTHER_PID (not running)" <<<"$("$ZW" status --netns "$R" --policies "$D" --state-file "$STATE" 2>&1)"
kill $OTHER_PID 2>/dev/null; wait $OTHER_PID 2>/dev/null
# Another daemon (other policies, the same rules) now holds the namespace: status names it.
rm -rf "$WORK/other-policies" && mkdir -p "$WORK/other-policies" && cp "$D"/*.yaml "$WORK/other-policies/"
"$ZW" run --netns "$R" --policies "$WORK/other-policies" --state-file "$WORK/other-state.json" >"$WORK/other.log" 2>&1 & SECOND=$!
for _ in $(seq 100); do grep -q "zonewall running" "$WORK/other.log" && break; sleep 0.05; done
check "status of the killed daemon names the one now in charge" grep -q "^  network namespace $R is now managed by zonewall run, policies .*/other-policies (pid $SECOND)" <<<"$("$ZW" status --netns "$R" --policies "$D" --state-file "$STATE" 2>&1)"
kill -TERM "$SECOND"; wait "$SECOND" 2>/dev/null
applies_before=$(grep -c ' applied' "$WORK/daemon.log")
start_daemon || exit 1
check "restart adopts the table without a change" test "$(grep -c ' applied' "$WORK/daemon.log")" -eq "$applies_before"
check "status without the daemon's --state-file says where to look" grep -q "^daemon: zonewall run, policies .* (pid $DAEMON) manages network namespace $R, but its state is not in" <<<"$("$ZW" status --netns "$R" --policies "$D" 2>&1)"
check "  … and status shows the digest of what it enforces" grep -Eq 'enforcing: digest [0-9a-f]{16},' <<<"$("$ZW" status --netns "$R" --policies "$D" --state-file "$STATE" 2>&1)"
# The log is appended across restarts: count only what this daemon logs from here on.
log_mark=$(wc -l <"$WORK/daemon.log")
# Successful applies only ("applied"; a failed one logs "apply failed" with the same reason).
applied_since() { tail -n +$(($1 + 1)) "$WORK/daemon.log" | grep 'reason=policy change' | grep -c ' applied$'; }
for i in $(seq 200); do
    if ((i % 2)); then
        sed -i 's|other:  {members: \[203.0.113.30,|other:  {members: [203.0.113.31, 203.0.113.30,|' "$D/zones.yaml"
    else
        cp "$WORK/zones.orig" "$D/zones.yaml"
    fi
    # Wait (up to 5 s) for this edit to be applied before the next, so that the
    # daemon's debounce cannot fold two edits into one on a loaded machine.
    for _ in $(seq 500); do
        (( $(applied_since "$log_mark") >= i )) && break
        sleep 0.01
    done
done
sleep 0.5
rm "$WORK/probing"; wait "${PROBERS[@]}"
cat "$WORK"/allowed.*.log >"$WORK/allowed.log"; cat "$WORK"/denied.*.log >"$WORK/denied.log"
reloads=$(applied_since "$log_mark")
failed_applies=$(tail -n +$((log_mark + 1)) "$WORK/daemon.log" | grep -c 'apply failed')
n1=$(wc -l <"$WORK/allowed.log") n2=$(wc -l <"$WORK/denied.log")
bad1=$(grep -vc '^ok$' "$WORK/allowed.log") bad2=$(grep -c '^ok$' "$WORK/denied.log")
echo "  $reloads reloads applied; $n1 allowed probes, $n2 forbidden probes"
check "no allowed connection failed ($bad1 of $n1)" test "$bad1" -eq 0
check "no forbidden connection succeeded ($bad2 of $n2)" test "$bad2" -eq 0
check "probes were continuous (≥ 100 each)" test "$n1" -ge 100 -a "$n2" -ge 100
check "reloads happened (≥ 190 of 200 applied)" test "$reloads" -ge 190
check "no reload failed ($failed_applies)" test "$failed_applies" -eq 0
check "in sync after the reloads" in_sync

echo "== ConfigMap-style symlink swap, and the directory itself replaced"
mkdir "$D/..v1"; cp "$D"/*.yaml "$D/..v1/"; rm "$D"/*.yaml
ln -s ..v1 "$D/..data"
for f in "$D/..v1"/*.yaml; do ln -s "..data/$(basename "$f")" "$D/$(basename "$f")"; done
sleep 0.3
check "symlinked layout: still in sync" in_sync
mkdir "$D/..v2"; cp "$D/..v1"/*.yaml "$D/..v2/"
sed -i 's|^settings:|  - {from: client, to: server, ports: [tcp/9090]}\nsettings:|' "$D/..v2/10-rules.yaml"
ln -s ..v2 "$D/..data_tmp"; mv -T "$D/..data_tmp" "$D/..data"
check "symlink swap (..data → ..v2) reloads: 9090 allowed" until_probe "$CLIENT" 4 9090 ok
NEW=$WORK/policies.new
mkdir "$NEW"; cp "$WORK/zones.orig" "$NEW/zones.yaml"; cp "$WORK/rules.orig" "$NEW/10-rules.yaml"
mv "$D" "$WORK/policies.old"; mv "$NEW" "$D"
check "directory replaced: new content enforced, 9090 denied" until_probe "$CLIENT" 4 9090 refused
cp "$D/10-rules.yaml" "$WORK/r.tmp"; sed -i 's|^settings:|  - {from: client, to: server, ports: [tcp/9090]}\nsettings:|' "$WORK/r.tmp"; mv "$WORK/r.tmp" "$D/10-rules.yaml"
check "  … and the new directory is watched: 9090 allowed" until_probe "$CLIENT" 4 9090 ok
cp "$WORK/rules.orig" "$D/10-rules.yaml"
check "  … and back" until_probe "$CLIENT" 4 9090 refused

echo "== systemd notify, metrics, JSON logs"
kill -TERM "$DAEMON"; wait "$DAEMON"; DAEMON=""
NOTIFY=$WORK/notify.sock
socat -u UNIX-RECVFROM:"$NOTIFY",fork - >"$WORK/notify.log" 2>/dev/null & SOCAT=$!
sleep 0.2
NOTIFY_SOCKET=$NOTIFY WATCHDOG_USEC=400000 start_daemon --metrics-address 127.0.0.1:19715 --log-format json || exit 1
sleep 0.5
printf '# touched\n' >>"$D/zones.yaml"
sleep 0.5
check "sd_notify READY=1" grep -q 'READY=1' "$WORK/notify.log"
check "sd_notify STATUS=enforcing …" grep -q 'STATUS=enforcing 3 zones' "$WORK/notify.log"
check "sd_notify RELOADING=1 on an edit" grep -q 'RELOADING=1' "$WORK/notify.log"
check "sd_notify WATCHDOG=1 pings" grep -q 'WATCHDOG=1' "$WORK/notify.log"
metrics=$(curl -s http://127.0.0.1:19715/metrics)
check "metrics: applies, drift, load errors, zones, last success" bash -c 'for m in zonewall_applies_total zonewall_drift_repairs_total zonewall_policy_load_errors_total zonewall_zones zonewall_rules zonewall_members zonewall_last_success_timestamp_seconds zonewall_apply_duration_seconds_bucket zonewall_policy_valid; do grep -q "^$m" <<<"$1" || exit 1; done' _ "$metrics"
check "metrics: each family has its # HELP line" bash -c 'for m in zonewall_applies_total zonewall_apply_duration_seconds zonewall_zones zonewall_policy_valid zonewall_in_sync; do grep -q "^# HELP $m [[:alnum:]]" <<<"$1" || exit 1; done' _ "$metrics"
head_out=$(curl -s -I http://127.0.0.1:19715/metrics)
check "metrics: HEAD answers 200 with the GET's headers" bash -c 'grep -q "^HTTP/1.1 200" <<<"$1" && grep -qi "^content-type: text/plain; version=0.0.4" <<<"$1"' _ "$head_out"
post_out=$(curl -s -i -X POST http://127.0.0.1:19715/metrics)
check "metrics: POST answers 405 with Allow: GET, HEAD" bash -c 'grep -q "^HTTP/1.1 405" <<<"$1" && grep -qi "^allow: GET, HEAD" <<<"$1"' _ "$post_out"
check "metrics: another path answers 404" grep -q "^HTTP/1.1 404" <<<"$(curl -s -i http://127.0.0.1:19715/other)"
fds_before=$(ls /proc/"$DAEMON"/fd | wc -l)
# 200 clients that connect and send nothing: the server keeps at most 32, closes each within
# seconds, and the daemon's descriptors come back; a scrape afterwards is served.
idle=$(python3 - <<'PY'
import socket, time
socks = []
for _ in range(200):
    s = socket.create_connection(("127.0.0.1", 19715)); s.settimeout(0.2); socks.append(s)
deadline, closed = time.time() + 9, set()
while time.time() < deadline and len(closed) < len(socks):
    for i, s in enumerate(socks):
        if i in closed: continue
        try:
            if s.recv(1) == b"": closed.add(i)
        except socket.timeout: pass
        except OSError: closed.add(i)
print(len(closed))
PY
)
check "metrics: 200 idle connections are all closed by the server within 9 s ($idle)" test "$idle" -eq 200
check "  … the daemon's descriptors are back ($fds_before, now $(ls /proc/"$DAEMON"/fd | wc -l))" bash -c '(( $(ls /proc/$1/fd | wc -l) <= $2 + 2 ))' _ "$DAEMON" "$fds_before"
check "  … and the next scrape is served" grep -q "^zonewall_applies_total" <<<"$(curl -s http://127.0.0.1:19715/metrics)"
printf 'allow:\n  - {from: client, to: nowhere, ports: [tcp/1]}\n' >"$D/30-bad.yaml"
sleep 0.5
check "metrics: zonewall_policy_valid 0 while the files are invalid" grep -Eq '^zonewall_policy_valid 0(\.0)?$' <<<"$(curl -s http://127.0.0.1:19715/metrics)"
rm "$D/30-bad.yaml"
sleep 0.5
check "  … and 1 once they are fixed" grep -Eq '^zonewall_policy_valid 1(\.0)?$' <<<"$(curl -s http://127.0.0.1:19715/metrics)"
check "JSON log lines" bash -c 'tail -n 3 "$1" | grep "^{" | jq -e .msg >/dev/null' _ "$WORK/daemon.log"
kill $SOCAT 2>/dev/null

echo "== a policy the system could not read is read again"
read -r soft hard < <(prlimit --pid "$DAEMON" --nofile --noheadings --output SOFT,HARD)
# The limit is a bound on descriptor numbers, not a count: the daemon gets the lowest free
# number, so the limit that leaves it none is the lowest free number, not how many are open
# (closed metrics connections leave holes below the highest). The least over a few looks, so
# that a descriptor open for a moment does not raise it.
lowest_free() { ls /proc/"$1"/fd | sort -n | awk 'BEGIN {n = 0} $1 == n {n++} END {print n}'; }
limit=$(lowest_free "$DAEMON")
for _ in 1 2 3 4 5; do sleep 0.02; l=$(lowest_free "$DAEMON"); ((l < limit)) && limit=$l; done
prlimit --pid "$DAEMON" --nofile="$limit:$hard"
printf 'allow:\n  - {from: client, to: server, ports: [tcp/7777]}\n' >"$D/40-extra.yaml"
sleep 1.5
out_of_sync() { ! in_sync; }
check "while the daemon can open no file, the edit is not in force" out_of_sync
prlimit --pid "$DAEMON" --nofile="$soft:$hard"
for _ in $(seq 160); do in_sync && break; sleep 0.05; done
check "  … and once it can, the edit is read again and applied (no new file event needed)" in_sync
rm "$D/40-extra.yaml"
for _ in $(seq 100); do in_sync && break; sleep 0.05; done

echo "== shutdown"
kill -TERM "$DAEMON"; wait "$DAEMON"; rc=$?; DAEMON=""
check "SIGTERM exits 0 ($rc)" test "$rc" -eq 0
check "SIGTERM leaves the rules in place" test "$(table_text)" = "$before"
start_daemon --remove-on-exit || { fail "daemon restart with --remove-on-exit"; exit 1; }
kill -INT "$DAEMON"; wait "$DAEMON"; rc=$?; DAEMON=""
check "--remove-on-exit: exits 0 ($rc)" test "$rc" -eq 0
check "--remove-on-exit: table removed" test -z "$(table_text)"

echo "== a namespace deleted under the daemon"
GONE=zw-$ID-gone
ip netns add "$GONE"
"$ZW" run --netns "$GONE" --policies "$D" --state-file "$WORK/gone.json" >"$WORK/gone.log" 2>&1 & GONE_PID=$!
for _ in $(seq 100); do grep -q "zonewall running" "$WORK/gone.log" && break; sleep 0.05; done
ip netns delete "$GONE"; GONE=""
rc=0; timeout 5 tail --pid="$GONE_PID" -f /dev/null || rc=$?
check "the daemon stops within 5 s of its namespace's deletion" test "$rc" -eq 0
wait "$GONE_PID"; rc=$?
check "  … with exit 2 ($rc), saying why" bash -c '[[ $1 -eq 2 ]] && grep -q "network namespace $2 was deleted or replaced while the daemon governed it" "$3"' _ "$rc" "zw-$ID-gone" "$WORK/gone.log"

echo "== usage errors are exit 1 with the reason, never a trap"
out=$("$ZW" run --netns "$R" --policies "$D" --resync-interval inf 2>&1); rc=$?
check "--resync-interval inf: exit 1 ($rc)" bash -c '[[ $1 -eq 1 ]] && grep -q "from 1 to 86400" <<<"$2"' _ "$rc" "$out"
out=$("$ZW" run --netns "$R" --policies "$D" --metrics-address 0.0.0.0:19716 2>&1); rc=$?
check "--metrics-address off loopback: exit 1 ($rc)" bash -c '[[ $1 -eq 1 ]] && grep -q "is not a loopback address" <<<"$2"' _ "$rc" "$out"
out=$("$ZW" status --netns "$R" --policies "$D" --max-lines=-1 2>&1); rc=$?
check "status --max-lines -1: exit 1 ($rc)" bash -c '[[ $1 -eq 1 ]] && grep -q "max-lines must be 0 or more" <<<"$2"' _ "$rc" "$out"
python3 -c 'import socket, time; s = socket.socket(); s.bind(("127.0.0.1", 19717)); s.listen(); time.sleep(30)' & HOLDER=$!
sleep 0.3
ip netns exec "$R" nft delete table inet zonewall 2>/dev/null
out=$("$ZW" run --netns "$R" --policies "$D" --state-file "$STATE" --metrics-address 127.0.0.1:19717 2>&1); rc=$?
kill $HOLDER 2>/dev/null; wait $HOLDER 2>/dev/null
check "metrics port taken: exit 1 ($rc), naming the address" bash -c '[[ $1 -eq 1 ]] && grep -q "cannot serve metrics on 127.0.0.1:19717: Address already in use" <<<"$2"' _ "$rc" "$out"
check "  … before touching the kernel: no table was created" test -z "$(table_text)"

echo "acceptance: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
