#!/usr/bin/env bash
# Runs every unit test binary, every fuzz corpus replay and every integration
# test, prints each one's output, and closes with "N passed, N failed".
# Usage: run_tests.sh UNIT_BIN... -- FUZZ_BIN...
set -u
: "${BUILD:=build}"
: "${PYTHON:=/usr/bin/python3}"
export BUILD PYTHON
export FIELDMQ="$BUILD/fieldmq"
pass=0
fail=0
failed=()

run() { # name cmd...
	local name=$1 t0 rc
	shift
	echo "=== $name"
	t0=$(date +%s)
	# TEST_WRAPPER: e.g. qemu-user for make cross-test (empty: run natively).
	timeout -k 5 300 ${TEST_WRAPPER:-} "$@"
	rc=$?
	if [ $rc -eq 0 ]; then
		pass=$((pass + 1))
		echo "--- ok: $name ($(($(date +%s) - t0))s)"
	else
		fail=$((fail + 1))
		failed+=("$name")
		echo "--- FAILED: $name (exit $rc)"
	fi
}

units=()
fuzz=()
seen_sep=0
for a in "$@"; do
	if [ "$a" = "--" ]; then seen_sep=1; continue; fi
	if [ $seen_sep -eq 0 ]; then units+=("$a"); else fuzz+=("$a"); fi
done

for t in "${units[@]}"; do
	run "$t" "$t"
done
for f in "${fuzz[@]}"; do
	n=$(basename "$f")
	run "$f" "$f" "tests/fuzz/corpus/${n#fuzz_}"
done
if [ -z "${SKIP_INTEGRATION:-}" ]; then
	# INTEGRATION: a space-separated list instead of every tests/integration/test_*.
	for t in ${INTEGRATION:-tests/integration/test_*}; do
		[ -x "$t" ] || continue
		case "$t" in
		*.py) run "$t" "$PYTHON" "$t" ;;
		*) run "$t" "$t" ;;
		esac
	done
fi

echo
if [ $fail -gt 0 ]; then
	echo "failed tests:"
	printf '  %s\n' "${failed[@]}"
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
