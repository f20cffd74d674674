#!/usr/bin/env bash
# Set up .venv (idempotent) and run the whole test suite; with no arguments, then the reference
# package's own suite against ome_arrow_core.compat (scripts/reference_suite.sh, a separate step).
#
# With no arguments the suite runs as two pytest processes at once, on disjoint halves (every test runs once):
# the core tests here, and in the background the engines half (tests/backends, tests/corruption, tests/compat)
# followed by the reference suite, its output kept in build/test-logs/engines.log and printed when it ends.
# OME_ARROW_TEST_JOBS=1 runs them one after another. With arguments: one pytest with them, as given.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# A fixed, private --basetemp (emptied by pytest at start): no scan of a shared /tmp/pytest-of-$USER, whose
# cleanup by another process mid-scan left pytest's own scandir iterator unclosed (a ResourceWarning -> error).
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest -q --basetemp=.pytest-tmp "$@"
fi
ENGINES=(tests/backends tests/corruption tests/compat)
rm -rf .pytest-tmp && mkdir -p .pytest-tmp
core() { .venv/bin/python -m pytest -q --basetemp=.pytest-tmp/core tests "${ENGINES[@]/#/--ignore=}"; }
# The background half leaves pytest's cache (--lf) to the foreground one: one writer of .pytest_cache.
engines() {
  local status=0
  .venv/bin/python -m pytest -q -p no:cacheprovider --basetemp=.pytest-tmp/engines "${ENGINES[@]}" || status=$?
  bash scripts/reference_suite.sh || status=$((status ? status : 1))
  return "$status"
}
if [ "${OME_ARROW_TEST_JOBS:-2}" = 1 ]; then
  status=0
  core || status=$?
  engines || status=$((status ? status : 1))
  exit "$status"
fi
logs=build/test-logs
mkdir -p "$logs"
engines </dev/null >"$logs/engines.log" 2>&1 &
other=$!
trap 'kill "$other" 2>/dev/null || true' INT TERM
core_status=0
core || core_status=$?
engines_status=0
wait "$other" || engines_status=$?
echo "== tests/backends, tests/corruption, tests/compat and the reference suite (ran beside the above)"
cat "$logs/engines.log"
[ "$core_status" = 0 ] || echo "error: the core tests failed (exit $core_status)" >&2
[ "$engines_status" = 0 ] || echo "error: the engines tests or the reference suite failed (exit $engines_status)" >&2
[ "$core_status" = 0 ] && [ "$engines_status" = 0 ]
