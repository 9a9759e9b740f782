#!/bin/sh
# SPDX-License-Identifier: MIT
#
# What the tool says: each error names its topic, group or bus once; a count of 1 takes
# the singular; and an argument the tool can tell is invalid (out of range, not a power of
# two, a malformed name) is a usage error, exit 2, saying what is allowed, found before
# anything is created.
#   texts.sh PATH_TO_SHMBUS
set -u
. "$(dirname "$0")/lib.sh"

# once FILE TEXT WHAT: TEXT occurs exactly once in FILE (out or err) of the last run.
once() {
	n=$(grep -oF -- "$2" "$WORK/$1" | wc -l)
	[ "$n" -eq 1 ] || fail "$3: $2 occurs $n times in $1, not once"
	pass
}

# ---- exit 2 for what the tool can tell is invalid, before anything is created ----
# usage WHAT PATTERN ARGS...: ARGS exit 2 with a message matching PATTERN and the pointer
# to --help.
usage() {
	what=$1
	pattern=$2
	shift 2
	run "$@"
	expect_rc 2 "$what"
	expect_grep err "$pattern" "$what says what is allowed"
	expect_grep err "^Try 'shmbus .*--help'\.\$" "$what points to --help"
}
usage "--capacity not a power of two" "bad --capacity '3000': a power of two from 4K to 1T" \
	create t --capacity 3000
usage "--capacity below 4K" "bad --capacity '2K': a power of two from 4K to 1T" \
	create t --capacity 2K
usage "--capacity above 1T" "bad --capacity '2T': a power of two from 4K to 1T" \
	create t --capacity 2T
usage "--capacity malformed" "bad --capacity '1Q': a power of two from 4K to 1T" \
	create t --capacity 1Q
usage "--max-message 0" "bad --max-message '0': a size from 1 to capacity/2 - 64" \
	create t --max-message 0
usage "--max-message above capacity/2 - 64" \
	"bad --max-message '40K': at most 32704 bytes \(capacity/2 - 64\) with --capacity 64K\$" \
	create t --capacity 64K --max-message 40K
usage "--max-message above capacity/2 - 64, given before --capacity" \
	"bad --max-message '40K': at most 32704 bytes \(capacity/2 - 64\) with --capacity 64K\$" \
	create t --max-message 40K --capacity 64K
usage "--max-message above the default capacity's limit" \
	"bad --max-message '600K': at most 524224 bytes \(capacity/2 - 64\) with --capacity 1M" \
	create t --max-message 600K
usage "--max-readers 0" "bad --max-readers '0': a number from 1 to 4096\$" \
	create t --max-readers 0
usage "--max-readers 4097" "bad --max-readers '4097': a number from 1 to 4096\$" \
	create t --max-readers 4097
usage "--max-publishers 0" "bad --max-publishers '0': a number from 1 to 4096\$" \
	create t --max-publishers 0
usage "--max-groups 0" "bad --max-groups '0': a number from 1 to 1024\$" \
	create t --max-groups 0
usage "--max-groups 1025" "bad --max-groups '1025': a number from 1 to 1024\$" \
	create t --max-groups 1025
usage "--max-pending 0" "bad --max-pending '0': a number from 1 to 65536\$" \
	create t --max-pending 0
usage "--max-pending 65537" "bad --max-pending '65537': a number from 1 to 65536\$" \
	create t --max-pending 65537
usage "tail --ack without a group" "^shmbus tail: --ack is for a group member: give --group too\$" \
	tail t --ack
usage "tail --max-deliver without a group" "^shmbus tail: --max-deliver is a group's option: give --group too\$" \
	tail t --max-deliver 3
usage "tail --max-deliver 0" "bad --max-deliver '0': a number from 1 to 65535\$" \
	tail t --group g --max-deliver 0
usage "tail --max-deliver 65536" "bad --max-deliver '65536': a number from 1 to 65535\$" \
	tail t --group g --max-deliver 65536
usage "tail --ack-wait 0" "bad --ack-wait '0': milliseconds, from 1 to 4294967295\$" \
	tail t --group g --ack --ack-wait 0
usage "tail --ack-wait 2**32" "bad --ack-wait '4294967296': milliseconds, from 1 to 4294967295\$" \
	tail t --group g --ack --ack-wait 4294967296
usage "tail --dead-letter malformed" "^shmbus tail: topic name 'a\.\.b': " \
	tail t --group g --ack --dead-letter a..b
usage "tail --dead-letter \$sys." "^shmbus tail: topic name '\\\$sys\.dead': the '\\\$sys\.' prefix is reserved" \
	tail t --group g --ack --dead-letter '$sys.dead'
usage "a malformed topic name to create" "^shmbus create: topic name '\.\./etc': bad character" \
	create ../etc
once err "'../etc'" "create ../etc names the topic once"
usage "a \$sys. topic to create" "^shmbus create: topic name '\\\$sys\.x': the '\\\$sys\.' prefix is reserved" \
	create '$sys.x'
usage "a malformed topic name to pub to" "^shmbus pub: topic name 'a\.\.b': " pub a..b x
usage "a malformed topic name to tail" "^shmbus tail: topic name 'a\.\.b': " tail a..b
usage "a malformed topic name to stat" "^shmbus stat: topic name 'a\.\.b': " stat --json a..b
usage "a malformed topic name to rm" "^shmbus rm: topic name 'a\.\.b': " rm a..b
usage "a malformed bus name" "^shmbus topics: bus name 'a\.b': bad character at byte 1" \
	--bus a.b topics
