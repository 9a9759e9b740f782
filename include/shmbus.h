/* SPDX-License-Identifier: MIT */
/*
 * shmbus — same-host messaging between processes at memory speed.
 *
 * A bus is a directory of shared-memory files (by default /dev/shm/shmbus/<bus>/).
 * Each topic is one file holding a lock-free ring of variable-size messages that any
 * number of processes publish to and read from at once. No daemon is needed: with
 * none running the library works "embedded", creating and opening topic files itself.
 *
 * Conventions
 *  - Every function returning int returns >= 0 on success and -errno on failure.
 *  - Slow-path failures (open, create, remove) also leave a message with context in a
 *    thread-local buffer, read with shmbus_errmsg(). The hot path (publish, reserve,
 *    commit, recv) returns codes only.
 *  - Handles are not thread-safe: one thread at a time may use a given shmbus_pub_t or
 *    shmbus_sub_t. Any number of handles, in any number of threads and processes, may
 *    use one topic at once. A shmbus_bus_t may be shared by threads once opened.
 *  - The library never prints and never exits.
 */
#ifndef SHMBUS_H
#define SHMBUS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SHMBUS_API __attribute__((visibility("default")))
#else
#define SHMBUS_API
#endif

#define SHMBUS_VERSION_MAJOR 0
#define SHMBUS_VERSION_MINOR 1

/* Longest topic name, in bytes, without the terminating NUL. */
#define SHMBUS_TOPIC_NAME_MAX 127
/* Longest group name, in bytes, without the terminating NUL. */
#define SHMBUS_GROUP_NAME_MAX 47

typedef struct shmbus_bus shmbus_bus_t;
typedef struct shmbus_pub shmbus_pub_t;
typedef struct shmbus_sub shmbus_sub_t;
typedef struct shmbus_sink shmbus_sink_t;

/* What a publisher does when the ring is full. */
enum shmbus_policy {
	/* Never overwrite what a live subscriber or group has not consumed: the publisher
	 * waits for space, or fails with -EAGAIN after its timeout. Nothing is lost. */
	SHMBUS_BLOCK = 0,
	/* Publishers never wait for readers. A reader that was lapped skips ahead and is
	 * told how many messages it lost (shmbus_msg_t.lost). A publisher may wait, briefly,
	 * only for another publisher that is still writing a record a whole lap behind (so
	 * that it cannot write over newer messages); a dead one is repaired. */
	SHMBUS_OVERWRITE = 1,
};

/* Topic flags (shmbus_topic_opts_t.flags). */
enum {
	/* Allow a name under the reserved "$sys." prefix (for the daemon and tools). */
	SHMBUS_TOPIC_SYSTEM = 1u << 0,
};

/*
 * Options of a topic, fixed when it is created. Initialise with shmbus_topic_opts_init()
 * and change what you need; zero fields take the defaults given below.
 */
typedef struct shmbus_topic_opts {
	uint64_t capacity;       /* log size in bytes: power of two, 4 KiB .. 1 TiB; default 1 MiB */
	uint32_t max_message;    /* largest payload, <= capacity/2 - 64; 0 = capacity/8 (max 1 GiB) */
	uint32_t policy;         /* enum shmbus_policy; default SHMBUS_BLOCK */
	uint32_t max_readers;    /* reader slots (subscribers + group members), 1..4096; default 64 */
	uint32_t max_groups;     /* group slots, 0..1024 (0 takes the default, 16) */
	uint32_t max_publishers; /* publisher slots, 1..4096; default 64 */
	uint32_t flags;          /* SHMBUS_TOPIC_* */
	uint32_t max_pending;    /* pending entries per group (messages acknowledging members
	                          * took and did not ack yet), 1..65536; default 256 */
	uint32_t reserved[7];    /* must be zero */
} shmbus_topic_opts_t;

/* A message returned by shmbus_recv(). */
typedef struct shmbus_msg {
	const void *data;      /* payload: valid until the next shmbus_recv() or shmbus_release()
	                        * on the same subscriber, or shmbus_sub_close() */
	uint32_t len;          /* payload length in bytes (may be 0) */
	uint32_t type;         /* the publisher's type word */
	uint64_t seq;          /* topic-wide sequence number, from 0, one per message */
	uint64_t timestamp_ns; /* CLOCK_REALTIME at publish, in ns (read through the TSC where
	                        * it is invariant: within a few us of clock_gettime) */
	uint64_t lost;         /* messages this reader lost just before this one (overwrite) */
	uint32_t deliveries;   /* an acknowledging member (SHMBUS_SUB_ACK): 1 the first time
	                        * this message is delivered, 2 the next...; else 1 */
	uint32_t _flags;       /* private */
	const char *topic;     /* the topic's name: valid while the subscriber (or the sink's
	                        * reader of that topic) is open */
	uint64_t _pos;         /* private */
	uint64_t _pend;        /* private: its pending entry (SHMBUS_SUB_ACK) */
	uint64_t _src;         /* private: the sink's reader it came from */
} shmbus_msg_t;

