/* SPDX-License-Identifier: MIT */
/*
 * Redis on 127.0.0.1, Debian's redis-server, started by the suite on a free port with no
 * persistence (--save "", --appendonly no) and no output-buffer limit for Pub/Sub clients
 * (so a slow subscriber is not disconnected), and killed when the suite ends, however it
 * ends (atexit, the signal handlers, and PR_SET_PDEATHSIG if the suite itself is killed).
 * hiredis is the client, over TCP (it sets TCP_NODELAY).
 *   redis pubsub            PUBLISH, waiting for each reply; SUBSCRIBE readers
 *   redis pubsub pipelined  PUBLISH in pipelined batches (up to 64 commands or 256 KiB)
 *   redis streams           XADD (MAXLEN ~ 256 MiB worth: a reader further behind loses
 *                           messages, counted as lost), waiting for each reply; readers
 *                           XREAD COUNT 128 BLOCK, or XREADGROUP ... NOACK in a group
 *   redis streams pipelined the same with XADD pipelined
 *   redis streams XACK      XADD pipelined; a group's readers without NOACK: each
 *                           XREADGROUP COUNT 128 reply's ids are acked by one XACK, sent
 *                           pipelined with the next XREADGROUP (one round trip for both)
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "loops.h"

static pid_t rpid;

pid_t redis_pid(void)
{
	return rpid;
}

double redis_cpu_s(void)
{
	return pid_cpu_s(rpid);
}

void redis_stop(void)
{
	if (rpid > 0) {
		kill(rpid, SIGKILL);
		waitpid(rpid, NULL, 0);
	}
	rpid = 0;
}

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>

static redisContext *dctx; /* the driver's own connection */
static int rport;	   /* where the redis-server listens */

static redisContext *connect_to(int port)
{
	struct timeval tv = { .tv_sec = 5 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

	if (c && c->err) {
		redisFree(c);
		return NULL;
	}
	return c;
}

static int ping(redisContext *c)
{
	redisReply *rep = redisCommand(c, "PING");
	int ok = rep && rep->type == REDIS_REPLY_STATUS;

	if (rep)
		freeReplyObject(rep);
	return ok;
}

int redis_start(char *why, size_t n)
{
	char prog[PATH_MAX], port_s[16], log[200];

	if (!find_program("redis-server", prog, sizeof(prog))) {
		snprintf(why, n, "redis-server not found in PATH (install redis-server)");
		return -1;
	}
	snprintf(log, sizeof(log), "%s/redis.log", cfg.dir);
	for (int attempt = 0; attempt < 3; attempt++) {
		int port = loopback_free_port();
		pid_t parent = getpid();

		if (port < 0) {
			snprintf(why, n, "no free TCP port on 127.0.0.1: %s", strerror(errno));
			return -1;
		}
		snprintf(port_s, sizeof(port_s), "%d", port);
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			snprintf(why, n, "fork: %s", strerror(errno));
			return -1;
		}
		if (pid == 0) {
			/* Die with the suite, even when it is killed outright. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			int devnull = open("/dev/null", O_RDWR);
			if (devnull >= 0) {
				dup2(devnull, 0);
				dup2(devnull, 1);
				dup2(devnull, 2);
			}
			execl(prog, "redis-server", "--port", port_s, "--bind", "127.0.0.1",
			      "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir",
			      cfg.dir, "--logfile", log, "--client-output-buffer-limit", "pubsub",
			      "0", "0", "0", (char *)NULL);
			_exit(127);
		}
		rpid = pid;
		/* Up to 5 s for it to answer. */
		for (int i = 0; i < 250; i++) {
			int st;

			if (waitpid(pid, &st, WNOHANG) == pid) {
				rpid = 0;
				snprintf(why, n, "redis-server exited at start (status %d; see %s)",
					 st, log);
				break;
			}
			redisContext *c = connect_to(port);
			if (c && ping(c)) {
				dctx = c;
				rport = port;
				return 0;
			}
			if (c)
				redisFree(c);
			usleep(20000);
		}
		redis_stop();
		if (!why[0])
			snprintf(why, n, "redis-server did not answer PING within 5 s");
	}
	return -1;
}

static int redis_available(char *why, size_t n)
{
	if (rport)
		return 1;
	snprintf(why, n, "%s", "redis-server not started");
	return 0;
}

static void driver_cmd(const char *fmt, const char *a, const char *b)
{
	redisReply *rep = redisCommand(dctx, fmt, a, b);

	if (rep)
		freeReplyObject(rep);
}

static int redis_prepare(struct run *r)
{
	snprintf(r->a, sizeof(r->a), "bench:c%d:r%d:a", r->idx, r->round);
	snprintf(r->b, sizeof(r->b), "bench:c%d:r%d:b", r->idx, r->round);
	if (r->c->sc == SC_GROUP) {
		redisReply *rep = redisCommand(dctx, "XGROUP CREATE %s workers $ MKSTREAM", r->a);

		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			snprintf(r->err, sizeof(r->err), "XGROUP CREATE: %s",
				 rep ? rep->str : dctx->errstr);
			if (rep)
				freeReplyObject(rep);
			return -EIO;
		}
		freeReplyObject(rep);
	}
	return 0;
}

