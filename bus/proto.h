/* SPDX-License-Identifier: MIT */
/*
 * The control protocol between libshmbus and shmbusd: fixed-layout datagrams on a
 * SOCK_SEQPACKET socket, "control.sock" in the bus directory. The daemon trusts nothing
 * in them it can check itself: the peer's pid and uid come from SO_PEERCRED, a length
 * must equal the datagram's size, strings must be NUL-terminated within their field.
 *
 *   client -> daemon   HELLO {pid, start time, program}     register; the connection stays
 *                                                           open for the process's life
 *   daemon -> client   WELCOME {daemon pid, client id}
 *   client -> daemon   BYE                                  closing the bus on purpose: the
 *                                                           connection's end is a detach,
 *                                                           not a death
 *   client -> daemon   PING                                 anyone, registered or not
 *   daemon -> client   PONG {daemon info}
 *   daemon -> client   ERROR {errno, text}                  a request it refused
 *
 * On a brokered bus (shmbusd's `access = brokered`; WELCOME says so) topics are not files:
 * the daemon holds each as two sealed memfds and hands them out, checked against its ACL
 * with the peer's SO_PEERCRED and SO_PEERGROUPS, never with anything the message claims:
 *
 *   client -> daemon   OPEN {name, role, create?, opts}     a publisher's, a subscriber's or a
 *                                                           looker's view of a topic
 *   daemon -> client   OPENED {created, generation}         + SCM_RIGHTS: part A (read-only
 *                                                           unless the role is PUB), part B
 *   client -> daemon   REMOVE {name}
 *   daemon -> client   DONE {0}
 *   client -> daemon   LIST {after}                         the topics the peer may use,
 *   daemon -> client   NAMES {n, more, names}               sorted, a page at a time
 *
 * Requests on one connection are answered in order, one answer each.
 */
#ifndef SHMBUS_BUS_PROTO_H
#define SHMBUS_BUS_PROTO_H

#include <stdint.h>

#include "shm/segment.h"

#define SHMBUS_SOCK_NAME "control.sock"
#define SHMBUS_PROTO_MAGIC 0x44424853u /* "SHBD" */
#define SHMBUS_PROTO_VERSION 1u
#define SHMBUS_PROTO_MAX 1024u /* no datagram is longer */

enum shmbus_proto_type {
	SHMBUS_P_HELLO = 1,
	SHMBUS_P_WELCOME = 2,
	SHMBUS_P_PING = 3,
	SHMBUS_P_PONG = 4,
	SHMBUS_P_ERROR = 5,
	SHMBUS_P_BYE = 6,
	SHMBUS_P_OPEN = 7,
	SHMBUS_P_OPENED = 8,
	SHMBUS_P_REMOVE = 9,
	SHMBUS_P_DONE = 10,
	SHMBUS_P_LIST = 11,
	SHMBUS_P_NAMES = 12,
};

/* WELCOME flags. */
#define SHMBUS_P_BROKERED 1u /* topics are opened through the daemon (OPEN), not as files */

/* OPEN roles: what the view is for; each needs its right (daemon/acl.h). */
enum shmbus_p_role {
	SHMBUS_ROLE_CREATE = 0, /* make the topic only; no descriptors */
	SHMBUS_ROLE_PUB = 1,	/* part A read-write: publishing */
	SHMBUS_ROLE_SUB = 2,	/* part A read-only: subscribing */
	SHMBUS_ROLE_LOOK = 3,	/* part A read-only: stats, listings (publish or subscribe) */
};

struct shmbus_p_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t len; /* the whole datagram, header included */
	uint32_t pad;
};

struct shmbus_p_hello {
	struct shmbus_p_hdr h;
	int32_t pid;
	uint32_t flags;
	uint64_t starttime; /* /proc/<pid>/stat field 22 */
	char prog[64];
};

struct shmbus_p_welcome {
	struct shmbus_p_hdr h;
	int32_t daemon_pid;
	uint32_t flags; /* SHMBUS_P_BROKERED */
	uint64_t client_id;
};

struct shmbus_p_open {
	struct shmbus_p_hdr h;
	char name[128];
	uint32_t role;	 /* enum shmbus_p_role */
	uint32_t create; /* 1: create the topic with opts if it does not exist */
	struct shmbus_seg_opts opts; /* fixed-width fields; library and daemon of one version */
};

struct shmbus_p_opened {
	struct shmbus_p_hdr h;
	int32_t created; /* 1: this request made the topic */
	uint32_t nfds;	 /* descriptors passed with it: 0, or 2 (part A, part B) */
	uint64_t generation;
};

/* REMOVE {name}; LIST {name: list the names after this one, "" from the start}. */
struct shmbus_p_name {
	struct shmbus_p_hdr h;
	char name[128];
};

struct shmbus_p_done {
	struct shmbus_p_hdr h;
	int32_t result;
	uint32_t pad;
};

struct shmbus_p_names {
	struct shmbus_p_hdr h;
	uint32_t n;    /* names in names[], each NUL-terminated */
	uint32_t more; /* 1: ask again after the last one */
	char names[960];
};
_Static_assert(sizeof(struct shmbus_p_names) <= SHMBUS_PROTO_MAX, "names fits a datagram");

struct shmbus_p_pong {
	struct shmbus_p_hdr h;
	int32_t pid;
	uint32_t clients;
	uint64_t uptime_ms;
	uint64_t crashes;
	char version[16];
	char config[256];
};