/* One message of a batch (shmbus_publish_batch()). */
typedef struct shmbus_iov {
	const void *data;
	size_t len;
	uint32_t type;
} shmbus_iov_t;

/* Subscriber flags (shmbus_sub_open()). */
enum {
	/* Start from the earliest message still in the ring, not from the next one
	 * published. For a group, applies only when this call creates the group. */
	SHMBUS_SUB_EARLIEST = 1u << 0,
	/* A group member that acknowledges (docs/acks.md): each message it receives stays
	 * pending for the group until shmbus_ack(); shmbus_nack(), a timeout (the group's
	 * ack_wait_ms) or the member's death hands it back for redelivery, to any member, up
	 * to the group's max_deliver deliveries; then it goes to the dead-letter topic. */
	SHMBUS_SUB_ACK = 1u << 1,
};

/*
 * Options of a group, fixed when the group is created (shmbus_sub_open_group(); a later
 * member's options are ignored). Initialise with shmbus_group_opts_init().
 */
typedef struct shmbus_group_opts {
	uint32_t max_pending;	     /* messages pending for the group at most; 0 = the topic's
				      * max_pending (and at most that) */
	uint32_t max_pending_member; /* pending for one member at most; 0 = max_pending */
	uint32_t ack_wait_ms;	     /* a message not acked within this is redelivered;
				      * default 30000 */
	uint32_t max_deliver;	     /* deliveries before the dead-letter topic; default 5 */
	const char *dead_letter;     /* NULL: "<topic>.dead"; "": none (dropped, counted) */
	uint32_t reserved[8];	     /* must be zero */
} shmbus_group_opts_t;

/* Reasons a message went to the dead-letter topic (shmbus_dead_letter_t.reason). */
enum shmbus_dead_reason {
	SHMBUS_DEAD_NACK = 1,	 /* its last delivery was nacked */
	SHMBUS_DEAD_TIMEOUT = 2, /* ... not acked within ack_wait_ms */
	SHMBUS_DEAD_CRASH = 3,	 /* ... held by a member that died or closed */
};

/*
 * The header of a dead-letter message: the message's payload follows it; the dead letter's
 * type is the message's type.
 */
typedef struct shmbus_dead_letter {
	char topic[SHMBUS_TOPIC_NAME_MAX + 1]; /* where it was published */
	char group[SHMBUS_GROUP_NAME_MAX + 1]; /* the group that gave up on it */
	uint64_t seq;			       /* its sequence number there */
	uint64_t timestamp_ns;		       /* when it was published */
	uint32_t deliveries;		       /* how often it was delivered */
	uint32_t reason;		       /* enum shmbus_dead_reason */
} shmbus_dead_letter_t;

/* ---- errors ------------------------------------------------------------------------ */

/*
 * The calling thread's last slow-path error message ("" if none). Valid until the next
 * shmbus call in that thread. Never NULL.
 */
SHMBUS_API const char *shmbus_errmsg(void);

/* ---- bus --------------------------------------------------------------------------- */

/*
 * Open (creating its directory if needed) the bus called name. The directory is
 * $SHMBUS_DIR/<name> ($SHMBUS_DIR defaults to /dev/shm/shmbus); a NULL name means
 * $SHMBUS_BUS, or "default". Bus names follow the rules of one topic token.
 * The root and the bus directory are opened O_DIRECTORY|O_NOFOLLOW and must belong to the
 * caller or root; group write only for their owner or a member of their group; write for
 * everyone never, except on a sticky root (as /dev/shm). Created ones are made 0755 (the
 * root and its parents) and 0770 (the bus directory), less the umask, then checked alike.
 * Returns 0, -EINVAL (bad name), -ENOMEM, -EPERM (a root or bus directory that is a
 * symlink or that another user controls: the message names the path, owner and mode; see
 * docs/security.md), or the error of mkdir/open on the directory.
 * Thread-safety: any thread; the handle may then be shared by threads.
 */
SHMBUS_API int shmbus_bus_open(shmbus_bus_t **out, const char *name);

/* Bus flags (shmbus_bus_open_flags()). */
enum {
	/* Only look at the bus: it must exist already (its directory is not created), and
	 * the process does not register with the bus's daemon, so the daemon logs nothing
	 * about it. For tools that inspect a bus (`shmbus topics`, `stat`, `doctor`, `tail`). */
	SHMBUS_BUS_LOOK = 1u << 0,
};

