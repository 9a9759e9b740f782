/* SPDX-License-Identifier: MIT */
/*
 * WebSocket mirrors against real python3-websockets servers:
 *  - format = json, ack = peer, two topics by a wildcard: the server is killed with
 *    SIGKILL mid-stream and started again; the mirror reconnects and resends what was not
 *    acknowledged, so every message of both topics reaches the server (each connection
 *    in order; a repeat only of what was in flight at the kill), payloads intact, and the
 *    lag goes back to 0;
 *  - format = binary: each message one binary frame with its exact bytes, in order;
 *  - a server that answers wrongly (status 200, a wrong accept key, 10 KiB of headers, a
 *    garbage frame after a good handshake): each ends the connection with a clear reason,
 *    the daemon survives;
 *  - format = binary, a server that stops reading and is killed with frames the kernel
 *    has not taken: they, and all after them, arrive after the reconnect; the lag is 0.
 * usage: bridge_ws_mirror PATH-TO-SHMBUSD PATH-TO-ws_peer.py
 */
#include <pthread.h>

#include "bridge_helpers.h"

#define N 6000
#define WINDOW 256
#define BIG 32768 /* bytes of a wsbig.t message */
#define NBIG 600  /* 19 MB: more than the sockets hold, more than the mirror's buffer */

static shmbus_bus_t *bus;
static uint64_t published;

static void *publisher(void *arg)
{
	(void)arg;
	shmbus_bus_t *b;
	CHECK_RC(shmbus_bus_open(&b, "brwm"), 0);
	shmbus_pub_t *p[2];
	CHECK_RC(shmbus_pub_open(&p[0], b, "wsm.a"), 0);
	CHECK_RC(shmbus_pub_open(&p[1], b, "wsm.b"), 0);
	uint8_t buf[256];
	for (uint64_t i = 0; i < N; i++) {
		for (int k = 0; k < 2; k++) {
			size_t len = bt_payload(buf, 5 + (uint32_t)k, i);
			CHECK_RC(shmbus_publish(p[k], buf, len, 2), 0);
		}
		bt_published_set(&published, i + 1);
	}
	shmbus_pub_close(p[0]);
	shmbus_pub_close(p[1]);
	shmbus_bus_close(b);
	return NULL;
}

/* Wait (at most BT_DEADLINE_MS) until the publisher thread published n of each topic: it
 * is held back while the mirror does not confirm. */
static void wait_published(uint64_t n)
{
	bt_wait_published(bus, "j", &published, n);
}

static pid_t start_server(int port, const char *out, int ack)
{
	char p[16];
	snprintf(p, sizeof(p), "%d", port);
	int fd;
	pid_t pid = bt_peer(&fd, "server", p, out, ack ? "--ack" : NULL, NULL);
	bt_peer_ready(fd, out);
	close(fd);
	return pid;
}

/* Message seq of wsbig.t (as big_payload() in ws_peer.py): seq, then its low byte. */
static void big_payload(uint8_t *buf, uint64_t seq)
{
	memcpy(buf, &seq, 8);
	memset(buf + 8, (int)(seq & 0xff), BIG - 8);
}

/* Per topic: seqs below n, intact, increasing within a connection; how many distinct
 * ones from `from` on (into *distinct) and how many repeats (returned). */
static uint64_t scan_out(const char *path, const char *topic, uint64_t from, uint64_t n, int *conns,
			 uint64_t *distinct_out)
{
	static uint8_t seen[N];
	memset(seen, 0, sizeof(seen));
	FILE *f = fopen(path, "re");
	CHECK(f != NULL);
	char line[256], t[160];
	unsigned long long seq, lost;
	int ok;
	long long last = -1;
	uint64_t repeats = 0, distinct = 0;
	*conns = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strcmp(line, "conn\n")) {
			last = -1;
			(*conns)++;
			continue;
		}
		/* A line cut short by the SIGKILL is not a message we can count. */
		if (!strchr(line, '\n') ||
		    sscanf(line, "%159s %llu %llu %d", t, &seq, &lost, &ok) != 4 ||
		    strcmp(t, topic))
			continue;
		CHECK(ok == 1 && seq < n);
		if ((long long)seq <= last) {
			fprintf(stderr, "%s: %s %llu after %lld in one connection\n", path, topic,
				seq, last);
			exit(1);
		}
		last = (long long)seq;
		if (seen[seq])
			repeats++;
		else if (seq >= from)
			distinct++;
		seen[seq] = 1;
	}
	fclose(f);
	*distinct_out = distinct;
	return repeats;
}

/* Per topic: every seq 0..n-1 seen, increasing within a connection. Returns repeats. */
static uint64_t check_out(const char *path, const char *topic, uint64_t n, int *conns)
{
	uint64_t distinct;
	uint64_t repeats = scan_out(path, topic, 0, n, conns, &distinct);
	if (distinct != n) {
		fprintf(stderr, "%s: %s: %llu of %llu messages arrived\n", path, topic,
			(unsigned long long)distinct, (unsigned long long)n);
		exit(1);
	}
	return repeats;
}

