/* SPDX-License-Identifier: MIT */
/*
 * shmbusd's state, shared by its parts: the conductor (io_uring loop: control socket,
 * one pidfd per watched process, signals, a housekeeping timer), the reaper (frees what
 * a dead process held in every topic) and the event log ($sys.log).
 */
#ifndef SHMBUSD_H
#define SHMBUSD_H

#include <liburing.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>

#include <shmbus.h>

#include "bus/proto.h"
#include "daemon/config.h"

/* What an io_uring completion is for (the user_data points at one of these). */
enum op_kind { OP_ACCEPT = 1, OP_RECV, OP_PIDFD, OP_SIGNAL, OP_TIMER, OP_INOTIFY };

struct op {
	enum op_kind kind;
	void *owner;
};

/* A process the daemon watches: registered with it, or found in a topic's slots. */
struct proc {
	struct op pidfd_op;
	pid_t pid;
	uint64_t starttime;
	int pidfd;
	uid_t uid;
	int uid_known;
	unsigned nconn;	   /* registered connections open now */
	int registered;	   /* it said hello at least once (else found in a topic's slots) */
	int died_attached; /* a connection ended without a goodbye */
	int dead;	   /* its pidfd fired: reaped, its event waits for its connections */
	uint64_t dead_ms;
	unsigned r_readers, r_publishers, r_topics, r_pending; /* what was reaped */
	uint64_t r_aborted;
	char prog[64];
	struct proc *next;
};

/* A connection on the control socket. */
struct conn {
	struct op recv_op;
	int fd;
	uint64_t id;
	pid_t peer_pid;
	uid_t peer_uid;
	gid_t peer_gid;
	gid_t groups[64]; /* SO_PEERGROUPS: the peer's supplementary groups (ACL checks) */
	int ngroups;
	uint64_t since_ms;
	struct proc *proc; /* after HELLO */
	int closing;
	int bye; /* the client said it is closing the bus */
	uint8_t buf[SHMBUS_PROTO_MAX + 1];
	struct conn *next;
};

struct bridge;

struct daemon {
	struct shmbusd_config cfg;
	struct bridge *bridge; /* the bridge thread (daemon/bridge/bridge.h), NULL if none */
	char cfg_path[4096];   /* as given on the command line, "" for the default */
	char bus_dir[4096];
	shmbus_bus_t *bus;
	shmbus_pub_t *log;	/* $sys.log (NULL while it cannot be opened: events wait) */
	ino_t log_ino;		/* its file's, when opened */
	shmbus_pub_t **dropped; /* $sys.log handles given up after a fault (events.c) */
	size_t ndropped;
	/* Detached: where stderr and the event lines go (log_file, else /dev/null), opened
	 * before the fork; fd 2 is made a copy of it once the daemon is ready. -1 in the
	 * foreground, where stderr stays the caller's. */
	int log_fd;
	char *pending[64]; /* events from before $sys.log was open */
	size_t npending;
	struct io_uring ring;
	int listen_fd;
	int signal_fd;
	struct op accept_op, signal_op, timer_op, inotify_op;
	int inotify_fd; /* the bus directory: topics created and removed by anyone */
	char (*selfmade)[SHMBUS_TOPIC_NAME_MAX + 1]; /* created by us, reported already */
	size_t nselfmade;
	uint8_t inbuf[4096] __attribute__((aligned(8)));
	struct __kernel_timespec tick;
	uint8_t sigbuf[128];
	struct conn *conns;
	struct proc *procs;
	int adopted; /* the adoption at start is done: later ones are the periodic scan */
	unsigned nconns;
	unsigned nprocs;
	uint64_t next_conn_id;
	uint64_t started_ms;
	uint64_t crashes;
	/* daemon.state: what it holds, written whole with pwrite() to state_fd (-1: none);
	 * never mapped, so that a truncation of the file cannot fault the daemon. */
	struct shmbus_daemon_state state;
	int state_fd;
	int stop;
	int reload;
	/* lag alarms: topic name + reader slot already alarmed (cleared when it recovers) */
	char (*alarmed)[SHMBUS_TOPIC_NAME_MAX + 16];
	size_t nalarmed;
	/* overflow alarms: losses last seen per reader ("topic#slot#pid") */
	struct lost_seen {
		char key[SHMBUS_TOPIC_NAME_MAX + 32];
		uint64_t lost;
		int live; /* seen in this sweep */
	} * lost;
	size_t nlost;
};