/*
 * shmbus_bus_open() with flags (SHMBUS_BUS_*; 0 is shmbus_bus_open() itself).
 * With SHMBUS_BUS_LOOK, a bus whose directory does not exist is -ENOENT (with a message
 * naming the directory) and -ENOTDIR if that path is not a directory. The handle works as
 * any other, but a process that takes slots through it is not registered: as under
 * SHMBUS_NO_DAEMON, a daemon finds it by its periodic scan, and what it leaves when it dies
 * is repaired all the same. Returns as shmbus_bus_open(), and -EINVAL for unknown flags.
 * Thread-safety: any thread; the handle may then be shared by threads.
 */
SHMBUS_API int shmbus_bus_open_flags(shmbus_bus_t **out, const char *name, int flags);

/* Close a bus handle. Topics and handles opened from it must be closed first. NULL is a no-op. */
SHMBUS_API void shmbus_bus_close(shmbus_bus_t *bus);

/* The bus directory's path. Valid while the handle is open. */
SHMBUS_API const char *shmbus_bus_path(const shmbus_bus_t *bus);

/* ---- topics ------------------------------------------------------------------------ */

/* Fill *opts with the defaults. */
SHMBUS_API void shmbus_topic_opts_init(shmbus_topic_opts_t *opts);

/*
 * Check a topic name: dot-separated tokens of [A-Za-z0-9_-], none empty, at most
 * SHMBUS_TOPIC_NAME_MAX bytes; a leading "$sys." only when system is nonzero.
 * Returns 0 or -EINVAL (with a message).
 */
SHMBUS_API int shmbus_topic_name_check(const char *name, int system);

/*
 * Create topic name on the bus (opts NULL = defaults). The file is fully built and its
 * space reserved before it appears, so a tmpfs too small for it fails here with
 * -ENOSPC, never later with SIGBUS.
 * Returns 0 when created, 1 when it existed with the same options; -EEXIST if it exists
 * with other options, -EINVAL for a bad name or option, -ENOSPC, -EACCES, -EPROTO or
 * -EBADMSG if a file of that name exists but is not a valid topic (-EPROTO at once for
 * anything that is not a regular file at least a header long: a FIFO, a symlink, even to
 * a good topic, is never opened through or waited on). Bus-level refusals (-EPERM) come
 * from shmbus_bus_open().
 * Thread-safety: any thread or process, concurrently with anything.
 */
SHMBUS_API int shmbus_topic_create(shmbus_bus_t *bus, const char *name,
				   const shmbus_topic_opts_t *opts);

/*
 * Remove topic name. Handles already open on it keep working on the orphaned ring until
 * closed; new opens fail with -ENOENT. Returns 0, -ENOENT, -EINVAL.
 */
SHMBUS_API int shmbus_topic_remove(shmbus_bus_t *bus, const char *name);

/*
 * Read the options of an existing topic into *opts. Validates the file like an open.
 * Returns 0, -ENOENT, -EPROTO, -EBADMSG.
 */
SHMBUS_API int shmbus_topic_info(shmbus_bus_t *bus, const char *name, shmbus_topic_opts_t *opts);

/* ---- publishing -------------------------------------------------------------------- */

/*
 * Open a publisher on an existing topic. Takes one publisher slot of the topic (slots of
 * dead processes are reclaimed). Returns 0, -ENOENT, -EUSERS (no free publisher slot),
 * -EPROTO/-EBADMSG (not a valid topic file), -ENOMEM.
 */
SHMBUS_API int shmbus_pub_open(shmbus_pub_t **out, shmbus_bus_t *bus, const char *topic);

/* Close a publisher (an open reservation is aborted). NULL is a no-op. */
SHMBUS_API void shmbus_pub_close(shmbus_pub_t *pub);

/*
 * How long a publish or reserve on a SHMBUS_BLOCK topic waits for space: milliseconds,
 * 0 = never wait, -1 = forever (the default). Returns 0.
 */
SHMBUS_API int shmbus_pub_set_timeout(shmbus_pub_t *pub, int timeout_ms);

/*
 * Publish one message of len bytes (0 .. max_message) with a user type word.
 * Returns 0; -EMSGSIZE if len > max_message (nothing written); -EAGAIN if the topic is
 * SHMBUS_BLOCK and no space came within the timeout; -EBUSY if a reservation is open;
 * -EBADMSG if the topic's claim tail is damaged (see shmbus_recv()).
 */
SHMBUS_API int shmbus_publish(shmbus_pub_t *pub, const void *data, size_t len, uint32_t type);