int main(int argc, char **argv)
{
	CHECK(argc == 3);
	bt_need_websockets(argv[2]);
	const char *dir = t_private_dir("brwm");
	int pa = bt_free_port(), pb = bt_free_port(), pbad = bt_free_port(), pbig = bt_free_port();
	char outa[600], outb[600], outbig[600];
	snprintf(outbig, sizeof(outbig), "%s/big.out", dir);
	snprintf(outa, sizeof(outa), "%s/a.out", dir);
	snprintf(outb, sizeof(outb), "%s/b.out", dir);
	struct t_daemon d;
	t_daemon_init(&d, argv[1]);
	t_daemon_config(
		&d,
		"[bus]\nname = brwm\ndir = %s\n"
		"[topic wsm.a]\ncapacity = 256K\n[topic wsm.b]\ncapacity = 256K\n"
		"[topic wsb.t]\ncapacity = 256K\n[topic wsbig.t]\ncapacity = 32M\n"
		/* The Python servers may be starved for seconds on a loaded machine: a reply
		 * or handshake timeout would be one more connection than the test counts. */
		"[mirror j]\ntopics = wsm.*\nto = ws://127.0.0.1:%d/in\nformat = json\n"
		"ack = peer\nwindow = %d\nbackoff_min_ms = 20\nbackoff_max_ms = 200\n"
		"timeout_ms = 120000\nconnect_timeout_ms = 120000\n"
		"[mirror bin]\ntopics = wsb.t\nto = ws://127.0.0.1:%d/feed\ntimeout_ms = 120000\n"
		"connect_timeout_ms = 120000\n"
		"[mirror bad]\ntopics = wsb.t\nto = ws://127.0.0.1:%d/x\nbackoff_min_ms = 20\n"
		/* A connection the bad server has not taken yet waits for it (the server
		 * takes one at a time, once the test has seen the last failure). */
		"backoff_max_ms = 50\nconnect_timeout_ms = 120000\n"
		"[mirror big]\ntopics = wsbig.t\nto = ws://127.0.0.1:%d/big\n"
		"backoff_min_ms = 20\nbackoff_max_ms = 200\ntimeout_ms = 120000\n"
		"connect_timeout_ms = 120000\n",
		dir, pa, WINDOW, pb, pbad, pbig);

	pid_t sa = start_server(pa, outa, 1);
	setenv("WS_BINARY_TOPIC", "wsb.t", 1);
	pid_t sb = start_server(pb, outb, 0);
	setenv("WS_BINARY_TOPIC", "wsbig.t", 1);
	pid_t sbig = start_server(pbig, outbig, 0);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, "brwm"), 0);
	t_daemon_start(&d, bus);
	shmbus_sub_t *log = t_events_open(bus);
	shmbus_bridge_info_t st;
	BT_AWAIT(bus, "j", st, st.up);
	BT_AWAIT(bus, "bin", st, st.up);
	BT_AWAIT(bus, "big", st, st.up);

	printf("json + ack = peer, the server killed with SIGKILL mid-stream\n");
	pthread_t th;
	CHECK(pthread_create(&th, NULL, publisher, NULL) == 0);
	wait_published(N / 3);
	CHECK(bt_stats(bus, "j", &st) == 0);
	uint64_t errors = st.errors;
	t_kill(sa);
	/* Down until the mirror saw the connection gone and found nobody when it tried again
	 * (each failure counts one error). */
	BT_AWAIT(bus, "j", st, !st.up && st.errors >= errors + 2);
	sa = start_server(pa, outa, 1);
	wait_published(N);
	CHECK(pthread_join(th, NULL) == 0);
	/* lag is refreshed every 100 ms */
	BT_AWAIT(bus, "j", st, st.lag == 0 && st.confirmed >= 2 * (uint64_t)N);
	int conns;
	uint64_t ra = check_out(outa, "wsm.a", N, &conns);
	uint64_t rb = check_out(outa, "wsm.b", N, &conns);
	printf("  %d connections; wsm.a and wsm.b: all %d each, in order within each "
	       "connection; %llu + %llu sent again after the kill (unacknowledged)\n",
	       conns, N, (unsigned long long)ra, (unsigned long long)rb);
	CHECK(conns == 2 && ra + rb <= 2 * WINDOW + 2);
	printf("  counters: sent %llu, confirmed %llu, reconnects %llu, errors %llu\n",
	       (unsigned long long)st.sent, (unsigned long long)st.confirmed,
	       (unsigned long long)st.reconnects, (unsigned long long)st.errors);
	CHECK(st.reconnects >= 1 && st.errors >= 1);
	char ev[4096];
	const char *down[] = { "\"event\":\"bridge_down\"", "\"mirror\":\"j\"", NULL };
	CHECK(t_event_find(log, ev, sizeof(ev), BT_DEADLINE_MS, down) == 0);
	printf("  $sys.log: %s\n", ev);

	printf("binary\n");
	bt_publish(bus, "wsb.t", 7, 0, 2000, 0);
	BT_AWAIT(bus, "bin", st, st.confirmed >= 2000);
	/* ack = none: confirmed once the kernel took the bytes; the peer may still be
	 * reading them. Wait for its lines. */
	uint64_t deadline = t_deadline(BT_DEADLINE_MS);
	for (;;) {
		FILE *f = fopen(outb, "re");
		CHECK(f != NULL);
		int lines = 0, ch;
		while ((ch = fgetc(f)) != EOF)
			lines += ch == '\n';
		fclose(f);
		if (lines >= 2001)
			break;
		if (t_now_ns() > deadline) {
			fprintf(stderr, "%s: %d lines after %d ms, want 2001\n", outb, lines,
				BT_DEADLINE_MS);
			exit(1);
		}
		usleep(20000);
	}
	CHECK(check_out(outb, "wsb.t", 2000, &conns) == 0 && conns == 1);
	printf("  2000 binary frames, each the message's exact bytes, in order\n");

	printf("a server that answers wrongly\n");
	/* Until now "bad" found nobody there (connection refused); now a server that answers
	 * each connection wrongly, one way after the other. */
	char pbs[16];
	snprintf(pbs, sizeof(pbs), "%d", pbad);
	int bfd;
	pid_t sbad = bt_peer(&bfd, "badserver", pbs, NULL);
	bt_peer_ready(bfd, "badserver");
	const char *why[] = { "the server said 'HTTP/1.1 200 OK'", "a wrong Sec-WebSocket-Accept",
			      "the handshake response exceeds 8192 bytes",
			      "WebSocket: a protocol error from the peer" };
	/* Once per outage on $sys.log; each failure's reason is in the mirror's counters,
	 * until the next failure. The server answers the next connection once told. */
	for (int i = 0; i < 4; i++) {
		BT_AWAIT(bus, "bad", st, strstr(st.last_error, why[i]) != NULL);
		printf("  %s\n", st.last_error);
		CHECK(kill(sbad, SIGUSR1) == 0);
	}
	bt_peer_done(sbad, "badserver");
	close(bfd);
	CHECK(!st.up && st.confirmed == 0 && st.errors >= 4);
	CHECK(t_daemon_alive(&d));

	printf("a server that stops reading, then dies, with frames not yet sent\n");
	/* ack = none: what the kernel took is confirmed (and lost if the server never reads
	 * it); the frames it had not taken when the connection died are sent again on the
	 * next one. The mirror's count of the bytes the kernel took must not carry the lost
	 * ones over, or it waits forever for them (the last frames never confirmed). */
	CHECK(kill(sbig, SIGSTOP) == 0);
	shmbus_pub_t *bp;
	CHECK_RC(shmbus_pub_open(&bp, bus, "wsbig.t"), 0);
	static uint8_t big[BIG];
	for (uint64_t i = 0; i < NBIG; i++) {
		big_payload(big, i);
		CHECK_RC(shmbus_publish(bp, big, BIG, 0), 0);
	}
	shmbus_pub_close(bp);
	/* 16 frames (512 KB) handed to the connection and not taken by the kernel: the
	 * sockets are full (19 MB is far more than they hold with Linux's default
	 * tcp_wmem maximum of 4 MB and a receive buffer that cannot grow unread). */
	BT_AWAIT(bus, "big", st, st.sent >= st.confirmed + 16);
	printf("  %llu frames sent, %llu taken by the kernel when the server dies\n",
	       (unsigned long long)st.sent, (unsigned long long)st.confirmed);
	errors = st.errors;
	t_kill(sbig);
	BT_AWAIT(bus, "big", st, !st.up && st.errors >= errors + 2);
	uint64_t kept = st.confirmed; /* final for that connection */
	sbig = start_server(pbig, outbig, 0);
	BT_AWAIT(bus, "big", st, st.up && st.lag == 0);
	/* ack = none: the server may still be reading what the kernel took. */
	deadline = t_deadline(BT_DEADLINE_MS);
	uint64_t distinct;
	while (scan_out(outbig, "wsbig.t", kept, NBIG, &conns, &distinct), distinct < NBIG - kept) {
		if (t_now_ns() > deadline) {
			fprintf(stderr, "%s: %llu of the %llu messages from %llu on arrived\n",
				outbig, (unsigned long long)distinct,
				(unsigned long long)(NBIG - kept), (unsigned long long)kept);
			exit(1);
		}
		usleep(20000);
	}
	printf("  %llu confirmed before (lost with the server), %llu to %d after the reconnect; "
	       "the lag is 0\n",
	       (unsigned long long)kept, (unsigned long long)kept, NBIG - 1);
	shmbus_sub_close(log);
	CHECK(t_exited(t_daemon_stop(&d), 0));
	kill(sa, SIGKILL);
	kill(sb, SIGKILL);
	kill(sbig, SIGKILL);
	bt_peer_wait(sa, 2000);
	bt_peer_wait(sb, 2000);
	bt_peer_wait(sbig, 2000);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
