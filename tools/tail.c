/* SPDX-License-Identifier: MIT */
/* shmbus tail: print a topic's messages as they arrive, as a subscriber or group member; or
 * those of several topics, or of every topic a pattern matches, through a sink. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "tools/cli.h"

/* Hex is cut to this many payload bytes unless --full. */
#define HEX_MAX 64
/* The longest single wait in shmbus_recv(): a signal that lands just before the futex
 * sleep (after tool_stop was checked) delays the exit by at most this much. */
#define SLICE_MS 200

enum tail_format { FMT_LINE, FMT_HEX, FMT_RAW };

static const char tail_help[] =
	"usage: shmbus tail TOPIC|PATTERN... [options]\n"
	"\n"
	"Print messages of TOPIC as they arrive, one line each:\n"
	"  seq=N type=T len=L ts=YYYY-MM-DDTHH:MM:SS.uuuuuuZ [deliveries=D] PAYLOAD\n"
	"With several topics, or a pattern ('orders.*': one token for '*'; 'orders.>': one or\n"
	"more tokens for a last '>'), every line starts with topic=NAME, and topics that\n"
	"match and are created later are read too, from their first message (docs/sinks.md).\n"
	"PAYLOAD is the text when the message is printable UTF-8, else \"hex:\" and its bytes\n"
	"in hex (the first 64 bytes and \"...\" unless --full). deliveries=D (--ack) says\n"
	"that the message is delivered again, for the D-th time. Messages lost to an\n"
	"overwrite topic are reported on stderr as \"lost N messages\". SIGINT and SIGTERM\n"
	"stop it cleanly (exit 0). Tail only looks: the bus must exist, and it creates\n"
	"nothing (but the dead-letter topic of --ack) and does not register with shmbusd\n"
	"(no attach or detach in $sys.log).\n"
	"\n"
	"  -g, --group G       join group G: each message goes to one member of the group\n"
	"  -f, --from WHERE    earliest: start from the oldest message still in the ring;\n"
	"                      latest (default): from the next message published. For a\n"
	"                      group, applies only when this creates the group.\n"
	"  -a, --ack           (with --group) ack each message once it is printed:\n"
	"                      one not printed, or not acked within the group's ack wait,\n"
	"                      is delivered again (docs/acks.md); after the group's most\n"
	"                      deliveries it goes to its dead-letter topic (created then\n"
	"                      if missing). The group's options below apply only when\n"
	"                      this creates the group:\n"
	"      --ack-wait MS   redeliver what is not acked within MS ms (default 30000)\n"
	"      --max-deliver N the most deliveries of a message, 1..65535 (default 5)\n"
	"      --dead-letter TOPIC\n"
	"                      where a message goes after them (default TOPIC.dead; \"\":\n"
	"                      none, it is dropped and counted)\n"
	"  -n, --count N       stop after N messages (exit 1 if --timeout ends it first)\n"
	"  -t, --timeout MS    stop when no message came for MS milliseconds\n"
	"  -x, --hex           print every payload in hex\n"
	"  -r, --raw           print only the payloads, each followed by a newline\n"
	"      --full          do not cut hex payloads\n"
	"  -h, --help          show this help\n";

/* Is the payload text that prints on one line: UTF-8 with no control characters but tab? */
static int printable(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		if (p[i] < 0x80) {
			if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
				return 0;
			i++;
			continue;
		}
		size_t len = tool_utf8_seq(p + i, n - i);
		/* U+0080..U+009F (C1 controls) are the two-byte sequences c2 80..c2 9f. */
		if (!len || (p[i] == 0xc2 && p[i + 1] < 0xa0))
			return 0;
		i += len;
	}
	return 1;
}

static void print_hex(const unsigned char *p, size_t n, int full)
{
	size_t shown = !full && n > HEX_MAX ? HEX_MAX : n;

	fputs("hex:", stdout);
	for (size_t i = 0; i < shown; i++)
		printf("%02x", p[i]);
	if (shown < n)
		fputs("...", stdout);
}

static void print_msg(const shmbus_msg_t *m, enum tail_format fmt, int full, int topics)
{
	const unsigned char *p = m->data;
	char ts[40];

	if (fmt == FMT_RAW) {
		fwrite(p, 1, m->len, stdout);
		putchar('\n');
		return;
	}
	if (topics)
		printf("topic=%s ", m->topic);
	printf("seq=%" PRIu64 " type=%" PRIu32 " len=%" PRIu32 " ts=%s", m->seq, m->type, m->len,
	       tool_fmt_time(ts, m->timestamp_ns));
	if (m->deliveries > 1)
		printf(" deliveries=%" PRIu32, m->deliveries);
	if (m->len) {
		putchar(' ');
		if (fmt == FMT_LINE && printable(p, m->len))
			fwrite(p, 1, m->len, stdout);
		else
			print_hex(p, m->len, full);
	}
	putchar('\n');
}