/* shmbus_publish() with an explicit timeout for this call (as shmbus_pub_set_timeout()). */
SHMBUS_API int shmbus_publish_timeout(shmbus_pub_t *pub, const void *data, size_t len,
				      uint32_t type, int timeout_ms);

/*
 * Publish n messages with as few claims as possible (one, when they fit in a lap).
 * Readers see them in order and never a part of a claim without the rest.
 * Returns the number published (n, or fewer if a SHMBUS_BLOCK wait timed out after
 * some were published), or -EMSGSIZE (nothing written), -EAGAIN, -EBUSY.
 */
SHMBUS_API int shmbus_publish_batch(shmbus_pub_t *pub, const shmbus_iov_t *msgs, unsigned n);

/*
 * Reserve len bytes in the ring and return a pointer to them in *buf, to be filled and
 * then published with shmbus_commit() or dropped with shmbus_abort(). One reservation
 * per publisher at a time. Readers behind the reservation wait for it, so commit soon.
 * Returns 0, -EMSGSIZE, -EAGAIN (block timeout), -EBUSY (a reservation is open).
 */
SHMBUS_API int shmbus_reserve(shmbus_pub_t *pub, size_t len, void **buf);

/* Publish the open reservation with type 0. Returns 0 or -EINVAL (none open). */
SHMBUS_API int shmbus_commit(shmbus_pub_t *pub);

/* Publish the open reservation with a type word. Returns 0 or -EINVAL (none open). */
SHMBUS_API int shmbus_commit_type(shmbus_pub_t *pub, uint32_t type);

/* Drop the open reservation; readers skip it (counted as aborted). Returns 0 or -EINVAL. */
SHMBUS_API int shmbus_abort(shmbus_pub_t *pub);

/* ---- subscribing ------------------------------------------------------------------- */

/*
 * Open a reader on an existing topic. With group NULL it is a fan-out subscriber that
 * reads every message published after it joined (or from the earliest retained, with
 * SHMBUS_SUB_EARLIEST). With a group name (a topic token, at most SHMBUS_GROUP_NAME_MAX
 * bytes) it joins that group, creating it if needed: each message goes to exactly one
 * member of the group. Returns 0, -ENOENT, -EINVAL, -EUSERS (no free reader or group
 * slot), -EPROTO/-EBADMSG, -ENOMEM.
 */
SHMBUS_API int shmbus_sub_open(shmbus_sub_t **out, shmbus_bus_t *bus, const char *topic,
			       const char *group, int flags);

/* Defaults for group options. */
SHMBUS_API void shmbus_group_opts_init(shmbus_group_opts_t *opts);

/*
 * shmbus_sub_open() for a group member, with the group's options for when this call
 * creates the group (opts NULL: the defaults). Returns as shmbus_sub_open(), and -EINVAL
 * for bad options or SHMBUS_SUB_ACK without a group.
 */
SHMBUS_API int shmbus_sub_open_group(shmbus_sub_t **out, shmbus_bus_t *bus, const char *topic,
				     const char *group, int flags, const shmbus_group_opts_t *opts);

/*
 * An acknowledging member (SHMBUS_SUB_ACK) is done with msg: it is no longer pending, and
 * never delivered again. msg may be any message this member received and has not acked
 * or nacked (not only the last one; its data need not be valid any more). Returns 0, or
 * -ESTALE if it is not pending for this member any more (its ack_wait_ms expired and it
 * was handed back, it was redelivered to another member, or it is not this member's),
 * which changes nothing; -EINVAL for a subscriber that does not acknowledge.
 * Thread-safety: unlike the rest of a subscriber's calls, shmbus_ack() and shmbus_nack()
 * may run in another thread while a receive on the same subscriber is in progress (an
 * event loop acks while its reader thread waits); not concurrently with its close.
 */
SHMBUS_API int shmbus_ack(shmbus_sub_t *sub, const shmbus_msg_t *msg);

/*
 * Hand msg back for redelivery, to any member, not before delay_ms. If it was delivered
 * max_deliver times already it is not delivered again: the next member to look (this one
 * at its next receive, or at its close) publishes it to the dead-letter topic. Returns as
 * shmbus_ack().
 */
SHMBUS_API int shmbus_nack(shmbus_sub_t *sub, const shmbus_msg_t *msg, uint32_t delay_ms);

/* Close a reader, releasing its slot (and any held message). NULL is a no-op. An
 * acknowledging member's pending messages are handed back for redelivery at once. */
SHMBUS_API void shmbus_sub_close(shmbus_sub_t *sub);

