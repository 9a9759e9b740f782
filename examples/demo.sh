#!/bin/sh
# SPDX-License-Identifier: MIT
#
# examples/demo.sh: several publisher and subscriber processes on one topic of a private
# bus. Starts fan-out subscribers (each must get every message) and the members of one
# group (together they must get every message exactly once), then publishers that wait
# until all readers are in, then, once they are done, one end-of-stream message per group
# member; prints each process's counts and rates and the aggregate rate; exits non-zero if
# any count is wrong or any process failed. The bus lives in a new directory under
# /dev/shm that is removed at the end. It shows that messages arrive, not how fast they can:
# all these processes share the machine's CPUs (build/bench/shmbus-bench measures speed).
# With -d SHMBUSD, the bus runs under a daemon on its built-in default config, and one more
# subscriber joins, stops reading once messages of every publisher reached it (in block
# mode that holds the publishers back), and is killed with SIGKILL: the daemon frees its
# slot at once (else the publishers would wait until one of them found it dead), and the
# daemon's events ($sys.log) are shown at the end.
# Nothing here sleeps for another process: each step waits for the event it needs (a
# socket, a line in a file, a process's exit), with a deadline that only catches a hang.
#
#   demo.sh [-b BINDIR] [-d SHMBUSD] [-n COUNT] [-s SIZE] [-p PUBLISHERS] [-f SUBSCRIBERS]
#           [-g MEMBERS]
set -u

usage() {
	cat <<USAGE
usage: $0 [options]
  -b DIR   where the publisher and subscriber programs are (default: this script's
           directory if they are there, else build/examples)
  -d PATH  run the bus under this shmbusd, and kill one subscriber on purpose
  -n N     messages per publisher (default 200000)
  -s B     payload bytes per message (default 64)
  -p N     publishers (default 3)
  -f N     fan-out subscribers (default 2)
  -g N     members of the group 'workers' (default 2)
USAGE
}

HERE=$(cd "$(dirname "$0")" && pwd)
# Installed next to the programs, or run from the source tree after scripts/main.sh.
if [ -x "$HERE/publisher" ]; then
	BINDIR=$HERE
else
	BINDIR="$HERE/../build/examples"
fi
COUNT=200000
SIZE=64
NPUB=3
NFAN=2
NGRP=2
DAEMON=""
while getopts b:d:n:s:p:f:g:h opt; do
	case $opt in
	b) BINDIR=$OPTARG ;;
	d) DAEMON=$OPTARG ;;
	n) COUNT=$OPTARG ;;
	s) SIZE=$OPTARG ;;
	p) NPUB=$OPTARG ;;
	f) NFAN=$OPTARG ;;
	g) NGRP=$OPTARG ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
PUB="$BINDIR/publisher"
SUB="$BINDIR/subscriber"
for p in "$PUB" "$SUB"; do
	if [ ! -x "$p" ]; then
		echo "demo: $p not found; build first (meson compile -C build) or pass -b" >&2
		exit 2
	fi
done

DIR=$(mktemp -d /dev/shm/shmbus-demo-XXXXXX) || exit 1
PIDS=""
cleanup() {
	for pid in $PIDS; do
		kill "$pid" 2>/dev/null
	done
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export SHMBUS_DIR="$DIR"
export SHMBUS_BUS=demo
TOPIC=demo.ticks
TOTAL=$((NPUB * COUNT))
READERS=$((NFAN + NGRP))

# Deadlines, in seconds, for things that take milliseconds; they only end a hang. A
# subscriber fails after DEADLINE s without a message, and a publisher after 30 s without
# all its readers (publisher --wait-readers).
DEADLINE=60

now_ns() { date +%s%N; }

# wait_line WHAT PID FILE GREP_ARGS...: block until FILE has a line that grep GREP_ARGS
# matches; tail -f follows the file and is woken by each write (inotify). Fails, saying
# that WHAT did not happen, if process PID (the one that writes it) ends first or
# DEADLINE seconds pass.
wait_line() {
	what=$1
	pid=$2
	file=$3
	shift 3
	fifo="$DIR/wait-line.fifo"
	rm -f "$fifo"
	mkfifo "$fifo" || return 1
	tail -n +1 -f --pid="$pid" "$file" >"$fifo" 2>/dev/null &
	tpid=$!
	timeout "$DEADLINE" grep -q -m 1 "$@" <"$fifo"
	rc=$?
	kill "$tpid" 2>/dev/null
	wait "$tpid" 2>/dev/null
	rm -f "$fifo"
	# However the follower ended, the file has the last word.
	if [ $rc -eq 0 ] || grep -q "$@" "$file"; then
		return 0
	fi
	case $rc in
	124) echo "demo: $what: not within $DEADLINE s" >&2 ;;
	*) echo "demo: $what: process $pid ended first (follower status $rc)" >&2 ;;
	esac
	return 1
}

