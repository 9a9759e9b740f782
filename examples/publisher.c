/* SPDX-License-Identifier: MIT */
/*
 * publisher: publish COUNT messages of SIZE bytes to TOPIC, creating the topic if needed,
 * then print how many went out and how fast. Each message carries this publisher's id and
 * counter and a pattern derived from both, which subscriber checks. With --end N, N
 * end-of-stream messages follow them; each stops the subscriber or group member taking it.
 *
 *   publisher [options] TOPIC COUNT SIZE
 *
 * The bus is $SHMBUS_BUS (default "default") under $SHMBUS_DIR (default /dev/shm/shmbus).
 */
#include <getopt.h>
#include <unistd.h>

#include "common.h"

static const char *prog = "publisher";

/* How long --wait-readers waits: long enough for readers started on a loaded machine (or
 * under a sanitizer) to come; it only ends a wait for a reader that never comes. */
#define WAIT_READERS_S 30

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [options] TOPIC COUNT SIZE\n"
		"  TOPIC              topic name, e.g. demo.ticks\n"
		"  COUNT              messages to publish\n"
		"  SIZE               payload bytes per message (>= %u; K/M suffixes allowed)\n"
		"options:\n"
		"  -b, --batch N      publish N messages per call (shmbus_publish_batch)\n"
		"  -i, --id N         publisher id written in each message (default: pid)\n"
		"  -w, --wait-readers N\n"
		"                     first wait (up to %d s) until the topic has N readers\n"
		"  -E, --end N        then publish N end-of-stream messages: a subscriber stops\n"
		"                     at one, each member of a group takes one of its own\n"
		"  -c, --capacity B   ring size if the topic is created (default 1M)\n"
		"  -o, --overwrite    create the topic with the overwrite policy (default block)\n"
		"  -t, --timeout MS   how long a publish may wait for space (default -1: forever)\n"
		"  -h, --help\n",
		prog, EX_MIN_SIZE, WAIT_READERS_S);
}

/* Wait until the topic has at least n readers (subscribers and group members). */
static int wait_readers(shmbus_bus_t *bus, const char *topic, uint64_t n)
{
	uint64_t deadline = ex_now_ns() + WAIT_READERS_S * 1000000000ull;

	for (;;) {
		shmbus_topic_stats_t st;
		int rc = shmbus_topic_stats(bus, topic, &st);

		if (rc < 0) {
			fprintf(stderr, "%s: stats of '%s': %s (%s)\n", prog, topic, strerror(-rc),
				shmbus_errmsg());
			return -1;
		}
		if (st.readers >= n)
			return 0;
		if (ex_now_ns() > deadline) {
			fprintf(stderr, "%s: '%s' has %u readers after %d s, wanted %" PRIu64 "\n",
				prog, topic, st.readers, WAIT_READERS_S, n);
			return -1;
		}
		usleep(1000);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "batch", required_argument, NULL, 'b' },
		{ "id", required_argument, NULL, 'i' },
		{ "wait-readers", required_argument, NULL, 'w' },
		{ "end", required_argument, NULL, 'E' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "overwrite", no_argument, NULL, 'o' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t batch = 1, id = (uint64_t)getpid(), readers = 0, capacity = 1 << 20, ends = 0;
	uint64_t count, size;
	int overwrite = 0, timeout_ms = -1, opt, ret = 1;
	shmbus_bus_t *bus = NULL;
	shmbus_pub_t *pub = NULL;
	shmbus_iov_t *iov = NULL;
	uint8_t *bufs = NULL;

	while ((opt = getopt_long(argc, argv, "b:i:w:E:c:ot:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			if (ex_parse_u64(optarg, &batch) || batch == 0 || batch > 4096)
				goto bad_args;
			break;
		case 'i':
			if (ex_parse_u64(optarg, &id) || id > UINT32_MAX)
				goto bad_args;
			break;
		case 'w':
			if (ex_parse_u64(optarg, &readers))
				goto bad_args;
			break;
		case 'E':
			if (ex_parse_u64(optarg, &ends))
				goto bad_args;
			break;
		case 'c':
			if (ex_parse_u64(optarg, &capacity))
				goto bad_args;
			break;
		case 'o':
			overwrite = 1;
			break;
		case 't':
			timeout_ms = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad_args;
		}
	}
	if (argc - optind != 3 || ex_parse_u64(argv[optind + 1], &count) ||
	    ex_parse_u64(argv[optind + 2], &size) || size < EX_MIN_SIZE || size > UINT32_MAX)
		goto bad_args;
	const char *topic = argv[optind];

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
	rc = shmbus_pub_open(&pub, bus, topic);
	if (rc < 0) {
		fprintf(stderr, "%s: cannot publish to '%s': %s (%s)\n", prog, topic, strerror(-rc),
			shmbus_errmsg());
		goto out;
	}
	shmbus_pub_set_timeout(pub, timeout_ms);
	if (readers && wait_readers(bus, topic, readers))
		goto out;

	bufs = malloc(batch * size);
	iov = calloc(batch, sizeof(*iov));
	if (!bufs || !iov) {
		fprintf(stderr, "%s: out of memory\n", prog);
		goto out;
	}
	for (uint64_t i = 0; i < batch; i++) {
		iov[i].data = bufs + i * size;
		iov[i].len = size;
		iov[i].type = EX_TYPE_DATA;
	}

	uint64_t sent = 0, t0 = ex_now_ns();
	while (sent < count) {
		uint64_t n = count - sent < batch ? count - sent : batch;

		for (uint64_t i = 0; i < n; i++)
			ex_fill(bufs + i * size, (uint32_t)size, (uint32_t)id, sent + i);
		if (n == 1)
			rc = shmbus_publish(pub, bufs, size, EX_TYPE_DATA);
		else
			rc = shmbus_publish_batch(pub, iov, (unsigned)n);
		if (rc < 0) {
			fprintf(stderr,
				"%s: publish to '%s' failed after %" PRIu64 " messages: %s\n", prog,
				topic, sent, strerror(-rc));
			break;
		}
		/* A batch may stop short when a blocked wait times out; resend the rest. */
		sent += n == 1 ? 1 : (uint64_t)rc;
	}
	double secs = (double)(ex_now_ns() - t0) / 1e9;
	if (secs <= 0)
		secs = 1e-9;
	printf("pub %" PRIu64 ": sent=%" PRIu64 " size=%" PRIu64 " batch=%" PRIu64
	       " in %.3f s: %.3f M msg/s, %.1f MB/s\n",
	       id, sent, size, batch, secs, (double)sent / secs / 1e6,
	       (double)(sent * size) / secs / 1e6);
	fflush(stdout);
	if (sent < count)
		goto out;
	for (uint64_t i = 0; i < ends; i++) {
		rc = shmbus_publish(pub, "", 0, EX_TYPE_END);
		if (rc < 0) {
			fprintf(stderr,
				"%s: end-of-stream message %" PRIu64 " to '%s' failed: %s\n", prog,
				i + 1, topic, strerror(-rc));
			goto out;
		}
	}
	ret = 0;
out:
	free(iov);
	free(bufs);
	shmbus_pub_close(pub);
	shmbus_bus_close(bus);
	return ret;

bad_args:
	usage(stderr);
	return 2;
}