/*
 * Receive the next message into *msg, waiting up to timeout_ms (0 = poll, -1 = forever):
 * spins briefly, then sleeps on a shared futex until a publisher wakes it.
 * The previous message of this subscriber is released first. msg->data stays valid
 * until the next shmbus_recv()/shmbus_release() on this subscriber.
 * Returns 0; -EAGAIN if nothing came in time; -EINTR if a signal interrupted the sleep
 * (the wait is made of sleeps of at most 100 ms, so that a wake-up lost to a damaged file
 * costs at most that: a signal that lands in the few microseconds between two of them
 * runs its handler without ending the wait);
 * -EBADMSG if the ring holds a record that fails validation (the topic is corrupt).
 */
SHMBUS_API int shmbus_recv(shmbus_sub_t *sub, shmbus_msg_t *msg, int timeout_ms);

/*
 * Receive up to max messages in one call: wait as shmbus_recv() for the first, then take
 * those that are there already, without waiting. Fills msgs[0..n) in order and returns n
 * (1 <= n <= max), or what shmbus_recv() returns when nothing came (-EAGAIN, -EINTR,
 * -EBADMSG); -EINVAL for max 0. Every view stays valid until the next receive or
 * release on this subscriber (so in SHMBUS_BLOCK mode the whole batch holds its space;
 * release it with the last message). Where messages are copied out (SHMBUS_OVERWRITE,
 * or a reader's first lap after joining from the earliest) a batch holds one message.
 * Damage met after the first message ends the batch; the next receive reports it.
 */
SHMBUS_API int shmbus_recv_batch(shmbus_sub_t *sub, shmbus_msg_t *msgs, unsigned max,
				 int timeout_ms);

/*
 * Say that this subscriber is done with msg, so publishers may reuse its space (after
 * shmbus_recv_batch(): the batch's last message releases the whole batch).
 * Returns 0 or -EINVAL (msg is not the one last received).
 */
SHMBUS_API int shmbus_release(shmbus_sub_t *sub, shmbus_msg_t *msg);

/*
 * How long shmbus_recv() spins before sleeping, in microseconds. By default a subscriber
 * spins up to 20 us, shorter while spinning does not pay (down to 1.25 us), and not at all
 * while the machine has more runnable tasks than CPUs (then the publisher may need the
 * CPU a spin would hold). After this call it spins exactly spin_us every time (0: it
 * sleeps at once). Returns 0.
 */
SHMBUS_API int shmbus_sub_set_spin(shmbus_sub_t *sub, unsigned spin_us);

/*
 * A file descriptor that becomes readable when shmbus_recv() would return a message, for
 * epoll, poll, select, io_uring, libuv or asyncio beside sockets. The rule is that of an
 * edge-triggered socket: once it is readable, receive with timeout 0 until -EAGAIN; a
 * receive that returns -EAGAIN is what arms it again (one system call at most, only then:
 * none while the reader keeps up). It may become readable with nothing to receive (a
 * spurious wake-up, at least every 100 ms while armed); never fails to when there is.
 * Made on the first call (an io_uring waiting on the topic's wake word with
 * IORING_OP_FUTEX_WAIT: Linux 6.7 or later), owned by the subscriber: do not close it.
 * Returns the fd, or -ENOSYS (the kernel cannot), -ENOMEM, -EMFILE with a message.
 */
SHMBUS_API int shmbus_sub_fd(shmbus_sub_t *sub);

/* ---- topic patterns ---------------------------------------------------------------- */

/*
 * Patterns name topics as the bridge's do: dot-separated tokens, where a token "*"
 * matches any one token and a last token ">" matches one or more. "orders.*" matches
 * "orders.eu" but not "orders" nor "orders.eu.fr"; "orders.>" matches both of the latter.
 * Topics under "$sys." match only patterns that start with "$sys.".
 * shmbus_pattern_check(): 0, or -EINVAL with shmbus_errmsg() saying why.
 * shmbus_pattern_match(): 1 if topic matches pattern, else 0.
 */
SHMBUS_API int shmbus_pattern_check(const char *pattern);
SHMBUS_API int shmbus_pattern_match(const char *pattern, const char *topic);

/* ---- sinks: one reader over many topics -------------------------------------------- */

/*
 * A sink reads many topics as one reader: topics by name or pattern, joined as they are
 * created and left as they are removed, received in one call or waited for on one fd
 * (docs/sinks.md). With group NULL it reads every message of each topic (a fan-out
 * subscriber of each); with a group name it is one member of that group on every topic
 * it reads (flags SHMBUS_SUB_ACK: an acknowledging one, acked with shmbus_sink_ack()).
 * flags: SHMBUS_SUB_EARLIEST, SHMBUS_SUB_ACK. A sink is used by one thread at a time
 * (shmbus_sink_ack()/nack() excepted, as for a subscriber). Returns 0, -EINVAL, -ENOMEM,
 * -EMFILE.
 */