/* conductor.c */
int conductor_init(struct daemon *d);
int conductor_run(struct daemon *d);
void conductor_fini(struct daemon *d);
/* Answer a request on c with ERROR {err, text} (non-blocking: a client that does not read
 * loses it, not us). */
void send_error(struct conn *c, int err, const char *text);

/* Watch pid (start time st) through a pidfd; NULL if it is dead already or on error. */
struct proc *conductor_watch(struct daemon *d, pid_t pid, uint64_t st);
/* The uid and program name (comm) of pid, if it is still the process started at st (0:
 * any): /proc has them while it runs and, once dead, until its parent waits for it.
 * Returns 1 with both filled, else 0 (*uid -1, prog ""). */
int proc_ident(pid_t pid, uint64_t st, int *uid, char *prog, size_t len);

/* Make daemon.state (a new file, mode at most 0644) and fill in who we are; publish the
 * counters into it. state_update also notices a truncated or removed file ("state_damaged"
 * on $sys.log) and writes it whole again. */
int state_open(struct daemon *d);
void state_update(struct daemon *d);
void state_close(struct daemon *d);

/* reaper.c */
struct reaped {
	unsigned readers;    /* reader slots freed */
	unsigned publishers; /* publisher slots freed */
	uint64_t aborted;    /* messages of unfinished claims turned into padding */
	unsigned topics;     /* topics where it held something */
	unsigned pending;    /* pending messages (acknowledging members) handed back */
};
/* Add a reaping to the shared counters (conductor.c). */
void state_reaped(struct daemon *d, const struct reaped *r);
/* A SIGBUS in a guarded access to topic name (daemon/guard.h) at addr: unmap what faulted
 * and say so ("topic_damaged" on $sys.log). The file itself is left to its owner. */
void topic_damaged(struct daemon *d, const char *name, void *addr, const char *during);
/* shmbus_topic_info() under a guard: -EIO after a fault. */
int topic_info_guarded(struct daemon *d, const char *name, shmbus_topic_opts_t *o);
/* Free everything pid (start time st) held in every topic of the bus (each topic under a
 * guard). */
void reap(struct daemon *d, pid_t pid, uint64_t st, struct reaped *out);
/* Watch every live owner of a slot in any topic; reap the dead ones (adoption). */
void adopt(struct daemon *d);
/* Publish lag alarms for readers past the configured share of their topic. */
void check_lag(struct daemon *d);

/* events.c: one JSON object per message on $sys.log (the publishing is guarded: a
 * truncated $sys.log is dropped, removed and made again, "log_damaged"), and a line on stderr (a detached
 * daemon's log_fd). */
int events_open(struct daemon *d);
void events_close(struct daemon *d);
/* Write the event lines to fd from now on (2 at first). Any thread may be writing one. */
void events_output(int fd);
/* Detached: open the log again (d->cfg.log_file, else /dev/null) in place of d->log_fd
 * and fd 2, for log rotation and a changed log_file (SIGHUP). 0, or -1 (a "log_failed"
 * event; the old file stays). Nothing to do in the foreground. */
int events_reopen(struct daemon *d);
/* The members "pid", "bus", "dir" and "config" of the start and stop events. */
const char *events_whoami(struct daemon *d, char *buf, size_t len);
/* fmt: the JSON members after "ts" and "event", e.g. "\"pid\":%d" (no braces). */
void event(struct daemon *d, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The event as one JSON line into msg (ts, event, then fmt's members, as for event()),
 * also written to stderr (see events_output). Its length. Thread-safe (the bridge formats
 * its events with it). */
size_t event_vline(char *msg, size_t len, const char *name, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
/* Escape s for a JSON string (into buf, always terminated). Thread-safe. */
const char *json_str(char *buf, size_t len, const char *s);

/* main.c: give a topic file the daemon made the bus's group and mode ([bus] group, mode:
 * the library makes it 0660 less the umask). 0 or -1 (said on stderr). */
int topic_own(struct daemon *d, const char *name);
/* main.c: create the configured topics (checking /dev/shm has room). 0 or -1. */
int apply_topics(struct daemon *d, const struct shmbusd_config *cfg, char *err, size_t errlen);

#endif
