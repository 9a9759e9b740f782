/* SPDX-License-Identifier: MIT */
/*
 * subscriber: read TOPIC (creating it if needed) as a fan-out subscriber, or as a member
 * of a group with --group, until COUNT messages came (or, with COUNT 0, until an
 * end-of-stream message (publisher --end) or until the topic has been idle for a while),
 * checking every message: whole (its pattern), in order per publisher (counters rise by
 * exactly one for a fan-out subscriber, strictly for a group member, which gets a share)
 * and with topic sequence numbers strictly increasing. Prints what it got and how fast;
 * exits 1 if anything was wrong or missing. With --ready FILE it tells a script how far it
 * is (subscribed; messages from how many publishers), so the script need not guess; with
 * --stall N it plays a stuck reader, for a script to kill.
 *
 *   subscriber [options] TOPIC COUNT
 */
#include <getopt.h>
#include <signal.h>
#include <unistd.h>

#include "common.h"

#define MAX_PUBLISHERS 1024

static const char *prog = "subscriber";

struct pub_track {
	uint32_t id;
	uint64_t next;	    /* the counter expected next */
	uint64_t lost_then; /* this reader's loss count at that publisher's last message */
};

static struct pub_track pubs[MAX_PUBLISHERS];
static unsigned npubs;

static struct pub_track *track(uint32_t id)
{
	for (unsigned i = 0; i < npubs; i++)
		if (pubs[i].id == id)
			return &pubs[i];
	if (npubs == MAX_PUBLISHERS)
		return NULL;
	pubs[npubs] = (struct pub_track){ .id = id, .next = 0, .lost_then = 0 };
	return &pubs[npubs++];
}

/* Count a bad message, and describe the first few. */
static uint64_t errors;

/* SIGALRM ends a stall that nobody ended (see --stall). */
static void on_alarm(int sig)
{
	(void)sig;
}