SHMBUS_API int shmbus_sink_open(shmbus_sink_t **out, shmbus_bus_t *bus, const char *group,
				int flags);

/* shmbus_sink_open() with the options of the groups it creates (NULL: defaults). */
SHMBUS_API int shmbus_sink_open_group(shmbus_sink_t **out, shmbus_bus_t *bus, const char *group,
				      int flags, const shmbus_group_opts_t *opts);

/*
 * Read a topic, or every topic a pattern matches, now and from now on: a matching topic
 * created later is joined within 10 ms, one removed is left. Returns how many topics the
 * sink reads now because of it (0: none exists yet), -EINVAL (bad name or pattern, with
 * a message), -EEXIST (added already), or an error opening a topic (-EACCES...: that
 * topic is skipped, and its error is what shmbus_errmsg() says; the rest are read).
 */
SHMBUS_API int shmbus_sink_add(shmbus_sink_t *sink, const char *topic_or_pattern);

/* Stop reading what topic_or_pattern (as it was added) names: topics that no pattern
 * left matches are left at once (a held message released). Returns 0 or -ENOENT. */
SHMBUS_API int shmbus_sink_remove(shmbus_sink_t *sink, const char *topic_or_pattern);

/* A filter: return nonzero to keep the message. */
typedef int (*shmbus_filter_fn)(void *arg, const char *topic, uint32_t type, const void *data,
				uint32_t len);

/* Call fn on each message before the sink returns it; a message it rejects is consumed
 * (acked, for an acknowledging sink) and never returned. fn NULL: no filter. */
SHMBUS_API void shmbus_sink_set_filter(shmbus_sink_t *sink, shmbus_filter_fn fn, void *arg);

/*
 * Receive the next message of any topic the sink reads, as shmbus_recv() (msg->topic
 * names it). Fair: a topic gives at most 16 messages in a row while another has some
 * (docs/sinks.md). The previous message is released first. Returns 0, -EAGAIN, -EINTR.
 */
SHMBUS_API int shmbus_sink_recv(shmbus_sink_t *sink, shmbus_msg_t *msg, int timeout_ms);

/* Release the message last received (its space is free for publishers). 0 or -EINVAL. */
SHMBUS_API int shmbus_sink_release(shmbus_sink_t *sink, shmbus_msg_t *msg);

/* An acknowledging sink: as shmbus_ack() and shmbus_nack(), for a message it returned. */
SHMBUS_API int shmbus_sink_ack(shmbus_sink_t *sink, const shmbus_msg_t *msg);
SHMBUS_API int shmbus_sink_nack(shmbus_sink_t *sink, const shmbus_msg_t *msg, uint32_t delay_ms);

/* The sink's fd, as shmbus_sub_fd() (readable when shmbus_sink_recv() would return a
 * message, or the topics it reads changed). */
SHMBUS_API int shmbus_sink_fd(shmbus_sink_t *sink);

/* The names of the topics the sink reads now, up to max, sorted. Returns how many there
 * are (maybe more than max). */
SHMBUS_API int shmbus_sink_topics(shmbus_sink_t *sink, char (*names)[SHMBUS_TOPIC_NAME_MAX + 1],
				  unsigned max);

/* Close the sink and every reader under it. NULL is a no-op. */
SHMBUS_API void shmbus_sink_close(shmbus_sink_t *sink);

/* ---- counters ---------------------------------------------------------------------- */

/* A snapshot of a topic's shared counters (read without locks; each value is exact). */
typedef struct shmbus_topic_stats {
	uint64_t published;          /* messages committed */
	uint64_t bytes;              /* payload bytes committed */
	uint64_t aborted;            /* reservations aborted, or repaired after a crash */
	uint64_t backpressure_waits; /* times a publisher had to wait for space (block) */
	uint64_t wakeups;            /* futex wakes issued by publishers */
	uint64_t readers_reclaimed;  /* reader slots freed after their process died */
	uint64_t tail;               /* claim position (bytes written since creation) */
	uint64_t next_seq;           /* sequence number the next message will get */
	uint32_t readers;            /* readers that joined: each receives what is published
	                              * from now on (a slot being opened is not counted) */
	uint32_t publishers;         /* publisher slots in use */
} shmbus_topic_stats_t;

/* Read a topic's counters. Returns 0, -ENOENT, -EPROTO, -EBADMSG. */
SHMBUS_API int shmbus_topic_stats(shmbus_bus_t *bus, const char *name, shmbus_topic_stats_t *st);

