#!/usr/bin/env bash
# Acceptance tests of policy review: `zonewall diff` against git revisions, the CI recipe
# (packaging/ci/zonewall-ci.sh) in a throwaway git repository with a base and a head commit,
# the JSON Schema against every policy and fixture (Python jsonschema), the HTML report in
# headless Chromium, graph --format svg, and check --strict. No root, no kernel.
#
#   ZONEWALL=.build/debug/zonewall Tests/Review/review.sh      (scripts/test runs it)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ZW=${ZONEWALL:-$ROOT/.build/debug/zonewall}
[ -x "$ZW" ] || { echo "review.sh: no zonewall binary at $ZW (set ZONEWALL)"; exit 1; }
ZW=$(cd "$(dirname "$ZW")" && pwd)/$(basename "$ZW")

passed=0 failed=0 skipped=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
skip() {
    echo "############################################################"
    echo "# SKIPPED: $*"
    echo "############################################################"
    skipped=$((skipped + 1))
}
expect_status() { # WHAT WANT GOT
    if [ "$2" -eq "$3" ]; then pass "$1 (exit $3)"; else fail "$1: exit $3, wanted $2"; fi
}
contains() { # WHAT FILE TEXT
    if grep -qF -- "$3" "$2"; then pass "$1"; else fail "$1: '$3' not in $2:"; sed 's/^/    /' "$2" | head -40; fi
}