static void redis_cleanup(struct run *r)
{
	driver_cmd("DEL %s %s", r->a, r->b);
}

/* ---- worker side ---- */

enum { RK_PUB, RK_XADD };

struct rh {
	redisContext *c;
	const char *key;
	uint32_t size;
	int kind; /* RK_PUB or RK_XADD */
	int pipelined;
	int lazy; /* one-way: write every command at once, read replies later */
	unsigned batch, pending;
	long maxlen;
	/* rx */
	int group;
	char consumer[16]; /* group: this member's consumer name */
	redisReply *rep;   /* the reply the current view points into */
	redisReply *ents;  /* streams: the entries of rep (checked once, on arrival) */
	size_t next;	   /* streams: next entry of ents */
	char last_id[64];  /* streams: last id read (XREAD) */
	int ack;	   /* group: XACK what each XREADGROUP returned */
};

/* Entries an XREAD or XREADGROUP asks for at most. */
#define RX_COUNT 128

static struct rh *rh_new(struct run *r, int chan, int kind, int pipelined)
{
	struct rh *h = calloc(1, sizeof(*h));

	if (!h)
		wfail("out of memory");
	h->c = connect_to(rport);
	if (!h->c)
		wfail("cannot connect to redis on port %d", rport);
	h->key = chan ? r->b : r->a;
	h->size = r->size;
	h->kind = kind;
	h->pipelined = pipelined;
	h->lazy = pipelined && r->c->sc == SC_ONEWAY;
	h->batch = (unsigned)((256u << 10) / (r->size ? r->size : 1));
	if (h->batch > 64)
		h->batch = 64;
	if (h->batch < 1)
		h->batch = 1;
	h->maxlen = (long)((256ull << 20) / (r->size ? r->size : 1));
	if (h->maxlen < 64)
		h->maxlen = 64;
	snprintf(h->last_id, sizeof(h->last_id), "0-0");
	return h;
}

static void check_reply(redisContext *c, redisReply *rep, const char *what)
{
	if (!rep)
		wfail("redis %s: %s", what, c->errstr);
	if (rep->type == REDIS_REPLY_ERROR)
		wfail("redis %s: %s", what, rep->str);
	freeReplyObject(rep);
}

static void read_replies(struct rh *h, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		void *rep;

		if (redisGetReply(h->c, &rep) != REDIS_OK)
			wfail("redis reply: %s", h->c->errstr);
		check_reply(h->c, rep, "pipelined reply");
	}
	h->pending -= n;
}

static void write_out(struct rh *h)
{
	int done = 0;

	while (!done)
		if (redisBufferWrite(h->c, &done) != REDIS_OK)
			wfail("redis write: %s", h->c->errstr);
}

static inline void rh_send(void *hp, const uint8_t *buf, uint32_t len)
{
	struct rh *h = hp;

	if (!h->pipelined) {
		redisReply *rep =
			h->kind == RK_PUB ?
				redisCommand(h->c, "PUBLISH %s %b", h->key, buf, (size_t)len) :
				redisCommand(h->c, "XADD %s MAXLEN ~ %ld * d %b", h->key, h->maxlen,
					     buf, (size_t)len);
		check_reply(h->c, rep, h->kind == RK_PUB ? "PUBLISH" : "XADD");
		return;
	}
	int rc = h->kind == RK_PUB ?
			 redisAppendCommand(h->c, "PUBLISH %s %b", h->key, buf, (size_t)len) :
			 redisAppendCommand(h->c, "XADD %s MAXLEN ~ %ld * d %b", h->key, h->maxlen,
					    buf, (size_t)len);
	if (rc != REDIS_OK)
		wfail("redis append: %s", h->c->errstr);
	h->pending++;
	if (h->lazy) {
		write_out(h);
		if (h->pending >= 64)
			read_replies(h, h->pending);
	} else if (h->pending >= h->batch) {
		read_replies(h, h->pending);
	}
}