once err "'a.b'" "a malformed bus name is named once"
run_with SHMBUS_DIR=relative/dir topics
expect_rc 2 "a relative SHMBUS_DIR"
expect_grep err "^shmbus topics: SHMBUS_DIR 'relative/dir' is not an absolute path\$" "a relative SHMBUS_DIR is named"
[ -z "$(ls -A "$DIR")" ] || fail "usage errors touched the bus directory: $(ls -A "$DIR")"
pass

# The limits themselves are allowed.
run create small --capacity 4K --max-message 1984 --max-readers 4096 --max-groups 1024 --max-publishers 1
expect_rc 0 "create at the limits: $(cat "$WORK/err")"
run create tiny --capacity 4K --max-message 1 --max-groups 1 --max-pending 65536
expect_rc 0 "create with a 1-byte largest message"
# A malformed group name is a usage error too (found by the library, on a bus that exists).
usage "a malformed group name" "^shmbus tail: group name 'no\.dots': bad character at byte 2" \
	tail small --group no.dots --timeout 0
once err "'no.dots'" "tail names the malformed group once"
# A malformed name among others in rm removes none of them.
run rm small a..b
expect_rc 2 "rm of a good and a malformed name"
[ -e "$BUSDIR/small.topic" ] || fail "rm removed small although another name was malformed"
pass

# ---- each error says its topic once ----
run stat nosuch --json
expect_rc 1 "stat of an unknown topic"
expect_grep err "^shmbus stat: topic 'nosuch': does not exist \(no $BUSDIR/nosuch\.topic\)\$" "stat of an unknown topic"
once err "'nosuch'" "stat names the unknown topic once"
run stat nosuch --count 1 --interval 10
expect_rc 1 "live stat of an unknown topic"
once err "'nosuch'" "live stat names the unknown topic once"
run pub nosuch hello
expect_rc 1 "pub to an unknown topic"
expect_grep err "^shmbus pub: cannot publish to topic 'nosuch': does not exist \(no $BUSDIR/nosuch\.topic\)\$" "pub to an unknown topic"
once err "'nosuch'" "pub names the unknown topic once"
run tail nosuch --timeout 0
expect_rc 1 "tail of an unknown topic"
expect_grep err "^shmbus tail: cannot subscribe to topic 'nosuch': does not exist " "tail of an unknown topic"
once err "'nosuch'" "tail names the unknown topic once"
run tail nosuch --group g --timeout 0
expect_rc 1 "tail --group of an unknown topic"
once err "'nosuch'" "tail --group names the unknown topic once"
run rm nosuch
expect_rc 1 "rm of an unknown topic"
expect_grep err "^shmbus rm: cannot remove topic 'nosuch': does not exist\$" "rm of an unknown topic"
run create small --capacity 8K
expect_rc 1 "create of a topic that exists with other options"
expect_grep err "^shmbus create: cannot create topic 'small': exists with other options \(capacity 4096, " "create of an existing topic"
once err "'small'" "create names the existing topic once"
printf 'not a topic file\n' >"$BUSDIR/broken.topic"
run stat broken --json
expect_rc 1 "stat of a corrupt topic file"
once err "'broken'" "stat names the corrupt topic once"
run topics
expect_rc 1 "topics with a corrupt topic file"
once err "'broken'" "topics names the corrupt topic once on stderr"
rm -f "$BUSDIR/broken.topic"

# ---- one, not ones ----
run pub tiny x --verbose
expect_rc 0 "pub of one message"
expect_out "published 1 message to topic 'tiny'" "pub --verbose of one message"
run pub tiny x y --verbose
expect_out "published 2 messages to topic 'tiny'" "pub --verbose of two messages"
run pub tiny xy
expect_rc 1 "pub of a message over the largest"
expect_grep err "largest message \(1 byte\); not published\$" "the largest message of 1 byte"
run tail tiny --count 1 --timeout 10
expect_rc 1 "tail --count 1 that times out"
expect_grep err "^shmbus tail: topic 'tiny': 0 of 1 message, then none for 10 ms\$" "0 of 1 message"
run rm small
expect_rc 0 "rm small"
run stat --count 1 --interval 10
expect_rc 0 "stat of a bus of one topic"
expect_grep out "^bus: 1 topic, 0 clients registered, 0 crashes cleaned up \(0 reader slots, 0 publisher slots reclaimed\), 0 messages aborted\$" "stat's bus line"
# One reader and one publisher, alive: a tail and a pub reading a FIFO the test holds.
"$SB" tail tiny >/dev/null 2>&1 &
TPID=$!
BGPIDS="$BGPIDS $TPID"
mkfifo "$WORK/pub.fifo"
"$SB" pub tiny <"$WORK/pub.fifo" &
PPID_=$!
BGPIDS="$BGPIDS $PPID_"
exec 9>"$WORK/pub.fifo"
has_publisher() {
	"$SB" stat "$1" --json --interval 0 2>/dev/null | $PY -c '
import json, sys
sys.exit(0 if json.load(sys.stdin)["topics"][0]["publishers"] == 1 else 1)
'
}
poll 30 has_reader tiny $TPID || fail "the tail never showed up as a reader"
poll 30 has_publisher tiny || fail "the pub never showed up as a publisher"
pass
run doctor
expect_grep out "^OK +topic 'tiny': block, 4K ring, 1 publisher, 1 reader, 3 published\$" "doctor: 1 publisher, 1 reader"
exec 9>&-
wait $PPID_
kill -TERM $TPID
wait $TPID

echo "texts: $CHECKS checks passed"
