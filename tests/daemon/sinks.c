/* SPDX-License-Identifier: MIT */
/*
 * A sink on a bus that shmbusd supervises (docs/sinks.md), in file mode (topics found by
 * inotify on the bus directory) and in brokered mode (no topic files: found by the
 * daemon's topic_created / topic_removed events on $sys.log):
 *  - a sink waiting on "b.>" (in its receive, and on its fd in epoll) gets the first
 *    message of a topic created through the daemon after it began waiting, naming it;
 *  - a declared topic of the config that matches is read;
 *  - a topic removed through the daemon is left (shmbus_sink_topics), and one created
 *    again under its name is read from its first message.
 * usage: daemon_sinks SHMBUSD file|brokered
 */
#include <sys/epoll.h>

#include "tests/lib/daemon.h"

#include "bus/intree.h"

static shmbus_bus_t *bus;

static const char conf_fmt[] = "[bus]\nname = s\ndir = %s\naccess = %s\n"
			       "[topic b.declared]\ncapacity = 64K\n";

static void mk(const char *name)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 16;
	CHECK_RC(shmbus_topic_create(bus, name, &o), 0);
}

static void pub(const char *topic, const char *text)
{
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, topic), 0);
	CHECK_RC(shmbus_publish(p, text, strlen(text) + 1, 0), 0);
	shmbus_pub_close(p);
}

/* A child that creates topic and publishes text once the parent sits in its wait. */
struct later {
	const char *topic, *text;
	int go;
};

static void creator(void *arg, int fd)
{
	struct later *l = arg;
	char c;
	CHECK(read(l->go, &c, 1) == 1);
	CHECK_RC(shmbus_bus_open(&bus, "s"), 0);
	mk(l->topic);
	uint64_t made = t_now_ns(); /* CLOCK_MONOTONIC: the parent's clock too */
	if (fd >= 0)
		CHECK(write(fd, &made, sizeof(made)) == sizeof(made));
	pub(l->topic, l->text);
	shmbus_bus_close(bus);
}

static void got(shmbus_sink_t *k, const char *topic, const char *text, int timeout_ms)
{
	shmbus_msg_t m;
	int rc = shmbus_sink_recv(k, &m, timeout_ms);
	if (rc)
		FAIL("waiting for '%s' on %s: %d (%s)", text, topic, rc, shmbus_errmsg());
	if (strcmp(m.topic, topic) || strcmp(m.data, text))
		FAIL("got '%s' on %s, wanted '%s' on %s", (const char *)m.data, m.topic, text,
		     topic);
}

static int ntopics(shmbus_sink_t *k)
{
	return shmbus_sink_topics(k, NULL, 0);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		FAIL("usage: daemon_sinks SHMBUSD file|brokered");
	int brokered = !strcmp(argv[2], "brokered");
	const char *dir = t_private_dir(brokered ? "sinks-b" : "sinks-f");
	unsetenv("SHMBUSD_CONFIG");
	struct t_daemon d;
	t_daemon_init(&d, argv[1]);
	t_daemon_config(&d, conf_fmt, dir, brokered ? "brokered" : "file");
	/* The directory exists before the daemon: made as the daemon would. */
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, "s"), 0);
	shmbus_bus_close(bus);
	unsetenv("SHMBUS_NO_DAEMON");
	t_daemon_spawn(&d);
	CHECK_RC(shmbus_bus_open_flags(&bus, "s", SHMBUS_BUS_LOOK), 0);
	t_daemon_ready(&d, bus, NULL);
	shmbus_bus_close(bus);
	CHECK_RC(shmbus_bus_open(&bus, "s"), 0);
	CHECK(shmbus_bus_brokered(bus) == brokered);

	shmbus_sink_t *k;
	CHECK_RC(shmbus_sink_open(&k, bus, NULL, 0), 0);
	CHECK_RC(shmbus_sink_add(k, "b.>"), 1); /* the declared topic */
	pub("b.declared", "d1");
	got(k, "b.declared", "d1", T_WAIT_MS);

	/* Created while the sink sleeps in its receive. */
	int go[2];
	CHECK(pipe(go) == 0);
	struct later l = { "b.new.one", "n1", go[0] };
	int said;
	pid_t c = t_child(creator, &l, &said);
	CHECK(write(go[1], "g", 1) == 1);
	got(k, "b.new.one", "n1", T_WAIT_MS);
	uint64_t made;
	t_read_within(said, &made, sizeof(made), T_WAIT_MS, "the creation time");
	printf("%s: a topic made while the sink waits: its first message came %.3f ms after "
	       "the topic was made (its publish included)\n",
	       argv[2], t_ms_since(made));
	CHECK(t_exited(t_reap(c, T_WAIT_MS, "the creator"), 0));
	CHECK(ntopics(k) == 2);

	/* Created while the sink's fd sits in epoll. */
	int fd = shmbus_sink_fd(k);
	CHECK(fd >= 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	shmbus_msg_t m;
	while (shmbus_sink_recv(k, &m, 0) == 0)
		FAIL("nothing was published yet, got '%s'", (const char *)m.data);
	struct later l2 = { "b.new.two", "n2", go[0] };
	c = t_child(creator, &l2, NULL);
	CHECK(write(go[1], "g", 1) == 1);
	int found = 0;
	uint64_t deadline = t_deadline(T_WAIT_MS);
	while (!found) {
		CHECK(t_ms_left(deadline) > 0);
		if (epoll_wait(ep, &ev, 1, t_ms_left(deadline)) != 1)
			continue;
		int rc;
		while ((rc = shmbus_sink_recv(k, &m, 0)) == 0) {
			CHECK(!strcmp(m.topic, "b.new.two") && !strcmp(m.data, "n2"));
			found = 1;
		}
		CHECK_RC(rc, -EAGAIN);
	}
	CHECK(t_exited(t_reap(c, T_WAIT_MS, "the second creator"), 0));
	close(ep);

	/* Removed: left. Made again: read from its first message. */
	CHECK_RC(shmbus_topic_remove(bus, "b.new.one"), 0);
	deadline = t_deadline(T_WAIT_MS);
	while (ntopics(k) != 2) {
		CHECK(t_ms_left(deadline) > 0);
		CHECK_RC(shmbus_sink_recv(k, &m, 10), -EAGAIN);
	}
	mk("b.new.one");
	pub("b.new.one", "again");
	got(k, "b.new.one", "again", T_WAIT_MS);
	CHECK(ntopics(k) == 3);

	shmbus_sink_close(k);
	shmbus_bus_close(bus);
	CHECK(t_daemon_stop(&d) == 0);
	printf("ok (%s)\n", argv[2]);
	return 0;
}
