#!/usr/bin/env bash
# Commit-confirmed, in a throwaway namespace: `zonewall apply --confirm` leaves a detached guard
# that restores the previous table (the same `nft -j list`, handles aside) unless
# `zonewall confirm` comes in time; the guard survives its parent shell being killed. And
# `zonewall run --confirm-edits`: an unconfirmed edit is reverted (files untouched, status
# says so), a confirmed one stays, a later edit opens a new window, drift repair needs none.
#
#   Tests/Daemon/confirm.sh        (root; scripts/test runs it)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [[ $(id -u) -ne 0 ]]; then
    echo "############################################################"
    echo "# SKIPPED confirm tests: they need root (netns)."
    echo "############################################################"
    exit 0
fi
ZW=${ZONEWALL:-$(cd "$ROOT" && swift build --show-bin-path)/zonewall}
R=zw-cf-$(printf '%04x' $((RANDOM)))
WORK=$(mktemp -d /tmp/zw-confirm-XXXXXX)
export ZONEWALL_CONFIRM_DIR=$WORK/confirm
D=$WORK/policies
mkdir -p "$D"
passed=0 failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
DAEMON=""
cleanup() {
    [[ -n $DAEMON ]] && kill -KILL "$DAEMON" 2>/dev/null
    # The guards this test started (their pids are in the log), then the namespace.
    for p in $(grep -ho 'confirm-guard\[[0-9]*\]' "$ZONEWALL_CONFIRM_DIR"/*.log 2>/dev/null | tr -dc '0-9\n' | sort -u); do
        kill -KILL "$p" 2>/dev/null
    done
    ip netns delete "$R" 2>/dev/null
    [[ -n ${KEEP:-} ]] && cp -r "$WORK" /tmp/zw-confirm-kept; rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$R" || exit 1

policy() {  # policy PORTS
    cat >"$D/.p.new" <<YAML
zones:
  web: {members: [192.0.2.16/28]}
  db: {members: [203.0.113.5, 203.0.113.6]}
allow:
  - {from: web, to: db, ports: [$1]}
YAML
    mv "$D/.p.new" "$D/p.yaml"
}
# The listing with handles dropped and every list sorted: the kernel's order of hash-set
# elements and the handles of re-created objects carry no meaning.
listing() {
    ip netns exec "$R" nft -j list table inet zonewall 2>/dev/null \
        | jq -S 'walk(if type == "object" then del(.handle) else . end) | walk(if type == "array" then sort_by(tostring) else . end)'
}
apply() { "$ZW" apply --netns "$R" --policies "$D" "$@"; }
status() { "$ZW" status --netns "$R" --policies "$D" --state-file '' 2>&1; }

echo "== unconfirmed: restored, from a parent shell that is killed"
policy "tcp/5432"; apply >/dev/null || exit 1
before=$(listing)
policy "tcp/5432, tcp/6379, udp/53"
# The apply runs in a shell of its own session; that whole session is killed right after.
setsid bash -c "'$ZW' apply --netns '$R' --policies '$D' --confirm 3s >'$WORK/apply.out' 2>&1; sleep 60" &
shell=$!
for _ in $(seq 100); do grep -q "within" "$WORK/apply.out" 2>/dev/null && break; sleep 0.05; done
t0=$(date +%s.%N)
check "apply --confirm prints the instruction, naming the policies" grep -q "run \`zonewall confirm --netns $R --policies $(realpath "$D")\` within 3 s or the previous rule set comes back" "$WORK/apply.out"
kill -KILL -- -"$shell" 2>/dev/null; wait "$shell" 2>/dev/null
changed=$(listing)
check "the new rule set is in force meanwhile" test "$changed" != "$before"
# The command as it can be run: with the policies, which are not the default directory.
check "status shows the pending confirmation and its deadline" bash -c "grep -q 'pending confirmation: run .zonewall confirm --netns $R --policies $(realpath "$D"). before 20[0-9-]*T[0-9:]*Z' <<<\"\$1\"" _ "$(status)"
while [[ -n $(status | grep 'pending confirmation') ]] && (( $(echo "$(date +%s.%N) < $t0 + 6" | bc) )); do sleep 0.1; done
sleep 0.3
check "after the deadline: the previous table is back, identical listing" test "$(listing)" = "$before"
check "status says it was reverted" bash -c "grep -q 'last confirmation window: reverted at .*not confirmed within 3 s' <<<\"\$1\"" _ "$(status)"
check "zonewall confirm now has nothing to confirm (exit 1)" bash -c "! '$ZW' confirm --netns '$R' --policies '$D' 2>/dev/null"

echo "== confirmed: kept"
apply --confirm 3s >"$WORK/apply.out"
kept=$(listing)
printed=$(sed -n 's/^zonewall: run `zonewall \(confirm [^`]*\)` within.*/\1/p' "$WORK/apply.out")
# Mistakes while a window runs must not read as "nothing to confirm": the change would be undone.
out=$("$ZW" confirm --netns "$R-typo" --policies "$D" 2>&1); rc=$?
check "confirm --netns with a name that does not exist: exit 2, no such namespace ($rc)" \
    bash -c "[[ $rc -eq 2 ]] && grep -q 'no network namespace $R-typo' <<<\"\$1\"" _ "$out"
if id nobody >/dev/null 2>&1; then
    out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$ZW" confirm --netns "$R" --policies "$D" 2>&1); rc=$?
    check "confirm without root: exit 2, cannot confirm, needs root ($rc)" \
        bash -c "[[ $rc -eq 2 ]] && grep -q 'cannot confirm: .*needs root' <<<\"\$1\"" _ "$out"
fi
check "zonewall confirm, as apply printed it, confirms (exit 0)" bash -c "[[ -n '$printed' ]] && cd / && '$ZW' $printed"
sleep 3.5
check "after the deadline: the confirmed rule set stays" test "$(listing)" = "$kept"
check "… and it is not the previous one" test "$kept" != "$before"

echo "== the window is the namespace's, however it is named"
policy "tcp/5432, tcp/7000"; apply --confirm 3s >/dev/null
check "confirm --netns /run/netns/NAME confirms a window opened with --netns NAME" "$ZW" confirm --netns "/run/netns/$R" --policies "$D"
policy "tcp/5432, tcp/7001"; apply --confirm 3s >/dev/null
kept2=$(listing)
check "… and so does confirm from inside the namespace, with a relative --policies" \
    bash -c "cd '$(dirname "$D")' && ip netns exec '$R' '$ZW' confirm --policies '$(basename "$D")'"
check "… and status, by the path, says it was confirmed" \
    bash -c "grep -q 'last confirmation window: confirmed at' <<<\"\$1\"" _ "$("$ZW" status --netns "/run/netns/$R" --policies "$D" --state-file '' 2>&1)"
sleep 3.5
check "after the deadline: the rule set confirmed from inside stays" test "$(listing)" = "$kept2"
policy "tcp/5432, tcp/6379, udp/53"; apply >/dev/null

echo "== unconfirmed where no table existed: the table goes away again"
ip netns exec "$R" nft delete table inet zonewall
apply --confirm 2s >/dev/null
check "the table exists during the window" test -n "$(listing)"
sleep 3
check "after the deadline: no table, as before" test -z "$(listing)"

echo "== a window too short to confirm in is refused"
out=$("$ZW" apply --netns "$R" --policies "$D" --confirm 500ms 2>&1); rc=$?
check "apply --confirm 500ms exits 1 ($rc)" test "$rc" -eq 1
check "  … and says the range" grep -q "1 s to 24 h" <<<"$out"

echo "== a second apply --confirm while one is pending is refused"
apply --confirm 5s >/dev/null
check "refused with exit 1" bash -c "! '$ZW' apply --netns '$R' --policies '$D' --confirm 5s 2>/dev/null"
# A plain apply would be undone at the window's deadline along with the change it waits for.
out=$("$ZW" apply --netns "$R" --policies "$D" 2>&1); rc=$?
check "a plain apply while one is pending is refused too (exit $rc)" test "$rc" -eq 1
check "  … saying what waits and how to confirm it" grep -q "is waiting for confirmation until .*run \`zonewall confirm --netns $R --policies" <<<"$out"
# The same namespace however it is reached: by its path, from inside it, and a daemon.
check "… by the namespace's path too" bash -c "! '$ZW' apply --netns /run/netns/'$R' --policies '$D' 2>/dev/null"
check "… from inside the namespace too" bash -c "! ip netns exec '$R' '$ZW' apply --policies '$D' 2>/dev/null"
out=$("$ZW" run --netns "$R" --policies "$D" --state-file "$WORK/refused.json" 2>&1); rc=$?
check "… and a daemon does not start under it (exit $rc)" test "$rc" -eq 1
check "  … saying why" grep -q "is waiting for confirmation until" <<<"$out"
out=$("$ZW" remove --netns "$R" 2>&1); rc=$?
check "… and so is remove, which the guard would undo (exit $rc)" bash -c '[[ $1 -eq 1 ]] && grep -q "cannot remove the table: a change .* is waiting for confirmation" <<<"$2"' _ "$rc" "$out"
check "  … leaving the table in place" bash -c "ip netns exec '$R' nft list table inet zonewall >/dev/null 2>&1"
mkdir -p "$WORK/other" && cp "$D"/*.yaml "$WORK/other/"
out=$("$ZW" confirm --netns "$R" --policies "$WORK/other" 2>&1); rc=$?
check "confirm with other policies exits 1 ($rc), naming the window's policies" bash -c '[[ $1 -eq 1 ]] && grep -q "the change waiting in netns $3 until .* was made with policies .*: run .zonewall confirm --netns $3 --policies" <<<"$2"' _ "$rc" "$out" "$R"
check "status with other policies shows the window too" grep -q "pending confirmation: run .zonewall confirm --netns $R --policies .*. before" <<<"$("$ZW" status --netns "$R" --policies "$WORK/other" --state-file '' 2>&1)"
"$ZW" confirm --netns "$R" --policies "$D" >/dev/null
out=$("$ZW" apply --netns "$R" --policies "$D" 2>&1); rc=$?
check "once confirmed, a plain apply goes through (exit $rc)" test "$rc" -eq 0

echo "== zonewall run --confirm-edits 4s"
ip netns exec "$R" nft delete table inet zonewall 2>/dev/null
policy "tcp/5432"
"$ZW" run --netns "$R" --policies "$D" --state-file "$WORK/state.json" --confirm-edits 4s >"$WORK/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do grep -q '"inSync" : true' "$WORK/state.json" 2>/dev/null && break; sleep 0.05; done
base=$(listing)
dstatus() { "$ZW" status --netns "$R" --policies "$D" --state-file "$WORK/state.json" 2>&1; }
# pending_shown: status shows a pending confirmation within a second.
pending_shown() {
    for _ in $(seq 20); do grep -q "pending confirmation: run .zonewall confirm --netns $R --policies $(realpath "$D"). before" <<<"$(dstatus)" && return 0; sleep 0.05; done
    return 1
}
check "start needs no confirmation" bash -c "! grep -q 'pending confirmation' <<<\"\$1\"" _ "$(dstatus)"
policy "tcp/5432, tcp/6379"
for _ in $(seq 40); do [[ $(listing) != "$base" ]] && break; sleep 0.05; done
edited=$(listing)
check "the edit is applied" test "$edited" != "$base"
check "status shows the edit waiting for confirmation" pending_shown
sleep 4.6
check "unconfirmed: the last confirmed policy is back" test "$(listing)" = "$base"
check "… the files are left as they are" grep -q "tcp/6379" "$D/p.yaml"
check "… and status says the edit was reverted for lack of confirmation" bash -c "grep -q 'reverted .* for lack of confirmation' <<<\"\$1\"" _ "$(dstatus)"
ip netns exec "$R" nft delete table inet zonewall
for _ in $(seq 40); do [[ -n $(listing) ]] && break; sleep 0.05; done
sleep 0.3
check "drift repair restores the confirmed policy, with no window" test "$(listing)" = "$base"
check "… and no pending confirmation" bash -c "! grep -q 'pending confirmation' <<<\"\$1\"" _ "$(dstatus)"
policy "tcp/5432, udp/53"
for _ in $(seq 40); do [[ $(listing) != "$base" ]] && break; sleep 0.05; done
second=$(listing)
second_text=$(ip netns exec "$R" nft list table inet zonewall)
check "a later edit starts a new window" pending_shown
check "zonewall confirm confirms it" "$ZW" confirm --netns "$R" --policies "$D"
sleep 4.6
check "confirmed: the edit stays" test "$(listing)" = "$second"
check "… and it is not the old one" test "$second" != "$base"

echo "== a restart does not make an unconfirmed edit stay"
policy "tcp/5432, udp/53, tcp/7001"
for _ in $(seq 40); do [[ $(listing) != "$second" ]] && break; sleep 0.05; done
check "an edit waits for confirmation" pending_shown
kill -TERM "$DAEMON"; wait "$DAEMON" 2>/dev/null; DAEMON=""
check "a stop during the window puts the confirmed rule set back" test "$(listing)" = "$second"
check "… and says so" grep -q "reverted at .* by the daemon as it stopped" <<<"$(dstatus)"
"$ZW" run --netns "$R" --policies "$D" --state-file "$WORK/state.json" --confirm-edits 3s >>"$WORK/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 40); do [[ $(listing) != "$second" ]] && break; sleep 0.05; done
check "the restart applies the files" test "$(listing)" != "$second"
check "… as an edit waiting for confirmation" pending_shown
sleep 3.6
check "unconfirmed: the rule set in force before the restart is back" test "$(listing)" = "$second"

echo "== a daemon killed inside a window: its successor says the edit was never confirmed"
policy "tcp/5432, udp/53, tcp/7003"
for _ in $(seq 40); do [[ $(listing) != "$second" ]] && break; sleep 0.05; done
check "an edit waits for confirmation" pending_shown
kill -KILL "$DAEMON"; wait "$DAEMON" 2>/dev/null; DAEMON=""
"$ZW" run --netns "$R" --policies "$D" --state-file "$WORK/state.json" --confirm-edits 3s >>"$WORK/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 60); do grep -q "died during a confirmation window" "$WORK/daemon.log" && break; sleep 0.05; done
check "the next daemon logs it" grep -q "died during a confirmation window" "$WORK/daemon.log"
check "… and status says it" bash -c "grep -q 'died during a confirmation window' <<<\"\$1\"" _ "$(dstatus)"
kill -TERM "$DAEMON"; wait "$DAEMON" 2>/dev/null; DAEMON=""

echo "== confirm: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
