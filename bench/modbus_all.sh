#!/usr/bin/env bash
# The modbus section of `make bench`:
#   1. bench/modbus_bench.sh 100 100 1000 5: the adapter alone (probe) and the
#      daemon, coalesced and one request per point.
#   2. 100 Modbus TCP devices x 100 points and 1000 devices x 10 points at 1 s:
#      the daemon now and "before" (the threaded poller of 8f7c43c: one worker
#      thread per TCP device), coalesced: threads, CPU % and RSS side by side,
#      with [broker] persist = no, then both again with persist = yes
#      (fieldmq's default: retained readings also go to the SQLite store).
#      The load average of the machine is printed before each run.
# The "before" daemon is built once from `git archive 8f7c43c` into
# $BUILD/rev-8f7c43c (no worktree); without the git history those rows are
# left out. REV picks another commit.
set -u
cd "$(dirname "$0")/.."
: "${BUILD:=build}"
REV=${REV:-8f7c43c}
rc=0
bench/modbus_bench.sh 100 100 1000 5 || rc=1
before=
dir=$BUILD/rev-$REV
if [ -x "$dir/build/fieldmq" ]; then
	before=$dir/build/fieldmq
elif git cat-file -e "$REV^{commit}" 2>/dev/null; then
	rm -rf "$dir" && mkdir -p "$dir" && git archive "$REV" | tar -x -C "$dir" &&
		nice make -C "$dir" -j2 build/fieldmq >"$dir.log" 2>&1 && before=$dir/build/fieldmq
	[ -n "$before" ] || echo "modbus_all: could not build $REV (see $dir.log); no before rows"
fi
for run in "no 100 100" "no 1000 10" "yes 100 100" "yes 1000 10"; do
	set -- $run
	echo
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	PERSIST=$1 BEFORE=$before PROCS=fieldmq MODES=coalesced bench/modbus_bench.sh $2 $3 1000 10 || rc=1
done
[ -z "$before" ] || echo "before = fieldmq of $REV (a worker thread per Modbus TCP device)"
exit $rc
