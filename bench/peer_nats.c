/* SPDX-License-Identifier: MIT */
/*
 * NATS core pub/sub (Debian's nats-server, the libnats C client) over TCP on 127.0.0.1:
 *   SPSC, fan-out  natsConnection_Publish() on one connection; each reader its own
 *                  connection with a synchronous subscription (natsSubscription_NextMsg)
 * The suite starts its own nats-server on a free loopback port with a config file that
 * listens on 127.0.0.1 only, waits until it accepts a connection and greets it (INFO),
 * and stops it when the suite ends (see daemon.c).
 *
 * Core NATS delivers at most once: a subscriber that falls behind is dropped by the server
 * (slow consumer) or drops messages in its client (pending limits). Here neither may
 * happen silently: the server's per-client buffer is 1 GiB with a 60 s write deadline, the
 * client's pending limits are off, so every message must arrive, in order, and a reader
 * whose connection is closed fails the run with the server's reason.
 * The publisher's client buffers messages and writes them in batches (its default); its
 * last act is a flush round trip, so every message counted has reached the server.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "loops.h"

static pid_t npid;
static int nport;

double nats_cpu_s(void)
{
	return pid_cpu_s(npid);
}

void nats_stop(void)
{
	/* SIGTERM: nats-server closes its clients and exits at once. */
	daemon_stop(&npid, SIGTERM, 10);
	nport = 0;
}

void nats_kill(void)
{
	if (npid > 0)
		kill(npid, SIGKILL);
}

/* Does something on 127.0.0.1:port accept a connection and send "INFO " within 1 s? */
static int nats_greets(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok = 0;
	char buf[8] = "";

	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		ok = poll(&p, 1, 1000) == 1 && read(fd, buf, 5) == 5 && !memcmp(buf, "INFO ", 5);
	}
	close(fd);
	return ok;
}

int nats_start(char *why, size_t n)
{
	char prog[PATH_MAX], conf[200], log[200];

#ifndef HAVE_NATS
	snprintf(why, n, "built without libnats (install libnats-dev and reconfigure)");
	return -1;
#endif
	if (!find_program("nats-server", prog, sizeof(prog)) &&
	    access(strcpy(prog, "/usr/sbin/nats-server"), X_OK) != 0) {
		snprintf(why, n, "nats-server not found (install nats-server)");
		return -1;
	}
	snprintf(conf, sizeof(conf), "%s/nats.conf", cfg.dir);
	snprintf(log, sizeof(log), "%s/nats.log", cfg.dir);
	why[0] = 0;
	for (int attempt = 0; attempt < 3; attempt++) {
		int port = loopback_free_port();

		if (port < 0) {
			snprintf(why, n, "no free TCP port on 127.0.0.1: %s", strerror(errno));
			return -1;
		}
		FILE *f = fopen(conf, "w");
		if (!f) {
			snprintf(why, n, "cannot write %s: %s", conf, strerror(errno));
			return -1;
		}
		/* Loopback only; large messages; a slow reader buffered, not dropped. */
		fprintf(f,
			"listen: \"127.0.0.1:%d\"\n"
			"max_payload: 4194304\n"
			"max_pending: 1073741824\n"
			"write_deadline: \"60s\"\n",
			port);
		fclose(f);
		char *argv[] = { prog, "-c", conf, NULL };
		npid = daemon_spawn(prog, argv, log);
		if (npid < 0) {
			npid = 0;
			snprintf(why, n, "fork: %s", strerror(errno));
			return -1;
		}
		/* Until it greets a client: up to 20 s on a loaded machine. */
		uint64_t deadline = now_ns() + 20000000000ull;
		while (now_ns() < deadline) {
			int st;

			if (daemon_exited(npid, &st)) {
				npid = 0;
				daemon_exit_why("nats-server", st, log, why, n);
				break;
			}
			if (nats_greets(port)) {
				nport = port;
				return 0;
			}
			usleep(10000);
		}
		if (npid)
			snprintf(why, n, "nats-server did not accept connections within 20 s");
		nats_stop();
	}
	return -1;
}

