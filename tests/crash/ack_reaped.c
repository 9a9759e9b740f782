/* SPDX-License-Identifier: MIT */
/*
 * With a real shmbusd: an acknowledging member process (docs/acks.md) is SIGKILLed while a
 * message it took is pending; the other member, asleep in shmbus_recv() since before the
 * kill, gets it again (deliveries 2) within 100 ms of the kill (the bound: the
 * daemon reaps the dead member at once, hands its pending messages back and wakes the
 * members), acks it, and the daemon's crash event says pending_returned 1.
 * usage: crash_ack_reaped PATH-TO-SHMBUSD
 */
#include <pthread.h>
#include <sched.h>

#include "tests/lib/daemon.h"
#include "tests/lib/proc.h"

#define LIMIT_NS 100000000ull /* 100 ms */

static shmbus_bus_t *bus;

/* The member that dies: takes one message, says so, waits to be killed. */
static void victim(void *arg, int fd)
{
	(void)arg;
	shmbus_bus_t *b;
	shmbus_sub_t *s;
	if (shmbus_bus_open(&b, "reap") < 0 || !shmbus_bus_supervised(b) ||
	    shmbus_sub_open_group(&s, b, "jobs", "w", SHMBUS_SUB_ACK, NULL) < 0)
		_exit(2);
	CHECK(write(fd, "j", 1) == 1);
	shmbus_msg_t m;
	if (shmbus_recv(s, &m, T_WAIT_MS) < 0 || m.deliveries != 1)
		_exit(3);
	CHECK(write(fd, "t", 1) == 1);
	for (;;)
		pause();
}

struct waiter {
	pid_t tid;
	shmbus_sub_t *s;
	shmbus_msg_t m;
	int rc;
	uint64_t got_ns;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	__atomic_store_n(&w->tid, gettid(), __ATOMIC_RELEASE);
	w->rc = shmbus_recv(w->s, &w->m, T_WAIT_MS);
	w->got_ns = t_now_ns();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: crash_ack_reaped PATH-TO-SHMBUSD\n");
		return 2;
	}
	t_private_dir("ack-reaped");
	unsetenv("SHMBUSD_CONFIG");
	setenv("SHMBUS_BUS", "reap", 1);
	struct t_daemon d;
	t_daemon_init(&d, argv[1]);
	t_daemon_config(&d, "[bus]\nname = reap\ndir = %s\n", t_dir());
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, "reap"), 0);
	unsetenv("SHMBUS_NO_DAEMON");
	t_daemon_start(&d, bus);
	shmbus_sub_t *log = t_events_open(bus);
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 16;
	CHECK_RC(shmbus_topic_create(bus, "jobs", &o), 0);

	int fd;
	pid_t pid = t_child(victim, NULL, &fd);
	CHECK(t_wait_byte(fd, "the victim joining") == 'j');
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "jobs"), 0);
	CHECK_RC(shmbus_publish(p, "job", 4, 9), 0);
	CHECK(t_wait_byte(fd, "the victim taking the job") == 't');
	close(fd);

	/* The other member, asleep before the kill (nothing else is there to take). */
	struct waiter w = { 0 };
	CHECK_RC(shmbus_sub_open_group(&w.s, bus, "jobs", "w", SHMBUS_SUB_ACK, NULL), 0);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, wait_thread, &w) == 0);
	uint64_t dl = t_deadline(T_WAIT_MS);
	while (!__atomic_load_n(&w.tid, __ATOMIC_ACQUIRE) && t_ms_left(dl) > 0)
		sched_yield();
	t_wait_asleep(w.tid, T_WAIT_MS, "the other member");
	uint64_t killed_ns = t_now_ns();
	t_kill(pid);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK_RC(w.rc, 0);
	CHECK(w.m.deliveries == 2 && w.m.type == 9 && !strcmp(w.m.data, "job"));
	double ms = (double)(w.got_ns - killed_ns) / 1e6;
	printf("redelivered %.2f ms after the kill (bound 100 ms)\n", ms);
	if (w.got_ns - killed_ns > LIMIT_NS)
		FAIL("redelivered %.2f ms after the kill, more than 100 ms", ms);
	CHECK_RC(shmbus_ack(w.s, &w.m), 0);

	char ev[4200], want[64];
	snprintf(want, sizeof(want), "\"pid\":%d", (int)pid);
	const char *n[] = { "\"crash\"", want, "\"pending_returned\":1", NULL };
	if (t_event_find(log, ev, sizeof(ev), T_WAIT_MS, n) < 0)
		FAIL("no crash event with pending_returned 1 for the killed member");
	shmbus_group_info_t gi[2];
	CHECK(shmbus_topic_groups(bus, "jobs", gi, 2) == 1);
	CHECK(gi[0].pending == 0 && gi[0].redelivered == 1 && gi[0].abandoned == 0);
	shmbus_sub_close(w.s);
	shmbus_pub_close(p);
	shmbus_sub_close(log);
	shmbus_bus_close(bus);
	CHECK(t_daemon_stop(&d) == 0);
	return 0;
}