FAILED=0
# wait_all PIDS: wait for each; count the failures.
wait_all() {
	for pid in "$@"; do
		if ! wait "$pid"; then
			FAILED=$((FAILED + 1))
		fi
	done
}

# field NAME FILE: the value of NAME=value in the report line of FILE (0 if absent).
field() {
	v=$(sed -n "s/.* $1=\([0-9]*\).*/\1/p" "$2" | head -n 1)
	echo "${v:-0}"
}

# show NAME: the report line of process NAME, and its stderr if it wrote any.
show() {
	cat "$DIR/$1.out"
	if [ -s "$DIR/$1.err" ]; then
		sed 's/^/    stderr: /' "$DIR/$1.err"
	fi
}

BAD=""

DPID=""
if [ -n "$DAEMON" ]; then
	# The built-in defaults: bus $SHMBUS_BUS in $SHMBUS_DIR, no declared topics.
	SHMBUSD_CONFIG="" "$DAEMON" --foreground 2>"$DIR/daemon.log" &
	DPID=$!
	PIDS="$DPID"
	# Its start event is logged once its control socket listens.
	if ! wait_line "shmbusd's start" "$DPID" "$DIR/daemon.log" -F '"event":"start"'; then
		echo "demo: shmbusd did not start:" >&2
		cat "$DIR/daemon.log" >&2
		exit 1
	fi
	echo "demo: shmbusd (pid $DPID) supervises the bus"
fi

NCPU=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)
NPROC=$((NPUB + NFAN + NGRP)) # the busy ones: the victim and the daemon hardly run
echo "demo: $NPUB publishers x $COUNT messages of $SIZE B on '$TOPIC';" \
	"$NFAN subscribers and group 'workers' of $NGRP (bus in $DIR)"

# Readers first: fan-out subscribers expect every message.
FAN_PIDS=""
i=1
while [ $i -le "$NFAN" ]; do
	"$SUB" -n "fan$i" -t $((DEADLINE * 1000)) "$TOPIC" "$TOTAL" >"$DIR/fan$i.out" \
		2>"$DIR/fan$i.err" &
	FAN_PIDS="$FAN_PIDS $!"
	i=$((i + 1))
done
# Group members read until the end-of-stream message each takes after all the data.
GRP_PIDS=""
i=1
while [ $i -le "$NGRP" ]; do
	"$SUB" -g workers -n "workers$i" -t $((DEADLINE * 1000)) -I $((DEADLINE * 1000)) \
		"$TOPIC" 0 >"$DIR/workers$i.out" 2>"$DIR/workers$i.err" &
	GRP_PIDS="$GRP_PIDS $!"
	i=$((i + 1))
done
PIDS="$PIDS $FAN_PIDS $GRP_PIDS"
VICTIM=""
WAIT_READERS=$READERS
if [ -n "$DAEMON" ] && [ "$NPUB" -gt 0 ]; then
	# Once messages of every publisher reached it, it stops reading (holding the
	# publishers back) and says so in victim.ready.
	: >"$DIR/victim.ready"
	"$SUB" -n victim -t $((DEADLINE * 1000)) -S "$NPUB" -r "$DIR/victim.ready" "$TOPIC" \
		"$TOTAL" >"$DIR/victim.out" 2>"$DIR/victim.err" &
	VICTIM=$!
	PIDS="$PIDS $VICTIM"
	WAIT_READERS=$((READERS + 1))
fi

# Publishers wait until every reader is in, so nobody misses the start.
T0=$(now_ns)
PUB_PIDS=""
i=1
while [ $i -le "$NPUB" ]; do
	"$PUB" -i "$i" -w "$WAIT_READERS" "$TOPIC" "$COUNT" "$SIZE" >"$DIR/pub$i.out" \
		2>"$DIR/pub$i.err" &
	PUB_PIDS="$PUB_PIDS $!"
	i=$((i + 1))
