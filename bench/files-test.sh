#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench/files-test.sh BENCH DIR: a tiny run of shmbus-bench (BENCH) into DIR must leave
# the table, the JSON and the PNG plots at the top of DIR and the plots' data files and
# gnuplot script in DIR/data/, and its report must end with the list of exactly the files
# at the top of DIR. Exit 0 pass, 1 fail, 77 skip (no gnuplot: no plots to check).
set -u
BENCH=$1
DIR=$2

command -v gnuplot >/dev/null 2>&1 || {
	echo "SKIP: gnuplot not installed (gnuplot-nox)"
	exit 77
}

rm -rf "$DIR"
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
fail() {
	echo "FAIL: $*" >&2
	echo "--- its output:" >&2
	cat "$OUT" >&2
	exit 1
}

"$BENCH" --smoke --scenario spsc --scenario pingpong --peer shmbus --peer bare_ring \
	--out "$DIR" >"$OUT" 2>/dev/null || fail "shmbus-bench exited $?"

for f in report.txt results.jsonl throughput_msgs.png throughput_bytes.png \
	latency_pingpong.png data/plots.gp data/spsc-shmbus.dat data/spsc-bare_ring.dat \
	data/cdf-pingpong-0-shmbus.dat; do
	[ -s "$DIR/$f" ] || fail "$DIR/$f missing or empty"
done
for f in "$DIR"/*.dat; do
	[ -e "$f" ] && fail "a data file at the top of $DIR: $f"
done

# The list at the end: the lines after 'files in DIR/:', one file or directory each.
header="files in $DIR/:"
grep -qxF "$header" "$OUT" || fail "no line '$header'"
listed=$(sed -n "\\|^$header\$|,\$p" "$OUT" | sed 1d | awk '{print $1}' | sort)
# shellcheck disable=SC2012
present=$(ls -p "$DIR" | sort)
[ "$listed" = "$present" ] || fail "the list names [$(echo "$listed" | tr '\n' ' ')]," \
	"the directory holds [$(echo "$present" | tr '\n' ' ')]"
echo "ok: $(echo "$present" | tr '\n' ' ')"
