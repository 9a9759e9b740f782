#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Looking at a bus creates nothing and logs nothing. The verbs that only look (topics,
# stat, doctor, tail) on a mistyped bus name fail with a message naming the missing
# directory, exit 1, and create no directory; with shmbusd running, they add no event to
# $sys.log (registering would log an attach, a detach and an exit for every look). Then
# stat and doctor say "1 client" and "1 crash" in the singular.
#   look.sh PATH_TO_SHMBUS PATH_TO_SHMBUSD
set -u
. "$(dirname "$0")/lib.sh"
SHMBUSD=${2:?usage: $0 PATH_TO_SHMBUS PATH_TO_SHMBUSD}

# ---- a mistyped bus: an error, exit 1, nothing created ----
run create t --capacity 64K
expect_rc 0 "create t on the bus 'default'"
run pub t one
expect_rc 0 "pub to t"

# look_typo WHAT ARGS...: ARGS run on the bus 'typo', which does not exist.
look_typo() {
	what=$1
	shift
	run --bus typo "$@"
	expect_rc 1 "$what on a mistyped bus"
	[ ! -e "$DIR/typo" ] || fail "$what on a mistyped bus created $DIR/typo"
	pass
}
missing="bus 'typo' does not exist \(no directory $DIR/typo\)"
for v in "topics" "topics --json" "stat --json --interval 0" "stat t --json --interval 0" \
	"stat --count 1 --interval 10" "tail t --timeout 0" "tail t --group g --timeout 0" \
	"tail \$sys.log --timeout 0"; do
	# shellcheck disable=SC2086 # the words of the command
	look_typo "$v" $v
	expect_grep err "^shmbus ${v%% *}: $missing\$" "$v on a mistyped bus says so"
	[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "$v on a mistyped bus: not one line on stderr"
	pass
done
look_typo doctor doctor
expect_grep out "^FAIL +$missing; check the bus name" "doctor on a mistyped bus is a FAIL"
expect_grep out "^0 OK, 0 WARN, 1 FAIL\$" "doctor's summary on a mistyped bus"
run_with SHMBUS_BUS=typo stat --json --interval 0
expect_rc 1 "stat on a mistyped SHMBUS_BUS"
expect_grep err "$missing" "a mistyped SHMBUS_BUS is named"
[ "$(ls -A "$DIR")" = default ] || fail "looking created: $(ls -A "$DIR")"
pass
# The looking verbs still see the bus that exists.
run tail t --from earliest --count 1 --timeout 5000 --raw
expect_rc 0 "tail of the bus that exists"
expect_out "one" "tail of the bus that exists"

# ---- with shmbusd: looking logs nothing ----
cat >"$WORK/shmbusd.conf" <<EOF
[bus]
name = default
dir = $DIR
EOF
"$SHMBUSD" --foreground --config "$WORK/shmbusd.conf" 2>"$WORK/daemon.log" &
DPID=$!
BGPIDS="$BGPIDS $DPID"
# Up when it answers a ping (stat --json says null until then).
daemon_answers() {
	kill -0 $DPID 2>/dev/null || fail "shmbusd exited: $(cat "$WORK/daemon.log")"
	"$SB" stat --json --interval 0 2>/dev/null |
		$PY -c 'import json, sys; sys.exit(json.load(sys.stdin)["daemon"] is None)'
}
poll 30 daemon_answers || fail "shmbusd never answered: $(cat "$WORK/daemon.log")"
pass

# logged PID EVENT: shmbusd logged EVENT for PID.
logged() {
	grep -q "\"event\":\"$2\",\"pid\":$1," "$WORK/daemon.log"
}
# reloads N: shmbusd logged N reloads.
reloads() {
	[ "$(grep -c '"event":"reload",' "$WORK/daemon.log")" -eq "$1" ]
}
# marker: a line in the log after every event of the processes that ended before it. A
# SIGHUP makes shmbusd reload its config and log it; a client's attach is logged while
# the client waits for the daemon's welcome, so before the client can end.
MARKS=0
marker() {
	MARKS=$((MARKS + 1))
	kill -HUP $DPID
	poll 30 reloads $MARKS || fail "shmbusd never logged reload $MARKS"
	pass
}
marker
before=$(wc -l <"$WORK/daemon.log")

# look ARGS...: run the tool in the background (for its pid) and wait for it.
LOOKERS=""
look() {
	"$SB" "$@" >"$WORK/out" 2>"$WORK/err" &
	p=$!
	wait $p
	RC=$?
	LOOKERS="$LOOKERS $p"
	expect_rc 0 "$* with shmbusd running"
}
look topics
look topics --json
look stat --json --interval 0
look stat t --json --interval 10
look stat --count 1 --interval 10
look doctor
expect_grep out "^OK +daemon: pid $DPID, " "doctor sees the daemon"
look tail t --from earliest --count 1 --timeout 5000
look tail t --timeout 0
look tail '$sys.log' --from earliest --count 1 --timeout 5000 --raw
# A tail that runs until shmbusd's once-a-second scan of the slot tables finds its reader
# slot and watches the process; its clean end (SIGINT) is no event either.
watched() {
	[ "$("$SB" stat --json --interval 0 | $PY -c 'import json, sys; print(json.load(sys.stdin)["bus_counters"]["watched"])')" -ge "$1" ]
}
"$SB" tail t >"$WORK/out" 2>"$WORK/err" &
p=$!
poll 30 watched 1 || fail "shmbusd never found the tail's slot"
kill -INT $p
wait $p
RC=$?
LOOKERS="$LOOKERS $p"
expect_rc 0 "a tail stopped by SIGINT"
marker
# Every event since, but the marker.
sed -n "$((before + 1)),\$p" "$WORK/daemon.log" | grep -v '"event":"reload",' >"$WORK/extra"
if [ -s "$WORK/extra" ]; then
	fail "looking at the bus logged: $(cat "$WORK/extra")"
fi
pass
grep -q '"event":"attach"' "$WORK/extra" && fail "a look registered"
pass

# ---- one client, one crash: singular ----
# A pub that registers and waits for lines on a FIFO the test holds open. Registering
# gives up after 500 ms on a daemon that does not answer (the pub then runs embedded):
# the pub holds its slot once it is done either way, and is started again if it did not
# register.
has_publisher() {
	"$SB" stat t --json --interval 0 2>/dev/null |
		$PY -c 'import json, sys; sys.exit(json.load(sys.stdin)["topics"][0]["publishers"] != 1)'
}
mkfifo "$WORK/pub.fifo"
for attempt in 1 2 3 4 5; do
	"$SB" pub t <"$WORK/pub.fifo" &
	PPID_=$!
	BGPIDS="$BGPIDS $PPID_"
	exec 9>"$WORK/pub.fifo"
	poll 30 has_publisher || fail "the pub $PPID_ never took its publisher slot"
	# Its attach is logged right after the welcome it waited for.
	poll 2 logged $PPID_ attach && break
	echo "the pub $PPID_ did not register (attempt $attempt); again" >&2
	exec 9>&-
	wait $PPID_
	[ $attempt -lt 5 ] || fail "no pub registered in 5 attempts"
done
pass
run stat --count 1 --interval 10
expect_grep out "^daemon: pid $DPID, 1 client, up [0-9]+h[0-9]{2}m[0-9]{2}s, 0 crashes cleaned up\$" "stat: 1 client"
run doctor
expect_grep out "^OK +daemon: pid $DPID, 1 client, up " "doctor: 1 client"
# Killed, it leaves its publisher slot: the daemon cleans up one crash.
kill -9 $PPID_
wait $PPID_ 2>/dev/null
exec 9>&-
poll 30 logged $PPID_ crash || fail "the crash of pub $PPID_ was never logged"
pass
run stat --count 1 --interval 10
expect_grep out "^daemon: pid $DPID, 0 clients, up [0-9hms]+, 1 crash cleaned up\$" "stat: 1 crash"
expect_grep out "^bus: 2 topics, 0 clients registered, 1 crash cleaned up \(0 reader slots, 1 publisher slot reclaimed\), 0 messages aborted\$" "stat: the bus line in the singular"

kill -TERM $DPID
wait $DPID
RC=$?
expect_rc 0 "shmbusd stopped by SIGTERM"

echo "look: $CHECKS checks passed"