int tool_tail(int argc, char **argv)
{
	enum { OPT_FULL = 256, OPT_ACK_WAIT, OPT_MAX_DELIVER, OPT_DEAD_LETTER };
	static const struct option longopts[] = {
		{ "group", required_argument, NULL, 'g' },
		{ "ack", no_argument, NULL, 'a' },
		{ "ack-wait", required_argument, NULL, OPT_ACK_WAIT },
		{ "max-deliver", required_argument, NULL, OPT_MAX_DELIVER },
		{ "dead-letter", required_argument, NULL, OPT_DEAD_LETTER },
		{ "from", required_argument, NULL, 'f' },
		{ "count", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "hex", no_argument, NULL, 'x' },
		{ "raw", no_argument, NULL, 'r' },
		{ "full", no_argument, NULL, OPT_FULL },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *group = NULL, *group_opt = NULL;
	enum tail_format fmt = FMT_LINE;
	uint64_t count = 0, v;
	int flags = 0, timeout_ms = -1, have_count = 0, full = 0, opt;
	shmbus_group_opts_t go;

	shmbus_group_opts_init(&go);
	while ((opt = getopt_long(argc, argv, ":g:af:n:t:xrh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'g':
			group = optarg;
			break;
		case 'a':
			flags |= SHMBUS_SUB_ACK;
			break;
		case OPT_ACK_WAIT:
			if (tool_parse_u64(optarg, UINT32_MAX, &v) || v == 0)
				return tool_usage(
					"tail",
					"bad --ack-wait '%s': milliseconds, from 1 to %" PRIu32,
					optarg, UINT32_MAX);
			go.ack_wait_ms = (uint32_t)v;
			group_opt = "--ack-wait";
			break;
		case OPT_MAX_DELIVER:
			if (tool_parse_u64(optarg, 65535, &v) || v == 0)
				return tool_usage(
					"tail", "bad --max-deliver '%s': a number from 1 to 65535",
					optarg);
			go.max_deliver = (uint32_t)v;
			group_opt = "--max-deliver";
			break;
		case OPT_DEAD_LETTER:
			/* "" is no dead-letter topic; a name must be one a topic may have. */
			if (*optarg && tool_check_topic("tail", optarg, 0))
				return TOOL_USAGE;
			go.dead_letter = optarg;
			group_opt = "--dead-letter";
			break;
		case 'f':
			if (strcmp(optarg, "earliest") == 0)
				flags |= SHMBUS_SUB_EARLIEST;
			else if (strcmp(optarg, "latest") == 0)
				flags &= ~SHMBUS_SUB_EARLIEST;
			else
				return tool_usage("tail", "bad --from '%s' (earliest or latest)",
						  optarg);
			break;
		case 'n':
			if (tool_parse_u64(optarg, UINT64_MAX, &count))
				return tool_usage("tail", "bad --count '%s' (a number)", optarg);
			have_count = 1;
			break;
		case 't':
			if (tool_parse_ms(optarg, 0, &timeout_ms))
				return tool_usage("tail", "bad --timeout '%s' (milliseconds)",
						  optarg);
			break;
		case 'x':
			fmt = FMT_HEX;
			break;
		case 'r':
			fmt = FMT_RAW;
			break;
		case OPT_FULL:
			full = 1;
			break;
		case 'h':
			fputs(tail_help, stdout);
			return TOOL_OK;
		default:
			return tool_bad_option("tail", opt, argv);
		}
	}
	if (argc == optind)
		return tool_usage("tail", "a TOPIC is needed");
	if ((flags & SHMBUS_SUB_ACK) && !group)
		return tool_usage("tail", "--ack is for a group member: give --group too");
	if (group_opt && !group)
		return tool_usage("tail", "%s is a group's option: give --group too", group_opt);
	const char *topic = argv[optind];
	/* One topic: a subscriber; several, or a pattern: a sink over them. */
	int many = argc - optind > 1 || strpbrk(topic, "*>") != NULL;
	int ret = 0;
	for (int i = optind; i < argc && !ret; i++) {
		if (!strpbrk(argv[i], "*>"))
			ret = tool_check_topic("tail", argv[i], 1);
		else if (shmbus_pattern_check(argv[i]) < 0)
			ret = tool_usage("tail", "%s", shmbus_errmsg());
	}
	if (ret)
		return ret;

	/*
	 * Tailing is looking: the bus must exist, and the tail does not register with the
	 * daemon (that would log an attach and a detach for each look). Its reader slot
	 * needs no registration: if the tail dies, the library frees the slot when another
	 * reader or a blocked publisher needs it, and a daemon finds it by its scan of the
	 * slot tables.
	 */
	shmbus_bus_t *bus;
	shmbus_sub_t *sub = NULL;
	shmbus_sink_t *sink = NULL;
	ret = tool_bus_open("tail", SHMBUS_BUS_LOOK, &bus);
	if (ret)
		return ret;
	ret = TOOL_FAILED;
	int rc;
	if (many) {
		rc = shmbus_sink_open_group(&sink, bus, group, flags, group ? &go : NULL);
		if (rc < 0) {
			if (rc == -EINVAL)
				ret = tool_usage("tail", "%s", tool_why(rc));
			else
				tool_fail("tail", rc, 0, "cannot open a sink");
			goto out;
		}
		for (int i = optind; i < argc; i++) {
			rc = shmbus_sink_add(sink, argv[i]);
			if (rc == -EEXIST)
				continue;
			if (rc < 0) {
				tool_fail_topic("tail", argv[i], rc, "cannot read '%s'", argv[i]);
				goto out;
			}
		}
		goto read;
	}
	rc = group ? shmbus_sub_open_group(&sub, bus, topic, group, flags, &go) :
		     shmbus_sub_open(&sub, bus, topic, NULL, flags);
	if (rc == -EINVAL) {
		/* The topic name was checked: the group name is malformed. */
		ret = tool_usage("tail", "%s", tool_why(rc));
		goto out;
	}
	if (rc < 0) {
		if (group)
			tool_fail_topic("tail", topic, rc, "cannot join group '%s' of topic '%s'",
					group, topic);
		else
			tool_fail_topic("tail", topic, rc, "cannot subscribe to topic '%s'", topic);
		goto out;
	}
read:
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A reader gone quietly must not hold its slot: write errors end the loop instead. */
	signal(SIGPIPE, SIG_IGN);
	tool_catch_signals();

	uint64_t got = 0;
	uint64_t idle_since = tool_now_ns();
	ret = TOOL_OK;
	while (!(have_count && got >= count) && !tool_stop) {
		int wait = SLICE_MS;
		if (timeout_ms >= 0) {
			uint64_t idle_ms = (tool_now_ns() - idle_since) / 1000000;
			uint64_t left = idle_ms >= (uint64_t)timeout_ms ? 0 : timeout_ms - idle_ms;
			wait = left < SLICE_MS ? (int)left : SLICE_MS;
		}
		shmbus_msg_t m;
		rc = sink ? shmbus_sink_recv(sink, &m, wait) : shmbus_recv(sub, &m, wait);
		if (rc == -EAGAIN || rc == -EINTR) {
			/* Polled once more at the end, so that --timeout 0 looks once. */
			if (rc == -EAGAIN && timeout_ms >= 0 &&
			    tool_now_ns() - idle_since >= (uint64_t)timeout_ms * 1000000) {
				if (have_count) {
					fprintf(stderr,
						"shmbus tail: topic '%s': %" PRIu64 " of %" PRIu64
						" %s, then none for %d ms\n",
						topic, got, count,
						tool_plural(count, "message", "messages"),
						timeout_ms);
					ret = TOOL_FAILED;
				}
				break;
			}
			continue;
		}
		if (rc < 0) {
			ret = tool_fail("tail", rc, 0, "cannot read topic '%s'",
					sink ? "(a topic of the sink)" : topic);
			break;
		}
		if (m.lost) {
			fflush(stdout);
			fprintf(stderr, "lost %" PRIu64 " %s\n", m.lost,
				tool_plural(m.lost, "message", "messages"));
		}
		errno = 0;
		print_msg(&m, fmt, full, many);
		if (ferror(stdout)) {
			/* The reader of our output went away (EPIPE): stop quietly. */
			int e = errno ? errno : EIO;
			if (e != EPIPE)
				ret = tool_fail("tail", -e, 0, "cannot write");
			break;
		}
		/* Acked once it is out: a message whose line was lost is delivered again. */
		if ((flags & SHMBUS_SUB_ACK) && fflush(stdout) == 0) {
			rc = sink ? shmbus_sink_ack(sink, &m) : shmbus_ack(sub, &m);
			if (rc == -ESTALE)
				fprintf(stderr,
					"shmbus tail: message seq=%" PRIu64
					" was handed back before "
					"its ack (the group's ack wait passed): it is delivered "
					"again\n",
					m.seq);
			else if (rc < 0) {
				ret = tool_fail("tail", rc, 0, "cannot ack seq=%" PRIu64, m.seq);
				break;
			}
		}
		got++;
		idle_since = tool_now_ns();
	}
out:
	shmbus_sink_close(sink);
	shmbus_sub_close(sub);
	shmbus_bus_close(bus);
	return ret;
}