static void rh_flush(void *hp)
{
	struct rh *h = hp;

	if (!h->pipelined)
		return;
	if (h->lazy) {
		write_out(h);
		/* The last one: every reply, so every message has reached the server. */
		if (h->pending && ctl->sent)
			read_replies(h, h->pending);
	} else {
		read_replies(h, h->pending);
	}
}

static void *rpub_open_tx(struct run *r, int chan, int idx)
{
	(void)idx;
	return rh_new(r, chan, RK_PUB, r->c->peer == PEER_REDIS_PUB_PIPE);
}

static void *rx_open_tx(struct run *r, int chan, int idx)
{
	(void)idx;
	return rh_new(r, chan, RK_XADD,
		      r->c->peer == PEER_REDIS_XADD_PIPE || r->c->peer == PEER_REDIS_XACK_PIPE);
}

static void *rpub_open_rx(struct run *r, int chan, int idx)
{
	struct rh *h = rh_new(r, chan, RK_PUB, 0);

	(void)idx;
	check_reply(h->c, redisCommand(h->c, "SUBSCRIBE %s", h->key), "SUBSCRIBE");
	return h;
}

static void *rx_open_rx(struct run *r, int chan, int idx)
{
	struct rh *h = rh_new(r, chan, RK_XADD, 0);

	h->group = r->c->sc == SC_GROUP;
	h->ack = h->group && r->c->peer == PEER_REDIS_XACK_PIPE;
	snprintf(h->consumer, sizeof(h->consumer), "c%d", idx);
	return h;
}

static inline void rpub_recv(void *hp, struct view *v)
{
	struct rh *h = hp;
	void *p;

	if (h->rep)
		freeReplyObject(h->rep);
	h->rep = NULL;
	if (redisGetReply(h->c, &p) != REDIS_OK)
		wfail("redis subscriber: %s", h->c->errstr);
	redisReply *rep = p;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
	    rep->element[2]->type != REDIS_REPLY_STRING)
		wfail("redis subscriber: unexpected reply of type %d", rep->type);
	h->rep = rep;
	v->data = (const uint8_t *)rep->element[2]->str;
	v->len = (uint32_t)rep->element[2]->len;
	v->lost = 0;
}

/* The entries of an XREAD/XREADGROUP reply: [[key, [[id, [field, value]], ...]]]. */
static redisReply *entries(redisReply *rep)
{
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    rep->element[0]->type != REDIS_REPLY_ARRAY || rep->element[0]->elements != 2 ||
	    rep->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
		wfail("redis stream reader: unexpected reply of type %d", rep->type);
	return rep->element[0]->element[1];
}

/*
 * An acknowledging reader is done with the batch it has (its messages were all checked):
 * XACK all its ids, and XREADGROUP the next batch, both written at once; then the XACK's
 * reply (every id acked, each once) and the XREADGROUP's.
 */
static redisReply *rx_ack_and_read(struct rh *h)
{
	const char *av[RX_COUNT + 3];
	size_t avl[RX_COUNT + 3];
	size_t n = h->rep ? h->ents->elements : 0;

	if (n) {
		if (n > RX_COUNT)
			wfail("redis XREADGROUP returned %zu entries, asked for %d", n, RX_COUNT);
		av[0] = "XACK";
		av[1] = h->key;
		av[2] = "workers";
		for (size_t i = 0; i < n; i++)
			av[3 + i] = h->ents->element[i]->element[0]->str;
		for (size_t i = 0; i < n + 3; i++)
			avl[i] = strlen(av[i]);
		if (redisAppendCommandArgv(h->c, (int)n + 3, av, avl) != REDIS_OK)
			wfail("redis append XACK: %s", h->c->errstr);
	}
	if (h->rep)
		freeReplyObject(h->rep);
	h->rep = NULL;
	if (redisAppendCommand(h->c, "XREADGROUP GROUP workers %s COUNT %d BLOCK 1000 STREAMS %s >",
			       h->consumer, RX_COUNT, h->key) != REDIS_OK)
		wfail("redis append XREADGROUP: %s", h->c->errstr);
	void *p;
	if (n) {
		if (redisGetReply(h->c, &p) != REDIS_OK)
			wfail("redis XACK: %s", h->c->errstr);
		redisReply *a = p;
		if (a->type != REDIS_REPLY_INTEGER || a->integer != (long long)n)
			wfail("redis XACK of %zu ids: %s %lld", n,
			      a->type == REDIS_REPLY_ERROR ? a->str : "acked", a->integer);
		freeReplyObject(a);
	}
	if (redisGetReply(h->c, &p) != REDIS_OK)
		wfail("redis stream reader: %s", h->c->errstr);
	return p;
}

