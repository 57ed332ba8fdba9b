#!/usr/bin/env bash
# zonewall policy review for any CI system: validate, run the policy's expectations, and write
# what the change opens and closes as a markdown pull-request comment body.
#
#   packaging/ci/zonewall-ci.sh [--policies DIR] [--base REV] [--comment FILE] [--strict] [--kernel] [--zonewall BIN]
#
#   --policies DIR   the policy directory, inside a git checkout (default: policies)
#   --base REV       the revision to diff against, e.g. origin/main; no diff without it
#   --comment FILE   where the markdown comment body goes (default: zonewall-diff.md)
#   --strict         lint warnings fail too
#   --kernel         also have the kernel validate the rule set, in a user+network namespace
#                    of its own (unshare -rn): nothing on the machine changes
#   --zonewall BIN   the zonewall binary (default: zonewall on PATH)
#
# Exit status: 0 when the policy is valid and its expectations hold (whatever the diff says);
# 1 when the policy is invalid, an expectation fails, or the kernel refuses the rule set.
# A change in meaning is no failure: it is what the comment is for.
set -uo pipefail

policies=policies base="" comment=zonewall-diff.md strict=() kernel=0 zonewall=zonewall
while (($#)); do
    case $1 in
        --policies) policies=$2; shift ;;
        --base) base=$2; shift ;;
        --comment) comment=$2; shift ;;
        --strict) strict=(--strict) ;;
        --kernel) kernel=1 ;;
        --zonewall) zonewall=$2; shift ;;
        -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "zonewall-ci: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done

command -v "$zonewall" >/dev/null 2>&1 || { echo "zonewall-ci: '$zonewall' not found; pass --zonewall BIN" >&2; exit 1; }

failed=0
output() { [ -n "${GITHUB_OUTPUT:-}" ] && echo "$1" >>"$GITHUB_OUTPUT"; return 0; }

echo "==> zonewall check --policies $policies"
# GitHub turns these lines into annotations on the changed files; elsewhere they read as text.
"$zonewall" check --policies "$policies" --format github "${strict[@]}"
check=$?
if [ $check -ne 0 ]; then
    echo "zonewall-ci: the policy is invalid (or has warnings under --strict)" >&2
    failed=1
fi

echo "==> zonewall test --policies $policies"
if [ $check -eq 0 ] || [ ${#strict[@]} -gt 0 ]; then
    "$zonewall" test --policies "$policies" || { echo "zonewall-ci: an expectation failed" >&2; failed=1; }
fi

changed=false
if [ -n "$base" ]; then
    echo "==> zonewall diff --base $base --policies $policies"
    "$zonewall" diff --base "$base" --policies "$policies" --format markdown >"$comment"
    diff=$?
    case $diff in
        0) ;;
        5) changed=true ;;
        *)
            # The head's validity was decided above; an unreadable or invalid base is not this change's fault.
            { echo "### zonewall: no diff"; echo; echo "The policy at \`$base\` could not be read or is invalid; see the CI log."; } >"$comment"
            echo "zonewall-ci: could not diff against $base (exit $diff)" >&2
            ;;
    esac
    cat "$comment"
    if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat "$comment" >>"$GITHUB_STEP_SUMMARY"; fi
    output "comment-file=$comment"
fi
output "changed=$changed"

if [ $kernel -eq 1 ]; then
    echo "==> unshare -rn zonewall check --kernel --policies $policies"
    unshare -rn "$zonewall" check --kernel --policies "$policies" || { echo "zonewall-ci: the kernel refused the rule set" >&2; failed=1; }
fi

exit $failed