#ifdef HAVE_NATS
#include <nats/nats.h>

static int nats_available(char *why, size_t n)
{
	if (nport)
		return 1;
	snprintf(why, n, "nats-server not started");
	return 0;
}

static int nats_prepare(struct run *r)
{
	static unsigned serial;

	/* A subject per run, a run made again included. */
	snprintf(r->a, sizeof(r->a), "bench.c%d.r%d.%u", r->idx, r->round, ++serial);
	return 0;
}

struct nh {
	natsConnection *nc;
	natsSubscription *sub;
	natsMsg *msg; /* the message the current view points into */
	const char *subj;
};

static struct nh *nh_new(struct run *r)
{
	struct nh *h = calloc(1, sizeof(*h));
	char url[64];
	natsStatus s;

	if (!h)
		wfail("out of memory");
	snprintf(url, sizeof(url), "nats://127.0.0.1:%d", nport);
	if ((s = natsConnection_ConnectTo(&h->nc, url)) != NATS_OK)
		wfail("nats connect %s: %s", url, natsStatus_GetText(s));
	h->subj = r->a;
	return h;
}

static void *n_open_tx(struct run *r, int chan, int idx)
{
	(void)chan;
	(void)idx;
	return nh_new(r);
}

static void *n_open_rx(struct run *r, int chan, int idx)
{
	struct nh *h = nh_new(r);
	natsStatus s;

	(void)chan;
	(void)idx;
	if ((s = natsConnection_SubscribeSync(&h->sub, h->nc, h->subj)) != NATS_OK ||
	    (s = natsSubscription_SetPendingLimits(h->sub, -1, -1)) != NATS_OK)
		wfail("nats subscribe %s: %s", h->subj, natsStatus_GetText(s));
	/* A round trip: the server has the subscription before this reader says ready. */
	if ((s = natsConnection_FlushTimeout(h->nc, 20000)) != NATS_OK)
		wfail("nats flush: %s", natsStatus_GetText(s));
	return h;
}

static inline void n_send(void *hp, const uint8_t *buf, uint32_t len)
{
	struct nh *h = hp;
	natsStatus s = natsConnection_Publish(h->nc, h->subj, buf, (int)len);

	if (s != NATS_OK)
		wfail("nats publish: %s", natsStatus_GetText(s));
}

static void n_flush(void *hp)
{
	struct nh *h = hp;
	natsStatus s = natsConnection_FlushTimeout(h->nc, 60000);

	if (s != NATS_OK)
		wfail("nats flush: %s", natsStatus_GetText(s));
}

static inline void n_recv(void *hp, struct view *v)
{
	struct nh *h = hp;
	natsStatus s;

	if (h->msg)
		natsMsg_Destroy(h->msg);
	h->msg = NULL;
	while ((s = natsSubscription_NextMsg(&h->msg, h->sub, 1000)) != NATS_OK)
		if (s != NATS_TIMEOUT)
			wfail("nats subscriber: %s (%s)", natsStatus_GetText(s),
			      nats_GetLastError(NULL));
	v->data = (const uint8_t *)natsMsg_GetData(h->msg);
	v->len = (uint32_t)natsMsg_GetDataLength(h->msg);
	v->lost = 0;
}

static const struct ops n_ops = {
	.open_tx = n_open_tx,
	.open_rx = n_open_rx,
	.send = n_send,
	.flush = n_flush,
	.recv = n_recv,
};

LOOPS_DEFINE(n, &n_ops)

const struct peer peer_nats = {
	.id = "nats",
	.label = "nats",
	.available = nats_available,
	.prepare = nats_prepare,
	/* Throughput only: SPSC and fan-out. */
	.producer = n_producer,
	.consumer = n_consumer,
};

#else

static int nats_available(char *why, size_t n)
{
	snprintf(why, n, "built without libnats (install libnats-dev and reconfigure)");
	return 0;
}

const struct peer peer_nats = {
	.id = "nats",
	.label = "nats",
	.available = nats_available,
};

#endif