done
PIDS="$PIDS $PUB_PIDS"
if [ -n "$VICTIM" ]; then
	# Killed only once every publisher is past its wait for readers: killed sooner, the
	# victim would be missing from the count a publisher still waits for.
	if wait_line "the victim stalling" "$VICTIM" "$DIR/victim.ready" -x stalled; then
		kill -KILL "$VICTIM"
		wait "$VICTIM" 2>/dev/null
		echo "demo: killed subscriber $VICTIM with SIGKILL; it had stopped reading, which" \
			"holds the publishers back until its slot is freed"
		# The daemon frees its slot at once; the publishers go on meanwhile.
		wait_line "shmbusd's crash event for $VICTIM" "$DPID" "$DIR/daemon.log" \
			-F "\"event\":\"crash\",\"pid\":$VICTIM," ||
			BAD="$BAD no-crash-event-for-$VICTIM"
	else
		show victim
		BAD="$BAD victim-not-reached"
	fi
fi

# shellcheck disable=SC2086 # lists of pids
wait_all $PUB_PIDS
T_PUB=$(now_ns)
# Every data message is in: one end-of-stream message for each group member, which the
# group's cursor hands out after all the data (and at least one, which also ends a fan-out
# subscriber told to expect 0 messages).
if ! "$PUB" -E $((NGRP > 0 ? NGRP : 1)) "$TOPIC" 0 "$SIZE" >"$DIR/end.out" 2>"$DIR/end.err"
then
	FAILED=$((FAILED + 1))
	sed 's/^/end-of-stream publisher: /' "$DIR/end.err" >&2
fi
# shellcheck disable=SC2086
wait_all $FAN_PIDS
T_FAN=$(now_ns)
# shellcheck disable=SC2086
wait_all $GRP_PIDS
PIDS="$DPID"



SENT=0
i=1
while [ $i -le "$NPUB" ]; do
	show "pub$i"
	SENT=$((SENT + $(field sent "$DIR/pub$i.out")))
	i=$((i + 1))
done

DELIVERED=0
i=1
while [ $i -le "$NFAN" ]; do
	show "fan$i"
	got=$(field received "$DIR/fan$i.out")
	DELIVERED=$((DELIVERED + got))
	if [ "$got" -ne "$TOTAL" ]; then
		BAD="$BAD fan$i:$got/$TOTAL"
	fi
	i=$((i + 1))
done
GSUM=0
SHARES=""
i=1
while [ $i -le "$NGRP" ]; do
	show "workers$i"
	got=$(field received "$DIR/workers$i.out")
	GSUM=$((GSUM + got))
	SHARES="$SHARES${SHARES:+ + }$got"
	i=$((i + 1))
done
DELIVERED=$((DELIVERED + GSUM))
if [ "$NGRP" -gt 0 ]; then
	echo "group workers: $GSUM messages between $NGRP members ($SHARES)"
	if [ "$GSUM" -ne "$TOTAL" ]; then
		BAD="$BAD workers:$GSUM/$TOTAL"
	fi
fi

awk -v t0="$T0" -v tp="$T_PUB" -v tf="$T_FAN" -v pub="$SENT" -v del="$DELIVERED" \
	-v size="$SIZE" 'BEGIN {
	sp = (tp - t0) / 1e9; sf = (tf - t0) / 1e9
	if (sp <= 0) sp = 1e-9
	if (sf <= 0) sf = 1e-9
	printf "aggregate: published %d messages in %.3f s (%.3f M msg/s);", pub, sp, pub / sp / 1e6
	printf " delivered %d in %.3f s (%.3f M msg/s, %.1f MB/s)\n", del, sf, del / sf / 1e6,
		del * size / sf / 1e6
}'
# The rates above are of busy processes sharing few CPUs, most of them checking every byte.
echo "note: this is a demo, not a benchmark: $NPROC publisher and subscriber processes" \
	"shared $NCPU CPUs, checking every message;"
echo "      to measure shmbus, run build/bench/shmbus-bench --quick (see docs/performance.md)"

if [ -n "$DPID" ]; then
	kill -TERM "$DPID"
	if ! wait "$DPID"; then
		BAD="$BAD shmbusd-exit-status"
	fi
	PIDS=""
	echo "shmbusd's events (\$sys.log):"
	sed -n 's/^shmbusd: //p' "$DIR/daemon.log" | grep -v '"event":"\(attach\|exit\)"' |
		sed 's/^/  /'
	echo "  ... and $(grep -c '"event":"attach"' "$DIR/daemon.log") attach," \
		"$(grep -c '"event":"exit"' "$DIR/daemon.log") exit events"
fi

if [ "$FAILED" -ne 0 ] || [ -n "$BAD" ]; then
	echo "demo: FAILED ($FAILED processes failed;${BAD:- counts right})" >&2
	exit 1
fi
echo "demo: OK (every subscriber got all $TOTAL messages, the group got each exactly once)"
