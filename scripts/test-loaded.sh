#!/bin/sh
# SPDX-License-Identifier: MIT
#
# scripts/test-loaded.sh [RUNS]: run scripts/test.sh RUNS times in a row (default 3) while
# two busy loops compete for the CPUs, as on a loaded CI machine; print each run's time and
# result; exit non-zero if any run failed. The busy loops end with the script, whatever
# way it ends. Each run's output is in test-loaded-N.log in the current directory.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-3}
LOOPS=""
stop_loops() {
	[ -n "$LOOPS" ] && kill $LOOPS 2>/dev/null
	LOOPS=""
}
trap stop_loops EXIT
trap 'exit 130' INT TERM
for _ in 1 2; do
	sh -c 'while :; do :; done' &
	LOOPS="$LOOPS $!"
done

FAILED=0
i=1
while [ "$i" -le "$RUNS" ]; do
	t0=$(date +%s)
	"$ROOT/scripts/test.sh" >"test-loaded-$i.log" 2>&1
	rc=$?
	t1=$(date +%s)
	[ $rc -eq 0 ] || FAILED=$((FAILED + 1))
	echo "run $i: $((t1 - t0)) s, exit $rc ($(grep -E '^(build-ci|build-asan|build-tsan) ' \
		"test-loaded-$i.log" | awk '{printf "%s %s %s; ", $1, $2, $3}'))"
	i=$((i + 1))
done
stop_loops
echo "$((RUNS - FAILED)) passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
