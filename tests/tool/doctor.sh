#!/bin/sh
# SPDX-License-Identifier: MIT
#
# shmbus doctor on a private bus: a healthy bus passes; a corrupt topic file is a FAIL
# (exit 1) that says to remove it; a reader killed with SIGKILL leaves a stale slot that
# is reported with its pid (and that shmbus stat marks dead); an old temporary file is
# reported, a fresh one is not.
#   doctor.sh PATH_TO_SHMBUS
set -u
. "$(dirname "$0")/lib.sh"

# A bus with no topics (doctor only looks: it does not make the bus).
run create t --capacity 4K
expect_rc 0 "create t"
run rm t
expect_rc 0 "rm t"
run doctor
expect_rc 0 "doctor on a new bus"
expect_grep out "^OK +bus directory $BUSDIR exists and is writable" "the bus directory is checked"
expect_grep out '^(OK|WARN) +(filesystem holding|the filesystem holding) ' "the filesystem is checked"
expect_grep out '^WARN +no daemon \(the bus runs embedded; start shmbusd for supervision\)$' "no daemon is a WARN"
expect_grep out '^OK +no topics on the bus$' "no topics"
expect_no_grep out '^FAIL' "nothing fails on a new bus"
[ "$(grep -cEv '^(OK|WARN|FAIL)  ' "$WORK/out")" -eq 1 ] || fail "doctor: a line other than a finding and the summary"
pass

run create good --capacity 64K
expect_rc 0 "create good"
printf 'this is not a topic file, only garbage\n' >"$BUSDIR/broken.topic"
run doctor
expect_rc 1 "doctor with a corrupt topic file"
expect_grep out "^FAIL +topic 'broken': .*remove it with shmbus rm broken\$" "the corrupt file is a FAIL"
expect_grep out "^OK +topic 'good': block, 64K ring" "the good topic is OK"
expect_grep out "^[0-9]+ OK, [0-9]+ WARN, 1 FAIL\$" "the summary counts the FAIL"
run rm broken
expect_rc 0 "rm of the corrupt topic, as doctor says"
run doctor
expect_rc 0 "doctor after removing the corrupt file"

# A reader that dies without closing keeps its slot: doctor names the dead pid.
"$SB" tail good >/dev/null 2>&1 &
TPID=$!
BGPIDS="$BGPIDS $TPID"
poll 30 has_reader good $TPID || fail "the tail process never showed up as a reader"
pass
run doctor
expect_no_grep out "stale" "no stale slot while the reader lives"
expect_grep out "^OK +topic 'good': block, 64K ring, 0 publishers, 1 reader, 0 published\$" "doctor counts one reader"
run stat good --json --interval 0
expect_json '[(r["pid"], r["alive"]) for r in j["topics"][0]["readers"]] == [('$TPID', True)]' "stat --json: the live reader is alive"
run stat good --count 1 --interval 10
expect_grep out "^  $TPID +- +0 " "stat: the live reader's line"
expect_no_grep out "dead" "stat marks no live reader dead"
kill -9 $TPID
wait $TPID 2>/dev/null
run doctor
expect_grep out "^(WARN|FAIL) +topic 'good': stale slot: .*pid $TPID, which is gone" "the dead reader's slot is reported"
# stat shows the same dead reader, marked.
run stat good --json --interval 0
expect_rc 0 "stat --json with a dead reader"
expect_json '[(r["pid"], r["alive"]) for r in j["topics"][0]["readers"]] == [('$TPID', False)]' "stat --json: the dead reader is not alive"
run stat good --count 1 --interval 10
expect_rc 0 "stat with a dead reader"
expect_grep out "^  $TPID \(dead\) +- +0 " "stat marks the dead reader's line"

# A publisher that dies without closing keeps its slot too.
has_publishers() {
	"$SB" stat "$1" --json --interval 0 2>/dev/null | $PY -c '
import json, sys
sys.exit(0 if json.load(sys.stdin)["topics"][0]["publishers"] == int(sys.argv[1]) else 1)
' "$2"
}
# Its stdin is a FIFO the test holds open, so it waits for lines (and no helper process
# outlives the test).
mkfifo "$WORK/pub.fifo"
"$SB" pub good <"$WORK/pub.fifo" &
PPID_=$!
BGPIDS="$BGPIDS $PPID_"
exec 9>"$WORK/pub.fifo"
poll 30 has_publishers good 1 || fail "the pub process never showed up as a publisher"
pass
kill -9 $PPID_
wait $PPID_ 2>/dev/null
exec 9>&-
run doctor
expect_grep out "^WARN +topic 'good': stale slot: publisher slot [0-9]+ belongs to pid $PPID_, which is gone" "the dead publisher's slot is reported"

# Temporary files of creations: old ones are left over, fresh ones are in progress.
touch "$BUSDIR/.fresh.123.0000abcd.tmp"
touch -d '2 minutes ago' "$BUSDIR/.old.456.0000abcd.tmp"
run doctor
expect_grep out "^WARN +leftover temporary file $BUSDIR/\.old\.456\.0000abcd\.tmp" "an old temporary file"
expect_no_grep out "fresh" "a fresh temporary file is not reported"
expect_no_grep out "no leftover temporary files" "no OK line about temporary files then"

# A bus whose directory cannot be (its path runs through a regular file).
run_with SHMBUS_DIR="$BUSDIR/good.topic/sub" doctor
expect_rc 1 "doctor when the bus directory cannot be a directory"
expect_grep out "^FAIL +bus 'default': cannot stat $BUSDIR/good.topic/sub/default: Not a directory" "the bus directory failure"

echo "doctor: $CHECKS checks passed"
