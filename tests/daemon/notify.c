/* SPDX-License-Identifier: MIT */
/*
 * shmbusd tells systemd it is ready (READY=1 on $NOTIFY_SOCKET, once it serves the bus)
 * and that it stops (STOPPING=1); and it reports topics created and removed by anyone
 * (not only by its config) on $sys.log.
 * usage: daemon_notify SHMBUSD
 */

#include "tests/lib/daemon.h"

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	const char *dir = t_private_dir("daemon_notify");
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	unsetenv("SHMBUSD_CONFIG");

	/* Stand in for systemd: a datagram socket named by NOTIFY_SOCKET. */
	char env_notify[200], buf[4200];
	int nfd = t_notify_open(dir, "notify.sock", env_notify, sizeof(env_notify));
	const char *env[] = { env_notify, NULL };

	struct t_daemon d;
	t_daemon_init(&d, argv[1]);
	d.env = env;
	t_daemon_config(&d, "[bus]\nname = n\ndir = %s\n", dir);
	t_daemon_spawn(&d);
	if (t_notify_wait(nfd, 0, NULL, T_WAIT_MS, buf, sizeof(buf)) < 0) {
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
	CHECK(t_notify_wait(nfd, 0, NULL, 1000, buf, sizeof(buf)) == 0);
	printf("notify: %s\n", buf);
	CHECK(strstr(buf, "STOPPING=1") != NULL);
	close(nfd);
	shmbus_bus_close(bus);
	return 0;
}