struct shmbus_p_error {
	struct shmbus_p_hdr h;
	int32_t err; /* positive errno */
	uint32_t pad;
	char text[256];
};

/*
 * The daemon's shared counters: the file "daemon.state" in the bus directory, written by
 * the daemon (8-byte relaxed stores into a mapping), read by anyone with pread, so that
 * `shmbus stat` needs nothing of the daemon. Left in place when the daemon stops: pid
 * and start time tell whether it still runs.
 */
#define SHMBUS_STATE_NAME "daemon.state"
#define SHMBUS_STATE_MAGIC 0x5441545344425348ull /* "SHBDSTAT" */
#define SHMBUS_STATE_VERSION 1u

struct shmbus_daemon_state {
	uint64_t magic;
	uint32_t version;
	int32_t pid;
	uint64_t starttime;  /* /proc/<pid>/stat field 22 of the daemon */
	uint64_t started_ns; /* CLOCK_REALTIME */
	uint64_t updated_ns; /* CLOCK_REALTIME of the last update (every 100 ms) */
	uint32_t clients;    /* processes registered now */
	uint32_t watched;    /* processes watched (registered or adopted) */
	uint64_t crashes;
	uint64_t readers_reclaimed;
	uint64_t publishers_reclaimed;
	uint64_t aborted;
	uint64_t connections; /* accepted since start */
	uint32_t access;      /* SHMBUS_STATE_BROKERED: topics only through the daemon */
	uint32_t pad0_;
	uint64_t pad_[4];
};
#define SHMBUS_STATE_BROKERED 1u
_Static_assert(sizeof(struct shmbus_daemon_state) == 128, "daemon state size");

/*
 * The bridge's shared counters: the file "bridge.state" in the bus directory, written by
 * the bridge thread of shmbusd (relaxed 8-byte stores into a mapping), read by anyone with
 * pread (shmbus_bridge_stats()). A header, then nslots slots of slot_size bytes, one per
 * mirror, import and WebSocket listener. Readers check magic, version and that slot_size
 * is at least the size they know, so that slots may grow at the end in a later version.
 * Made again (counters from zero) each time the bridge starts; left when it stops (pid and
 * start time tell whether it runs).
 */
#define SHMBUS_BRIDGE_STATE_NAME "bridge.state"
#define SHMBUS_BRIDGE_MAGIC 0x5247444942534853ull /* "SHSBIDGR" */
#define SHMBUS_BRIDGE_VERSION 1u

struct shmbus_bridge_state {
	uint64_t magic; /* written last, with release */
	uint32_t version;
	int32_t pid;
	uint64_t starttime;  /* /proc/<pid>/stat field 22 of the daemon */
	uint64_t started_ns; /* CLOCK_REALTIME */
	uint64_t updated_ns; /* refreshed every 100 ms */
	uint32_t slot_size;
	uint32_t nslots;
	uint32_t futex_wait; /* 1: idle topics are waited on with IORING_OP_FUTEX_WAIT */
	uint32_t pad0_;
	uint64_t enters; /* io_uring_enter calls that submitted or waited */
	uint64_t sqes;	 /* SQEs they submitted */
	uint64_t cqes;	 /* completions handled */
	uint64_t pad_[22];
};
_Static_assert(sizeof(struct shmbus_bridge_state) == 256, "bridge state header size");

struct shmbus_bridge_slot {
	char name[48];		 /* the section's name */
	char kind[16];		 /* "redis", "ws", "import", "listener" */
	char peer[192];		 /* the peer's URL, no password ("ws://ADDR:PORT" for a listener) */
	uint32_t up;		 /* connected and usable now */
	uint32_t topics;	 /* topics read now (listener: clients connected) */
	uint64_t sent;		 /* messages sent */
	uint64_t confirmed;	 /* messages the peer confirmed (import: published locally) */
	uint64_t lag;		 /* messages published locally and not confirmed yet */
	uint64_t reconnects;	 /* connections made after the first */
	uint64_t errors;	 /* failures: connection lost, error replies, garbage */
	uint64_t lost;		 /* messages lost to overwrite before they were sent */
	uint64_t dups;		 /* messages the peer had already (skipped, not sent twice) */
	uint64_t bytes;		 /* bytes sent */
	uint64_t dropped;	 /* listener: clients cut off for being slow (close 1013) */
	uint64_t last_change_ns; /* CLOCK_REALTIME of the last up/down change */
	char last_error[128];
	uint64_t pad_[5];
};
_Static_assert(sizeof(struct shmbus_bridge_slot) == 512, "bridge slot size");

static inline void shmbus_p_init(struct shmbus_p_hdr *h, uint16_t type, uint32_t len)
{
	h->magic = SHMBUS_PROTO_MAGIC;
	h->version = SHMBUS_PROTO_VERSION;
	h->type = type;
	h->len = len;
	h->pad = 0;
}

/* Does buf (n bytes received) hold a well-formed message of type with exactly size
 * bytes? */
static inline int shmbus_p_check(const void *buf, size_t n, uint16_t type, size_t size)
{
	const struct shmbus_p_hdr *h = buf;
	return n == size && h->magic == SHMBUS_PROTO_MAGIC &&
	       h->version == SHMBUS_PROTO_VERSION && h->type == type && h->len == n;
}

#endif