/*
 * Call fn(name, arg) for each topic of the bus (regular files NAME.topic in its directory;
 * a FIFO, symlink or directory of such a name is skipped, `shmbus doctor` reports it), in
 * name order, "$sys." topics included. Stops at the first nonzero return of fn and
 * returns it; 0 when all were visited; -errno if the directory cannot be read.
 * Thread-safe. A topic created or removed meanwhile may or may not be seen.
 */
SHMBUS_API int shmbus_topic_foreach(shmbus_bus_t *bus, int (*fn)(const char *name, void *arg),
				    void *arg);

/* One reader slot in use: a fan-out subscriber or a group member. */
typedef struct shmbus_reader_info {
	uint32_t slot;      /* reader slot index */
	int32_t pid;        /* owning process */
	char group[SHMBUS_GROUP_NAME_MAX + 1]; /* "" for a fan-out subscriber */
	uint64_t consumed;  /* messages received */
	uint64_t lost;      /* messages it lost to overwrite (fan-out) */
	uint64_t pos;       /* fan-out: next position; member: held record, or UINT64_MAX */
	uint64_t lag_bytes; /* fan-out: log bytes between it and the tail; member: 0 */
	uint64_t lag_msgs;  /* fan-out: messages published that it has not received yet */
} shmbus_reader_info_t;

/*
 * Fill out[0..max) with the topic's reader slots in use, in slot order. Returns how many
 * there are (which may exceed max: call again with more room), -ENOENT, -EPROTO,
 * -EBADMSG. A snapshot without locks: a reader joining or leaving meanwhile may be
 * missed. Thread-safe.
 */
SHMBUS_API int shmbus_topic_readers(shmbus_bus_t *bus, const char *topic,
				    shmbus_reader_info_t *out, unsigned max);

/* One publisher slot in use. */
typedef struct shmbus_pub_info {
	uint32_t slot;       /* publisher slot index */
	int32_t pid;         /* owning process */
	uint64_t published;  /* messages committed through it */
	uint64_t bytes;      /* payload bytes committed through it */
	int claim_open;      /* 1 while it has claimed space it has not committed yet */
} shmbus_pub_info_t;

/* Like shmbus_topic_readers(), for the topic's publisher slots in use. */
SHMBUS_API int shmbus_topic_publishers(shmbus_bus_t *bus, const char *topic,
				       shmbus_pub_info_t *out, unsigned max);

/* One group of a topic. */
typedef struct shmbus_group_info {
	char name[SHMBUS_GROUP_NAME_MAX + 1];
	uint32_t members;   /* live reader slots in the group */
	uint64_t cursor;    /* position of the next message the group hands out */
	uint64_t lag_bytes; /* log bytes between the cursor and the tail */
	uint64_t lag_msgs;  /* messages published that the group has not handed out */
	uint64_t lost;      /* messages the group lost to overwrite */
	uint64_t abandoned; /* messages held by members that died (not redelivered) */
	/* acknowledging members (SHMBUS_SUB_ACK) */
	uint32_t pending;	   /* messages delivered and not acked now */
	uint32_t max_deliver;	   /* the group's options */
	uint32_t ack_wait_ms;
	uint32_t pad_;
	uint64_t redelivered;	   /* deliveries after the first */
	uint64_t dead_lettered;	   /* messages given up after max_deliver deliveries */
	uint64_t oldest_pending_ms; /* age of the oldest pending message, 0 if none */
	char dead_letter[SHMBUS_TOPIC_NAME_MAX + 1]; /* "" for none */
} shmbus_group_info_t;

/* Like shmbus_topic_readers(), for the topic's groups (durable: a group stays when its
 * last member leaves, with members = 0). */
SHMBUS_API int shmbus_topic_groups(shmbus_bus_t *bus, const char *topic,
				   shmbus_group_info_t *out, unsigned max);

/* ---- the daemon ---------------------------------------------------------------------- */

/*
 * A bus's supervisor, shmbusd, listens on the control socket "control.sock" in the bus
 * directory. shmbus_bus_open() registers the process with it when one runs (unless
 * SHMBUS_NO_DAEMON is set, or the bus is opened with SHMBUS_BUS_LOOK), so that it learns
 * at once when the process dies and frees what it held; with no daemon the library runs
 * embedded, the same otherwise.
 */

/* What the daemon says of itself. */
typedef struct shmbus_daemon_info {
	int32_t pid;            /* the daemon's process */
	uint32_t clients;       /* processes registered now */
	uint64_t uptime_ms;     /* since it started */
	uint64_t crashes;       /* client deaths it cleaned up after */
	char version[16];       /* shmbus version of the daemon */
	char config[256];       /* config file it runs ("" for the built-in default) */
} shmbus_daemon_info_t;