static inline void rx_recv(void *hp, struct view *v)
{
	struct rh *h = hp;

	while (!h->rep || h->next >= h->ents->elements) {
		redisReply *rep;

		if (h->ack) {
			rep = rx_ack_and_read(h);
			h->next = 0;
			goto got;
		}
		if (h->rep)
			freeReplyObject(h->rep);
		h->rep = NULL;
		h->next = 0;
		if (h->group) {
			rep = redisCommand(h->c,
					   "XREADGROUP GROUP workers %s COUNT 128 BLOCK 1000 NOACK "
					   "STREAMS %s >",
					   h->consumer, h->key);
		} else {
			rep = redisCommand(h->c, "XREAD COUNT 128 BLOCK 1000 STREAMS %s %s", h->key,
					   h->last_id);
		}
got:
		if (!rep)
			wfail("redis stream reader: %s", h->c->errstr);
		if (rep->type == REDIS_REPLY_ERROR)
			wfail("redis stream reader: %s", rep->str);
		if (rep->type == REDIS_REPLY_NIL) {
			freeReplyObject(rep);
			continue;
		}
		h->rep = rep;
		h->ents = entries(rep);
	}
	redisReply *e = h->ents->element[h->next++];
	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[1]->type != REDIS_REPLY_ARRAY || e->element[1]->elements != 2)
		wfail("redis stream reader: malformed entry");
	snprintf(h->last_id, sizeof(h->last_id), "%s", e->element[0]->str);
	v->data = (const uint8_t *)e->element[1]->element[1]->str;
	v->len = (uint32_t)e->element[1]->element[1]->len;
	v->lost = 0;
}

static const struct ops rpub_ops = {
	.open_tx = rpub_open_tx,
	.open_rx = rpub_open_rx,
	.send = rh_send,
	.flush = rh_flush,
	.recv = rpub_recv,
};

static const struct ops rx_ops = {
	.open_tx = rx_open_tx,
	.open_rx = rx_open_rx,
	.send = rh_send,
	.flush = rh_flush,
	.recv = rx_recv,
};

LOOPS_DEFINE(rpub, &rpub_ops)
LOOPS_DEFINE(rx, &rx_ops)

/* What a Redis peer runs: the workers of its loops (pfx_producer, ...). */
#define REDIS_WORKERS(pfx) .prepare = redis_prepare, .cleanup = redis_cleanup, LOOPS_ROLES(pfx)

#else /* !HAVE_HIREDIS */

#define NO_HIREDIS "built without hiredis (install libhiredis-dev and reconfigure)"

int redis_start(char *why, size_t n)
{
	snprintf(why, n, NO_HIREDIS);
	return -1;
}

static int redis_available(char *why, size_t n)
{
	snprintf(why, n, NO_HIREDIS);
	return 0;
}

/* Nothing to prepare or run (NULL, as unset): available() says why. */
#define REDIS_WORKERS(pfx) .prepare = NULL

#endif

#define REDIS_PEER(var, id_, label_, flags_, pfx) \
	const struct peer var = {                 \
		.id = id_,                        \
		.label = label_,                  \
		.flags = flags_,                  \
		.available = redis_available,     \
		REDIS_WORKERS(pfx),               \
	}

REDIS_PEER(peer_redis_pub, "redis_pubsub", "redis pubsub", 0, rpub);
REDIS_PEER(peer_redis_pub_pipe, "redis_pubsub_pipelined", "redis pubsub pipelined", 0, rpub);
REDIS_PEER(peer_redis_xadd, "redis_streams", "redis streams", PF_SILENT_LOSS, rx);
REDIS_PEER(peer_redis_xadd_pipe, "redis_streams_pipelined", "redis streams pipelined",
	   PF_SILENT_LOSS, rx);
REDIS_PEER(peer_redis_xack_pipe, "redis_streams_xack", "redis streams XACK", PF_SILENT_LOSS, rx);