WORK=$(mktemp -d /tmp/zw-review-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# ---- a git repository with a base and a head commit ---------------------------------------
REPO=$WORK/repo
mkdir -p "$REPO/policies"
cp "$ROOT"/Policies/*.yaml "$REPO/policies/"
git() { command git -C "$REPO" -c user.name=review -c user.email=review@example.invalid -c init.defaultBranch=main "$@"; }
git init -q && git add -A && git commit -qm base
# The head: one flow opened, one closed, a member moved from workers (its /24) into db, a file renamed.
sed -i 's|ports: \[tcp/80, tcp/443, icmp\]|ports: [tcp/443, icmp]|' "$REPO/policies/rules.yaml"
printf 'allow:\n  - from: web\n    to: db\n    ports: [tcp/5432]\n' >"$REPO/policies/more.yaml"
git add policies/more.yaml
sed -i 's|members: \[203.0.113.5, 203.0.113.6, "2001:db8:30::5"\]|members: [203.0.113.5, 203.0.113.6, 203.0.113.21, "2001:db8:30::5"]|' "$REPO/policies/zones.yaml"
git mv policies/expect.yaml policies/checks.yaml
sed -i -e 's|{ from: web, to: db, port: tcp/5432, verdict: deny }|{ from: web, to: db, port: tcp/5432, verdict: allow }|' \
    -e '/from: 192.0.2.20, to: 203.0.113.5,/d' "$REPO/policies/checks.yaml"
git commit -qam head

cd "$REPO"
"$ZW" diff --base HEAD~1 --policies policies --format json >"$WORK/diff.json" 2>"$WORK/diff.err"
expect_status "diff --base HEAD~1 reports a change" 5 $?
cat >"$WORK/want.json" <<'JSON'
{
  "audit": {
    "added": [],
    "removed": []
  },
  "closed": [
    {
      "from": "world",
      "ports": ["tcp/80"],
      "to": "web"
    }
  ],
  "failsafe": {
    "closed": [],
    "opened": []
  },
  "members": {
    "added": [
      {
        "member": "203.0.113.21",
        "zone": "db"
      }
    ],
    "removed": [
      {
        "member": "203.0.113.21",
        "zone": "cache"
      }
    ]
  },
  "moved": {
    "closed": [
      {
        "direction": "from peer",
        "members": ["203.0.113.21"],
        "now": "db",
        "peer": "api",
        "peerWas": "api",
        "ports": ["tcp/6379"],
        "was": "cache"
      }
    ],
    "opened": [
      {
        "direction": "from peer",
        "members": ["203.0.113.21"],
        "now": "db",
        "peer": "api",
        "peerWas": "api",
        "ports": ["tcp/5432"],
        "was": "cache"
      },
      {
        "direction": "from peer",
        "members": ["203.0.113.21"],
        "now": "db",
        "peer": "web",
        "peerWas": "web",
        "ports": ["tcp/5432"],
        "was": "cache"
      },
      {
        "direction": "from peer",
        "members": ["203.0.113.21"],
        "now": "db",
        "peer": "workers",
        "peerWas": "workers",
        "ports": ["tcp/5432"],
        "was": "cache"
      }
    ]
  },
  "opened": [
    {
      "from": "web",
      "ports": ["tcp/5432"],
      "to": "db"
    }
  ],
  "settings": [],
  "zones": {
    "added": [],
    "removed": []
  }
}
JSON
if diff -u "$WORK/want.json" "$WORK/diff.json"; then pass "diff JSON against a git revision is exact"; else fail "diff JSON"; fi

"$ZW" diff --base HEAD --policies policies >"$WORK/same.txt"
expect_status "diff against the same revision: no change" 0 $?
contains "no change says so" "$WORK/same.txt" "no change in meaning"

"$ZW" diff --base HEAD~1 --policies policies --format markdown >"$WORK/diff.md"
expect_status "markdown diff" 5 $?
contains "markdown summary line" "$WORK/diff.md" "### zonewall: opens 4 flows, closes 2, 2 member changes"
contains "markdown names the opening rule in the new policy" "$WORK/diff.md" "| web | db | \`tcp/5432\` | \`policies/more.yaml:2\` |"
contains "markdown names the closing rule in the old policy at its revision" "$WORK/diff.md" '| world | web | `tcp/80` | `HEAD~1:policies/rules.yaml:'
contains "markdown carries a mermaid graph" "$WORK/diff.md" '```mermaid'

# A base directory works the same as a revision.
mkdir -p "$WORK/basedir" && command git -C "$REPO" show HEAD~1:policies/rules.yaml >"$WORK/basedir/rules.yaml"
command git -C "$REPO" show HEAD~1:policies/zones.yaml >"$WORK/basedir/zones.yaml"
"$ZW" diff --base "$WORK/basedir" --policies policies --format json >"$WORK/dirdiff.json"
expect_status "diff --base DIR" 5 $?
if cmp -s "$WORK/diff.json" "$WORK/dirdiff.json"; then pass "directory base gives the same diff as the revision"; else fail "directory base differs"; fi

# An invalid base: exit 1, the diagnostic names the file at its revision.
printf '  - {from: world, to: nowhere, ports: [tcp/1]}\n' >>"$REPO/policies/more.yaml"
git commit -qam broken
git revert --no-edit HEAD >/dev/null
"$ZW" diff --base HEAD~1 --policies policies >/dev/null 2>"$WORK/bad.err"
expect_status "invalid base policy" 1 $?
contains "diagnostic names the file at its revision" "$WORK/bad.err" "HEAD~1:policies/more.yaml:5:"
contains "with the usual message" "$WORK/bad.err" "unknown zone 'nowhere'"

"$ZW" diff --base no-such-rev --policies policies >/dev/null 2>"$WORK/rev.err"
expect_status "unknown revision" 1 $?
contains "unknown revision is named" "$WORK/rev.err" "'no-such-rev' is neither a directory nor a git revision"

PATH=/nonexistent "$ZW" diff --base HEAD~1 --policies policies >/dev/null 2>"$WORK/nogit.err"
expect_status "git missing" 1 $?
contains "git missing is said clearly" "$WORK/nogit.err" "git is not installed"

# A base revision is read as a checkout is: names git would quote, symbolic links followed,
# a directory named *.yaml refused.
ODD="$WORK/odd" && mkdir -p "$ODD/policies" "$ODD/shared"
printf 'zones:\n  web: {members: [192.0.2.16/28]}\n' >"$ODD/policies/zones.yaml"
printf 'zones:\n  uni: {members: [192.0.2.210]}\n' >"$ODD/policies/é ü.yaml"
printf 'allow:\n  - {from: web, to: uni, ports: [tcp/443]}\n' >"$ODD/shared/common.yaml"
ln -s ../shared/common.yaml "$ODD/policies/link.yaml"
oddgit() { command git -C "$ODD" -c user.name=review -c user.email=review@example.invalid -c init.defaultBranch=main "$@"; }
oddgit init -q && oddgit add -A && oddgit commit -qm odd
(cd "$ODD" && "$ZW" diff --base HEAD --policies policies >"$WORK/odd.out" 2>&1)
expect_status "diff against HEAD of unusual file names and a symlink: no change" 0 $?
contains "… said so" "$WORK/odd.out" "no change in meaning"
mkdir "$ODD/policies/dir.yaml" && echo x >"$ODD/policies/dir.yaml/inner.txt"
oddgit add -A && oddgit commit -qm dir && rm -r "$ODD/policies/dir.yaml"
(cd "$ODD" && "$ZW" diff --base HEAD --policies policies >/dev/null 2>"$WORK/odd.err")
expect_status "a base holding a directory named dir.yaml" 1 $?
contains "… is refused as the directory loader refuses it" "$WORK/odd.err" "HEAD:policies/dir.yaml: error: cannot read file: not a regular file"

# The change that adds the policy directory is compared with an empty policy.
FIRST="$WORK/first" && mkdir -p "$FIRST"
firstgit() { command git -C "$FIRST" -c user.name=review -c user.email=review@example.invalid -c init.defaultBranch=main "$@"; }
firstgit init -q && firstgit commit -q --allow-empty -m empty
mkdir "$FIRST/policies" && printf 'zones:\n  web: {members: [192.0.2.16/28]}\n  db: {members: [203.0.113.5]}\nallow:\n  - {from: web, to: db, ports: [tcp/5432]}\n' >"$FIRST/policies/p.yaml"
firstgit add -A && firstgit commit -qm policies
(cd "$FIRST" && "$ZW" diff --base HEAD~1 --policies policies >"$WORK/first.out" 2>"$WORK/first.err")
expect_status "diff against a revision without the policy directory" 5 $?
contains "… says it compares with an empty policy" "$WORK/first.err" "HEAD~1:policies: note: the policy directory does not exist at this revision; compared with an empty policy"
contains "… and lists what the new policy allows" "$WORK/first.out" "+ web → db: tcp/5432"

# ---- the CI recipe, as another CI system would call it ----------------------------------------
"$ROOT/packaging/ci/zonewall-ci.sh" --zonewall "$ZW" --policies policies --base HEAD~3 --comment "$WORK/comment.md" >"$WORK/ci.log" 2>&1
rc=$?
expect_status "CI script: valid policy that changes meaning passes" 0 $rc
[ $rc -eq 0 ] || sed 's/^/    /' "$WORK/ci.log"
contains "CI script writes the comment body" "$WORK/comment.md" "### zonewall: opens 4 flows, closes 2"
contains "CI script ran zonewall test" "$WORK/ci.log" "==> zonewall test"

GITHUB_OUTPUT=$WORK/gh-output "$ROOT/packaging/ci/zonewall-ci.sh" --zonewall "$ZW" --policies policies --base HEAD --comment "$WORK/same.md" >/dev/null 2>&1
expect_status "CI script: no change passes" 0 $?
contains "CI script sets the changed output" "$WORK/gh-output" "changed=false"

sed -i 's|verdict: allow }|verdict: deny }|' "$REPO/policies/checks.yaml"
"$ROOT/packaging/ci/zonewall-ci.sh" --zonewall "$ZW" --policies policies --base HEAD --comment "$WORK/c2.md" >"$WORK/ci2.log" 2>&1
expect_status "CI script: a failing expectation fails" 1 $?
command git -C "$REPO" checkout -q policies/checks.yaml

printf 'zones:\n  web: {members: [192.0.2.1/24]}\n' >"$REPO/policies/broken.yaml"
"$ROOT/packaging/ci/zonewall-ci.sh" --zonewall "$ZW" --policies policies --base HEAD --comment "$WORK/c3.md" >"$WORK/ci3.log" 2>&1
expect_status "CI script: an invalid policy fails" 1 $?
contains "CI script emits GitHub annotations" "$WORK/ci3.log" "::error file=policies/broken.yaml,line=2"
rm "$REPO/policies/broken.yaml"

if unshare -rn true 2>/dev/null; then
    "$ROOT/packaging/ci/zonewall-ci.sh" --zonewall "$ZW" --policies policies --kernel --comment "$WORK/c4.md" >"$WORK/ci4.log" 2>&1
    expect_status "CI script: --kernel validates in a namespace of its own" 0 $?
    contains "the kernel accepted the rule set" "$WORK/ci4.log" "accepts the rule set"
else
    skip "CI script --kernel: unshare -rn is not permitted here"
fi
cd "$ROOT"

# ---- check --strict and the lints --------------------------------------------------------------
mkdir -p "$WORK/lint"
# (tcp/22 is a failsafe port, so the lock-out warning of `check` stays out of this test.)
cat >"$WORK/lint/p.yaml" <<'YAML'
zones:
  web: {members: [192.0.2.16/28]}
  api: {members: [198.51.100.10]}
allow:
  - {from: world, to: web, ports: [tcp]}
  - {from: web, to: api, ports: [tcp/443]}
settings: {failsafe: [tcp/22]}
YAML
"$ZW" check --policies "$WORK/lint" >/dev/null 2>"$WORK/lint.err"
expect_status "check: warnings alone pass" 0 $?
contains "lint warning with file:line:col" "$WORK/lint.err" "$WORK/lint/p.yaml:5:5: warning: this rule lets the whole world reach every tcp port"
contains "lint hint says how to silence it" "$WORK/lint.err" "ignore: [world-open]"
"$ZW" check --strict --policies "$WORK/lint" >"$WORK/strict.out" 2>&1
expect_status "check --strict fails on warnings" 1 $?
if grep -q '^ok:' "$WORK/strict.out" || ! grep -q '^failed (--strict: warnings fail): ' "$WORK/strict.out"; then
    fail "check --strict's summary says the check failed, not ok: $(cat "$WORK/strict.out")"
else
    pass "check --strict's summary says the check failed"
fi
"$ZW" check --strict --format json --policies "$WORK/lint" >"$WORK/strict.json" 2>/dev/null
expect_status "check --strict --format json fails on warnings" 1 $?
if python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["valid"] is True and d["passed"] is False and d["strict"] is True and d["warnings"] > 0 else 1)' "$WORK/strict.json"; then
    pass "check --strict --format json: valid, but passed false"
else
    fail "check --strict --format json should say valid true, passed false, strict true: $(cat "$WORK/strict.json")"
fi
"$ZW" check --format json --policies "$WORK/lint" 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["passed"] is True and d["strict"] is False else 1)' \
    && pass "check --format json without --strict: passed true" || fail "check --format json without --strict should say passed true"
"$ZW" check --strict --format github --policies "$WORK/lint" >"$WORK/strict.gh" 2>/dev/null
if grep -q '^::warning' "$WORK/strict.gh" || ! grep -q '^::error file=.*whole world' "$WORK/strict.gh"; then
    fail "check --strict --format github annotates the failing warnings as errors: $(cat "$WORK/strict.gh")"
else
    pass "check --strict --format github annotates the failing warnings as errors"
fi
sed -i 's|ports: \[tcp\]}|ports: [tcp], lint: {ignore: [world-open], reason: "a honeypot"}}|' "$WORK/lint/p.yaml"
"$ZW" check --strict --policies "$WORK/lint" >/dev/null 2>"$WORK/lint2.err"
expect_status "check --strict passes once the lint is silenced with a reason" 0 $?

# ---- the JSON Schema ---------------------------------------------------------------------------
"$ZW" schema >"$WORK/schema.json"
if cmp -s "$WORK/schema.json" "$ROOT/packaging/schema/zonewall-policy.schema.json"; then
    pass "zonewall schema equals the committed schema file"
else
    fail "zonewall schema differs from packaging/schema/zonewall-policy.schema.json"
fi
if python3 -c 'import jsonschema, yaml' 2>/dev/null; then
    # Every policy in Policies/ and every fixture directory the tests hold (good ones accepted by
    # both the schema and check; bad ones rejected by the schema). Generic: new fixtures join.
    # (The fuzz corpus is not a set of policies: it holds deliberately broken inputs.)
    mapfile -t good < <(find "$ROOT/Policies" "$ROOT/Tests" \( -path '*/.build' -o -path '*/Fuzz' \) -prune -o \( -name '*.yaml' -o -name '*.yml' \) -print | grep -v '/bad/' | sort)
    mapfile -t bad < <(find "$ROOT/Tests" -path '*/Fixtures/bad/*' \( -name '*.yaml' -o -name '*.yml' \) | sort)
    out=$(python3 - "$WORK/schema.json" "${#good[@]}" "${good[@]}" "${bad[@]}" <<'PY'
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
n = int(sys.argv[2]); good, bad = sys.argv[3:3 + n], sys.argv[3 + n:]
load = lambda p: yaml.safe_load(open(p))
for p in good:
    errs = sorted(v.iter_errors(load(p)), key=str)
    print(("GOOD-OK " if not errs else "GOOD-REJECTED ") + p + ("" if not errs else ": " + errs[0].message))
for p in bad:
    errs = list(v.iter_errors(load(p)))
    print(("BAD-REJECTED " + p + ": " + errs[0].message) if errs else ("BAD-ACCEPTED " + p))
PY
)
    echo "$out" | sed 's/^/    /'
    if [ -z "$(echo "$out" | grep -E '^(GOOD-REJECTED|BAD-ACCEPTED)')" ] && [ "$(echo "$out" | grep -c '^GOOD-OK')" -ge 6 ] \
        && [ "$(echo "$out" | grep -c '^BAD-REJECTED')" -ge 3 ]; then
        pass "schema accepts every policy and good fixture ($(echo "$out" | grep -c '^GOOD-OK')) and rejects every bad one ($(echo "$out" | grep -c '^BAD-REJECTED'))"
    else
        fail "schema acceptance"
    fi
    for name in unknown-key wrong-type missing-ports; do
        contains "schema rejects $name" <(echo "$out") "BAD-REJECTED $ROOT/Tests/PolicyReviewTests/Fixtures/bad/$name.yaml"
    done
else
    skip "schema validation: python3 jsonschema and yaml are missing (apt-get install python3-jsonschema python3-yaml)"
fi
# check stays the authority on meaning: good fixtures are valid policies, bad ones are refused.
for f in "$ROOT"/Tests/PolicyReviewTests/Fixtures/good/*.yaml; do
    d=$WORK/fixture-$(basename "$f" .yaml); mkdir -p "$d"; cp "$f" "$d/"
    if [ "$(basename "$f")" = empty.yaml ]; then continue; fi
    "$ZW" check --policies "$d" >/dev/null 2>"$d.err" && pass "check accepts fixture $(basename "$f")" || { fail "check refuses fixture $(basename "$f")"; cat "$d.err"; }
done
for f in "$ROOT"/Tests/PolicyReviewTests/Fixtures/bad/*.yaml; do
    d=$WORK/bad-$(basename "$f" .yaml); mkdir -p "$d"; cp "$f" "$d/"
    "$ZW" check --policies "$d" >/dev/null 2>&1
    rc=$?
    expect_status "check refuses bad fixture $(basename "$f")" 1 $rc
done

# ---- pictures ----------------------------------------------------------------------------------
"$ZW" graph --policies "$ROOT/Policies" --format mermaid >"$WORK/g.mmd"
expect_status "graph mermaid" 0 $?
contains "graph edges carry merged ports" "$WORK/g.mmd" '-->|"tcp/80, tcp/443, icmp"|'
"$ZW" graph --policies "$ROOT/Policies" --format dot --zone db >"$WORK/g.dot"
contains "graph --zone keeps the neighbours" "$WORK/g.dot" '"api" -> "db" [label="tcp/5432"];'
"$ZW" graph --policies "$ROOT/Policies" --zone dbb >/dev/null 2>"$WORK/g.err"
expect_status "graph --zone with an unknown zone" 1 $?
contains "graph --zone suggests the zone" "$WORK/g.err" "did you mean 'db'?"
if command -v dot >/dev/null; then
    "$ZW" graph --policies "$ROOT/Policies" --format svg >"$WORK/g.svg"
    expect_status "graph svg through Graphviz" 0 $?
    contains "svg is an svg" "$WORK/g.svg" "<svg"
else
    skip "graph --format svg: Graphviz's dot is not installed"
fi
PATH=/nonexistent "$ZW" graph --policies "$ROOT/Policies" --format svg >/dev/null 2>"$WORK/nodot.err"
expect_status "svg without Graphviz" 1 $?
contains "svg without Graphviz says how to install it" "$WORK/nodot.err" "apt-get install graphviz"

# ---- the HTML report in a real browser ---------------------------------------------------------
cd "$REPO"
"$ZW" report --policies policies --html "$WORK/report.html" --base HEAD~3 >"$WORK/report.out"
expect_status "report --html --base" 0 $?
cd "$ROOT"
if grep -qE '(src|href)=|https?://' "$WORK/report.html"; then
    fail "report references outside resources"
else
    pass "report is self-contained (no src=, href=, URLs)"
fi
CHROMIUM=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$CHROMIUM" ]; then
    skip "HTML report browser test: Chromium is not installed (apt-get install chromium)"
else
    PROFILE=$WORK/chromium-profile
    browser() { timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --user-data-dir="$PROFILE" --no-first-run "$@" 2>>"$WORK/chromium.log"; }
    browser --dump-dom "file://$WORK/report.html" >"$WORK/dom.html"
    browser --screenshot="$WORK/report.png" --window-size=1400,1000 "file://$WORK/report.html" >/dev/null
    # The DOM after the page's script ran: it marks the body ready and counts the cells it wired up.
    contains "browser ran the page's script" "$WORK/dom.html" 'data-ready="true"'
    # Parsed, not grepped: attribute values may hold newlines.
    cell() {
        python3 - "$WORK/dom.html" "$1" "$2" <<'PY'
import sys
from html.parser import HTMLParser
path, want_from, want_to = sys.argv[1:4]
class P(HTMLParser):
    def __init__(self):
        super().__init__(); self.hit = None; self.text = None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and a.get("data-from") == want_from and a.get("data-to") == want_to and self.hit is None:
            self.hit = a; self.text = ""
    def handle_data(self, data):
        if self.text is not None and self.hit is not None and self.text == "":
            self.text = data
p = P(); p.feed(open(path).read())
if p.hit:
    print("state=%s change=%s rule=%s text=%s" % (p.hit.get("data-state"), p.hit.get("data-change", "-"), p.hit.get("data-rule", "-"), p.text))
PY
    }
    allowed=$(cell api db) denied=$(cell web cache) opened=$(cell web db)
    echo "    api→db:    $allowed"; echo "    web→cache: $denied"; echo "    web→db:    $opened"
    [[ $allowed == "state=allow change=- rule=policies/rules.yaml:11 (tcp/5432) text=tcp/5432" ]] \
        && pass "browser: the allowed cell api→db shows tcp/5432 and its rule" || fail "browser: allowed cell api→db"
    [[ $denied == "state=deny change=- rule=- text=–" ]] \
        && pass "browser: the denied cell web→cache is denied" || fail "browser: denied cell web→cache"
    [[ $opened == "state=allow change=opened rule=policies/more.yaml:2 (tcp/5432) text=tcp/5432" ]] \
        && pass "browser: the cell opened by the change is marked" || fail "browser: opened cell"
    if [ -s "$WORK/report.png" ] && [ "$(head -c 8 "$WORK/report.png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ]; then
        pass "browser: screenshot taken ($(stat -c %s "$WORK/report.png") bytes)"
        [ -n "${ZONEWALL_REVIEW_KEEP:-}" ] && cp "$WORK/report.png" "$WORK/report.html" "$ZONEWALL_REVIEW_KEEP/"
    else
        fail "browser: no screenshot"; tail -5 "$WORK/chromium.log"
    fi
fi

# ---- explain: impossible queries are errors, and --batch answers every line in order ----------
"$ZW" explain --policies "$ROOT/Policies" 192.0.2.20 2001:db8:20::10 tcp/443 >/dev/null 2>"$WORK/mixed.err"
expect_status "explain: an IPv4 and an IPv6 address" 1 $?
contains "explain: … says no packet goes between them" "$WORK/mixed.err" "is an IPv4 address and '2001:db8:20::10' an IPv6 one"
"$ZW" explain --policies "$ROOT/Policies" db user:billing tcp/1 >/dev/null 2>"$WORK/user.err"
expect_status "explain: a user as the receiver" 1 $?
contains "explain: … a user is only a sender" "$WORK/user.err" "a user is only a sender"
for q in 'iface:eth* db tcp/5432' 'unit:*.service db tcp/5432'; do
    # shellcheck disable=SC2086
    "$ZW" explain --policies "$ROOT/Policies" $q >/dev/null 2>"$WORK/glob.err"
    expect_status "explain: a wildcard is no one endpoint ($q)" 1 $?
done
printf 'web db tcp/5432\nbogus line\napi db tcp/5432\nweb db tcp/99999\n' \
    | "$ZW" explain --batch --policies "$ROOT/Policies" >"$WORK/batch.out" 2>"$WORK/batch.err"
expect_status "explain --batch with bad lines" 1 $?
if [ "$(cat "$WORK/batch.out")" = "$(printf 'deny web db tcp/5432\nerror bogus line\nallow api db tcp/5432\nerror web db tcp/99999')" ]; then
    pass "explain --batch: one answer per query, in order, errors included"
else
    fail "explain --batch answers"; cat "$WORK/batch.out"
fi
contains "explain --batch: errors name their line" "$WORK/batch.err" "error: line 4: bad port spec 'tcp/99999'"

echo "review: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