/*
 * Ask the bus's daemon how it is, waiting at most timeout_ms for the answer.
 * Returns 0; -ENOENT when there is no control socket (no daemon); -ECONNREFUSED when the
 * socket is there but nobody listens (a daemon that died); -ETIMEDOUT when it does not
 * answer in time; -EPROTO for an answer that makes no sense. Thread-safe.
 */
SHMBUS_API int shmbus_daemon_ping(shmbus_bus_t *bus, int timeout_ms, shmbus_daemon_info_t *info);

/* The bus as a whole, from shared counters: no daemon needs to answer. */
typedef struct shmbus_bus_stats {
	uint32_t topics;            /* topic files in the bus directory */
	uint32_t clients;           /* processes registered with the daemon */
	uint32_t watched;           /* processes the daemon watches (registered or found) */
	int32_t daemon_pid;         /* last daemon of this bus; 0 if none ever ran */
	int daemon_running;         /* 1 if that daemon runs now */
	uint32_t pad_;
	uint64_t published;         /* messages, summed over the topics */
	uint64_t bytes;
	uint64_t aborted;
	uint64_t crashes;           /* client deaths the daemon cleaned up after */
	uint64_t readers_reclaimed; /* reader slots it freed */
	uint64_t publishers_reclaimed;
	uint64_t daemon_started_ns; /* CLOCK_REALTIME */
	uint64_t daemon_updated_ns; /* the daemon refreshes its counters every 100 ms */
} shmbus_bus_stats_t;

/* Read the bus's counters. Returns 0 or -errno (the directory cannot be read). */
SHMBUS_API int shmbus_bus_stats(shmbus_bus_t *bus, shmbus_bus_stats_t *st);

/* Is this bus handle registered with a daemon? 1 yes, 0 no (embedded). */
SHMBUS_API int shmbus_bus_supervised(const shmbus_bus_t *bus);

/* ---- the bridge ---------------------------------------------------------------------- */

/*
 * shmbusd's bridge mirrors topics to Redis and WebSocket peers and imports Redis streams
 * (docs/bridge.md). Its counters are shared memory ("bridge.state" in the bus directory),
 * read here without asking the daemon.
 */

/* One mirror, import, or the WebSocket listener. */
typedef struct shmbus_bridge_info {
	char name[48];	      /* the config section's name ("websocket" for the listener) */
	char kind[16];	      /* "redis", "ws" (mirrors), "import", "listener" */
	char peer[192];	      /* the peer's URL, without any password */
	int up;		      /* 1: connected and usable now */
	uint32_t topics;      /* topics read now (listener: clients connected) */
	uint64_t sent;	      /* messages sent to the peer */
	uint64_t confirmed;   /* messages the peer confirmed (import: published locally) */
	uint64_t lag;	      /* messages published locally and not yet confirmed */
	uint64_t reconnects;  /* connections made after the first */
	uint64_t errors;      /* connections lost, error replies, garbage from the peer */
	uint64_t lost;	      /* messages lost to overwrite before they could be sent */
	uint64_t duplicates;  /* messages the peer had already: skipped, not sent twice */
	uint64_t bytes;	      /* payload bytes sent */
	uint64_t dropped;     /* listener: clients cut off for being slow (close 1013) */
	uint64_t changed_ns;  /* CLOCK_REALTIME of the last up/down change */
	char last_error[128]; /* the last failure, for humans */
} shmbus_bridge_info_t;

/* The bridge thread as a whole. */
typedef struct shmbus_bridge_totals {
	int32_t pid;	/* the daemon that runs (or ran) the bridge */
	int running;	/* 1 if that daemon runs now */
	int futex_wait; /* 1: idle topics are waited on in io_uring (else a timed poll) */
	uint32_t pad_;
	uint64_t enters;     /* io_uring_enter calls */
	uint64_t sqes;	     /* SQEs they submitted (sqes / enters: the batching) */
	uint64_t cqes;	     /* completions handled */
	uint64_t started_ns; /* CLOCK_REALTIME */
	uint64_t updated_ns; /* refreshed every 100 ms while it runs */
} shmbus_bridge_totals_t;

/*
 * Fill out[0..max) with the bridge's mirrors, imports and listener, in config order, and
 * *totals (if not NULL). Returns how many there are (which may exceed max), -ENOENT if no
 * bridge ever ran on this bus, -EPROTO for a file that is not a bridge's. Thread-safe.
 */
SHMBUS_API int shmbus_bridge_stats(shmbus_bus_t *bus, shmbus_bridge_info_t *out, unsigned max,
				   shmbus_bridge_totals_t *totals);

#ifdef __cplusplus
}
#endif
#endif /* SHMBUS_H */
