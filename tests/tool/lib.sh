# SPDX-License-Identifier: MIT
# Sourced by the tests of the shmbus tool: a private bus directory removed at exit, a way
# to run the tool and keep its stdout, stderr and status, checks that say what they
# expected, and polling with a deadline instead of fixed sleeps.
#   . lib.sh SHMBUS_BINARY

SB=${1:?usage: $0 PATH_TO_SHMBUS}
[ -x "$SB" ] || { echo "not executable: $SB" >&2; exit 1; }
PY=/usr/bin/python3

DIR=$(mktemp -d /dev/shm/shmbus-tool-XXXXXX) || exit 1
WORK=$(mktemp -d) || exit 1
BGPIDS=""
cleanup() {
	for p in $BGPIDS; do
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$DIR" "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
export SHMBUS_DIR="$DIR"
unset SHMBUS_BUS
BUSDIR="$DIR/default"

CHECKS=0
fail() {
	echo "FAIL: $*" >&2
	if [ -s "$WORK/out" ]; then
		echo "--- stdout of the last command:" >&2
		cat "$WORK/out" >&2
	fi
	if [ -s "$WORK/err" ]; then
		echo "--- stderr of the last command:" >&2
		cat "$WORK/err" >&2
	fi
	exit 1
}
pass() {
	CHECKS=$((CHECKS + 1))
}

# run ARGS...: run the tool; its stdout is in $WORK/out (and $OUT), stderr in $WORK/err,
# status in $RC.
run() {
	"$SB" "$@" >"$WORK/out" 2>"$WORK/err"
	RC=$?
	OUT=$(cat "$WORK/out")
}

# run_with VAR=VALUE ARGS...: run with one more environment variable (a prefix assignment
# to a shell function may outlive the call in some shells).
run_with() {
	assignment=$1
	shift
	env "$assignment" "$SB" "$@" >"$WORK/out" 2>"$WORK/err"
	RC=$?
	OUT=$(cat "$WORK/out")
}

# expect_rc N WHAT: the last run exited with N.
expect_rc() {
	[ "$RC" -eq "$1" ] || fail "$2: exit status $RC, expected $1"
	pass
}

# expect_out TEXT WHAT: the last run printed exactly TEXT (trailing newlines aside).
expect_out() {
	[ "$OUT" = "$1" ] || fail "$2: stdout differs from the expected:
$1"
	pass
}

# expect_grep FILE PATTERN WHAT: a line of FILE (out or err) matches the extended regex.
expect_grep() {
	grep -Eq -- "$2" "$WORK/$1" || fail "$3: no line of $1 matches /$2/"
	pass
}

# expect_no_grep FILE PATTERN WHAT
expect_no_grep() {
	if grep -Eq -- "$2" "$WORK/$1"; then
		fail "$3: a line of $1 matches /$2/"
	fi
	pass
}

# expect_json PYTHON_EXPR WHAT: the last run's stdout parses as JSON (bound to j) and the
# expression holds; the expression may use any(), all(), next() etc.
expect_json() {
	$PY -c '
import json, sys
j = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2])
sys.exit(0 if ok else 3)
' "$WORK/out" "$1" || fail "$2: JSON check failed: $1"
	pass
}

# poll SECONDS COMMAND...: run COMMAND until it succeeds, for at most SECONDS (give tens of
# seconds: a loaded machine is slow, and a condition that holds returns at once).
poll() {
	limit=$(($(date +%s) + $1))
	shift
	while ! "$@"; do
		[ "$(date +%s)" -le "$limit" ] || return 1
		# Only the interval between two checks of the condition, not a wait for anything.
		sleep 0.02
	done
}

# readers_of TOPIC: the pids of TOPIC's readers, one per line (from stat --json).
readers_of() {
	"$SB" stat "$1" --json --interval 0 2>/dev/null |
		$PY -c 'import json,sys; [print(r["pid"]) for t in json.load(sys.stdin)["topics"] for r in t.get("readers", [])]'
}

# has_reader TOPIC PID [CONSUMED]: PID reads TOPIC (and has consumed CONSUMED messages).
has_reader() {
	"$SB" stat "$1" --json --interval 0 2>/dev/null | $PY -c '
import json, sys
pid, consumed = int(sys.argv[1]), sys.argv[2]
rs = [r for t in json.load(sys.stdin)["topics"] for r in t.get("readers", [])]
sys.exit(0 if any(r["pid"] == pid and (consumed == "" or r["consumed"] == int(consumed))
		  for r in rs) else 1)
' "$2" "${3:-}"
}

# no_reader TOPIC PID: PID does not read TOPIC.
no_reader() {
	! readers_of "$1" | grep -qx "$2"
}