static void bad(const char *name, const shmbus_msg_t *m, const char *what, uint64_t got,
		uint64_t want)
{
	if (++errors <= 5)
		fprintf(stderr,
			"%s %s: message seq %" PRIu64 " (len %u, lost %" PRIu64 "): %s %" PRIu64
			", wanted %" PRIu64 "\n",
			prog, name, m->seq, m->len, m->lost, what, got, want);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [options] TOPIC COUNT\n"
		"  TOPIC              topic name, e.g. demo.ticks\n"
		"  COUNT              messages to expect; 0: read until an end-of-stream\n"
		"                     message, or until idle for --idle ms (or --timeout ms\n"
		"                     if none came), then report the count\n"
		"options:\n"
		"  -g, --group NAME   join group NAME (each message goes to one member)\n"
		"  -e, --earliest     start at the earliest message retained\n"
		"  -n, --name LABEL   label for the report line (default: sub or the group)\n"
		"  -t, --timeout MS   fail if no message comes for MS ms (default 10000)\n"
		"  -I, --idle MS      with COUNT 0: stop after MS ms without a message, once\n"
		"                     one came (default 1000)\n"
		"  -c, --capacity B   ring size if the topic is created (default 1M)\n"
		"  -o, --overwrite    create the topic with the overwrite policy, and accept\n"
		"                     losses (they are counted)\n"
		"  -r, --ready FILE   append 'subscribed' to FILE once subscribed, then\n"
		"                     'publishers N' when messages from an Nth publisher came\n"
		"  -S, --stall N      once messages of N publishers came, stop reading but stay\n"
		"                     subscribed (a stuck reader: on a block topic it holds the\n"
		"                     publishers back), write 'stalled' to the --ready file,\n"
		"                     and fail after --timeout ms unless killed first\n"
		"  -h, --help\n",
		prog);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "group", required_argument, NULL, 'g' },
		{ "earliest", no_argument, NULL, 'e' },
		{ "name", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "idle", required_argument, NULL, 'I' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "overwrite", no_argument, NULL, 'o' },
		{ "ready", required_argument, NULL, 'r' },
		{ "stall", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *group = NULL, *name = NULL, *ready_path = NULL;
	uint64_t capacity = 1 << 20, count, timeout_ms = 10000, idle_ms = 1000, stall = 0;
	int overwrite = 0, flags = 0, opt, ret = 1;
	shmbus_bus_t *bus = NULL;
	shmbus_sub_t *sub = NULL;
	FILE *ready = NULL;

	while ((opt = getopt_long(argc, argv, "g:en:t:I:c:or:S:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'g':
			group = optarg;
			break;
		case 'e':
			flags |= SHMBUS_SUB_EARLIEST;
			break;
		case 'n':
			name = optarg;
			break;
		case 't':
			if (ex_parse_u64(optarg, &timeout_ms) || timeout_ms > INT32_MAX)
				goto bad_args;
			break;
		case 'I':
			if (ex_parse_u64(optarg, &idle_ms) || idle_ms > INT32_MAX)
				goto bad_args;
			break;
		case 'c':
			if (ex_parse_u64(optarg, &capacity))
				goto bad_args;
			break;
		case 'o':
			overwrite = 1;
			break;
		case 'r':
			ready_path = optarg;
			break;
		case 'S':
			if (ex_parse_u64(optarg, &stall) || stall == 0)
				goto bad_args;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad_args;
		}
	}
	if (argc - optind != 2 || ex_parse_u64(argv[optind + 1], &count))
		goto bad_args;
	const char *topic = argv[optind];
	if (!name)
		name = group ? group : "sub";

	if (ready_path) {
		ready = fopen(ready_path, "a");
		if (!ready) {
			fprintf(stderr, "%s: cannot open %s: %s\n", prog, ready_path,
				strerror(errno));
			goto out;
		}
		setvbuf(ready, NULL, _IOLBF, 0); /* each line as it happens */
	}

	int rc = shmbus_bus_open(&bus, NULL);
	if (rc < 0) {
		fprintf(stderr, "%s: cannot open the bus: %s (%s)\n", prog, strerror(-rc),
			shmbus_errmsg());
		goto out;
	}
	shmbus_topic_opts_t o;
	ex_topic_opts(&o, capacity, overwrite);
	if (ex_topic_ensure(bus, prog, topic, &o))
		goto out;
	rc = shmbus_sub_open(&sub, bus, topic, group, flags);
	if (rc < 0) {
		fprintf(stderr, "%s: cannot subscribe to '%s': %s (%s)\n", prog, topic,
			strerror(-rc), shmbus_errmsg());
		goto out;
	}
	if (ready)
		fprintf(ready, "subscribed\n");

	uint64_t received = 0, lost = 0, bytes = 0, last_seq = 0;
	uint64_t t_first = 0, t_last = 0;
	const char *why = NULL;
	while (count == 0 || received < count) {
		shmbus_msg_t m;
		int wait = (int)(count == 0 && received ? idle_ms : timeout_ms);

		rc = shmbus_recv(sub, &m, wait);
		if (rc == -EINTR)
			continue;
		if (rc == -EAGAIN) {
			if (count == 0)
				break; /* idle: the publishers are done (or never came) */
			why = "timed out waiting for messages";
			break;
		}
		if (rc < 0) {
			fprintf(stderr, "%s %s: recv: %s\n", prog, name, strerror(-rc));
			why = "receive failed";
			break;
		}
		if (m.type == EX_TYPE_END) {
			if (count)
				why = "the stream ended";
			break;
		}
		t_last = ex_now_ns();
		if (!received)
			t_first = t_last;
		else if (m.seq <= last_seq)
			bad(name, &m, "sequence number", m.seq, last_seq + 1);
		last_seq = m.seq;
		received++;
		bytes += m.len;
		lost += m.lost;

		struct ex_payload h;
		if (m.type != EX_TYPE_DATA || ex_check(m.data, m.len, &h)) {
			bad(name, &m, "damaged payload, type", m.type, EX_TYPE_DATA);
			continue;
		}
		unsigned known = npubs;
		struct pub_track *p = track(h.publisher);
		if (!p) {
			bad(name, &m, "too many publishers, id", h.publisher, 0);
			continue;
		}
		if (ready && npubs > known)
			fprintf(ready, "publishers %u\n", npubs);
		if (stall && npubs > known && npubs == stall) {
			if (ready)
				fprintf(ready, "stalled\n");
			/* The stall is the point: this reader holds its place, unread, and
			 * waits for the signal that ends it (SIGKILL, from the script that
			 * asked for the stall); SIGALRM after the timeout only ends it if
			 * nobody does. */
			signal(SIGALRM, on_alarm);
			alarm((unsigned)((timeout_ms + 999) / 1000));
			pause();
			why = "stalled on purpose and was not killed";
			break;
		}
		/* A fan-out reader sees every message of a publisher, unless it lost some
		 * since that publisher's last one (overwrite); a group member sees a rising
		 * subset. */
		if (h.counter < p->next || (!group && lost == p->lost_then && h.counter != p->next))
			bad(name, &m, "publisher counter", h.counter, p->next);
		p->next = h.counter + 1;
		p->lost_then = lost;
	}

	double secs = (double)(t_last - t_first) / 1e9;
	if (secs <= 0)
		secs = 1e-9;
	printf("sub %s: received=%" PRIu64 " lost=%" PRIu64 " errors=%" PRIu64
	       " publishers=%u in %.3f s: %.3f M msg/s, %.1f MB/s\n",
	       name, received, lost, errors, npubs, secs,
	       received > 1 ? (double)(received - 1) / secs / 1e6 : 0.0,
	       received > 1 ? (double)bytes / secs / 1e6 : 0.0);
	fflush(stdout);
	if (why)
		fprintf(stderr, "%s %s: %s after %" PRIu64 " of %" PRIu64 " messages\n", prog, name,
			why, received, count);
	else if (errors)
		fprintf(stderr, "%s %s: %" PRIu64 " messages were damaged or out of order\n", prog,
			name, errors);
	else if (lost && !overwrite)
		fprintf(stderr, "%s %s: lost %" PRIu64 " messages on a block topic\n", prog, name,
			lost);
	else
		ret = 0;
out:
	if (ready)
		fclose(ready);
	shmbus_sub_close(sub);
	shmbus_bus_close(bus);
	return ret;

bad_args:
	usage(stderr);
	return 2;
}
