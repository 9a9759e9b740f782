/* SPDX-License-Identifier: MIT */
/*
 * shmbusd tells systemd it is ready (READY=1 on $NOTIFY_SOCKET, once it serves the bus)
 * and that it stops (STOPPING=1); and it reports topics created and removed by anyone
 * (not only by its config) on $sys.log.
 * usage: daemon_notify SHMBUSD
 */
#include <sys/socket.h>
#include <sys/un.h>

#include "tests/lib/daemon.h"

/* Receive one datagram on fd within ms; 0 and the text in buf, or -1. */
static int recv_within(int fd, char *buf, size_t len, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
	ssize_t n = recv(fd, buf, len - 1, 0);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	const char *dir = t_private_dir("daemon_notify");
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	unsetenv("SHMBUSD_CONFIG");

	/* Stand in for systemd: a datagram socket named by NOTIFY_SOCKET. */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	CHECK(strlen(dir) + 13 < sizeof(sa.sun_path));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.80s/notify.sock", dir);
	int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(nfd >= 0);
	CHECK(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	char env_notify[sizeof(sa.sun_path) + 16], buf[4200];
	snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s", sa.sun_path);
	const char *env[] = { env_notify, NULL };

	struct t_daemon d;
	t_daemon_init(&d, argv[1]);
	d.env = env;
	t_daemon_config(&d, "[bus]\nname = n\ndir = %s\n", dir);
	t_daemon_spawn(&d);
	if (recv_within(nfd, buf, sizeof(buf), T_WAIT_MS) < 0) {
		fprintf(stderr, "no readiness notification within %d ms\n", T_WAIT_MS);
		return 1;
	}
	printf("notify: %s\n", buf);
	CHECK(strstr(buf, "READY=1") != NULL);
	/* Ready means serving: the ping answers now, with no retry needed. */
	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, "n"), 0);
	shmbus_daemon_info_t info;
	CHECK_RC(shmbus_daemon_ping(bus, 1000, &info), 0);
	CHECK(info.pid == d.pid);

	/* Topics made and removed by a client, not by the config. */
	shmbus_sub_t *log;
	CHECK_RC(shmbus_sub_open(&log, bus, T_LOG_TOPIC, NULL, SHMBUS_SUB_EARLIEST), 0);
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 8192;
	o.policy = SHMBUS_OVERWRITE;
	CHECK_RC(shmbus_topic_create(bus, "made.here", &o), 0);
	char v[64];
	CHECK(t_event_wait(log, "topic_created", buf, sizeof(buf), T_WAIT_MS) == 0);
	printf("$sys.log: %s\n", buf);
	CHECK(t_json_get(buf, "topic", v, sizeof(v)) == 0 && !strcmp(v, "made.here"));
	CHECK(t_json_get(buf, "capacity", v, sizeof(v)) == 0 && !strcmp(v, "8192"));
	CHECK(t_json_get(buf, "policy", v, sizeof(v)) == 0 && !strcmp(v, "overwrite"));
	CHECK_RC(shmbus_topic_remove(bus, "made.here"), 0);
	CHECK(t_event_wait(log, "topic_removed", buf, sizeof(buf), T_WAIT_MS) == 0);
	printf("$sys.log: %s\n", buf);
	CHECK(t_json_get(buf, "topic", v, sizeof(v)) == 0 && !strcmp(v, "made.here"));
	shmbus_sub_close(log);

	int st = t_daemon_stop(&d);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(recv_within(nfd, buf, sizeof(buf), 1000) == 0);
	printf("notify: %s\n", buf);
	CHECK(strstr(buf, "STOPPING=1") != NULL);
	close(nfd);
	shmbus_bus_close(bus);
	return 0;
}
