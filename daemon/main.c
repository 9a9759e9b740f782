/* SPDX-License-Identifier: MIT */
/*
 * shmbusd: the supervisor of one bus. See docs/daemon.md.
 *
 *   shmbusd [--config FILE] [--foreground] [--check]
 *
 * Startup order matters: everything that can be refused (config, the log file, room in
 * /dev/shm, topics) is done before detaching from the terminal, so the exit status says
 * whether the daemon started; what names the daemon's own pid ($sys.log's publisher
 * slot, the io_uring) is made after the fork. A detached daemon keeps the terminal as
 * its stderr until it is ready, for the reason it could not start; its event lines go
 * to the log (log_file, else /dev/null) from the fork on, and so does its stderr once
 * it is ready. It then holds nothing of the terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "bus/intree.h"
#include "daemon/acl.h"
#include "daemon/bridge/bridge.h"
#include "daemon/broker.h"
#include "daemon/clock.h"
#include "daemon/guard.h"
#include "daemon/shmbusd.h"

#ifndef SHMBUSD_DEFAULT_CONFIG
#define SHMBUSD_DEFAULT_CONFIG "/etc/shmbus/shmbusd.conf"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmbusd [options]\n"
		"Supervise a shmbus bus: create its topics, watch its clients, clean up after\n"
		"the ones that die, log what happens to the topic $sys.log.\n"
		"\n"
		"  -c, --config FILE  the configuration (default: $SHMBUSD_CONFIG, else\n"
		"                     %s if it exists, else built-in defaults)\n"
		"  -f, --foreground   do not detach from the terminal (detached, once ready, its\n"
		"                     stderr is the config's [bus] log_file, else /dev/null)\n"
		"  -n, --check        check the configuration and exit\n"
		"  -h, --help\n"
		"  -V, --version\n"
		"\n"
		"Signals: SIGHUP reloads the configuration (new topics appear; a bad file is\n"
		"refused and the running configuration stays) and reopens log_file,\n"
		"SIGTERM/SIGINT stop.\n"
		"Exit status: 0 stopped cleanly, 1 could not start, 2 bad usage.\n",
		SHMBUSD_DEFAULT_CONFIG);
}

/* The line of "[topic NAME]" in the file, for messages about a topic's options. */
static int section_line(const char *path, const char *name)
{
	if (!path || !*path)
		return 0;
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	char line[1024];
	int n = 0, found = 0;
	while (!found && fgets(line, sizeof(line), f)) {
		n++;
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, "[topic", 6))
			continue;
		p += 6;
		while (*p == ' ')
			p++;
		size_t len = strlen(name);
		if (!strncmp(p, name, len) && (p[len] == ']' || p[len] == ' '))
			found = n;
	}
	fclose(f);
	return found;
}

int topic_own(struct daemon *d, const char *name)
{
	if (shmbus_bus_brokered(d->bus))
		return 0; /* no file: the ACL is checked on every open */
	char path[sizeof(d->bus_dir) + SHMBUS_TOPIC_NAME_MAX + 16];
	snprintf(path, sizeof(path), "%s/%s.topic", d->bus_dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	struct stat sb;
	int rc = -1;
	if (fd < 0 || fstat(fd, &sb) < 0) {
		fprintf(stderr, "shmbusd: %s: %s\n", path, strerror(errno));
	} else if (!S_ISREG(sb.st_mode) || sb.st_uid != geteuid()) {
		/* Replaced by someone else since we made it: not ours to change. */
		fprintf(stderr, "shmbusd: %s: not a file of ours (uid %d, mode %04o): left as is\n",
			path, (int)sb.st_uid, (unsigned)sb.st_mode & 07777);
	} else if (fchmod(fd, d->cfg.mode & 0666) < 0 ||
		   (d->cfg.has_gid && fchown(fd, (uid_t)-1, d->cfg.gid) < 0)) {
		fprintf(stderr, "shmbusd: %s: chmod/chgrp: %s\n", path, strerror(errno));
	} else {
		rc = 0;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

/*
 * The bus directory: ours (or root's when we are root; anything else may be a squatter's,
 * who could swap files under us: refused), the config's group, mode rwx where the config
 * gives rw, plus sticky (a group member deletes only its own files: not the daemon's,
 * $sys.log, control.sock or other members' topics) and setgid (every file made in it,
 * by anyone, gets the bus's group). 0, or -1 with the reason in err.
 */
static int bus_dir_own(struct daemon *d, char *err, size_t errlen)
{
	int fd = open(d->bus_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0) {
		snprintf(err, errlen, "%.1500s: %s", d->bus_dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (sb.st_uid != geteuid() && sb.st_uid != 0) {
		snprintf(err, errlen,
			 "%.1500s belongs to uid %d (mode %04o), not to us (uid %d) or root: "
			 "refusing to serve a bus in a directory someone else controls",
			 d->bus_dir, (int)sb.st_uid, (unsigned)sb.st_mode & 07777, (int)geteuid());
		close(fd);
		return -1;
	}
	mode_t m = d->cfg.mode & 0777;
	m |= (m & 0444) >> 2; /* x where r: the directory can be searched */
	m |= S_ISVTX | S_ISGID;
	/* Brokered: nobody but the daemon writes the bus directory (it holds no topics,
	 * only control.sock and daemon.state, which everyone may reach). */
	if (d->cfg.access == SHMBUSD_ACCESS_BROKERED)
		m = 0755;
	if (d->cfg.has_gid && fchown(fd, (uid_t)-1, d->cfg.gid) < 0)
		fprintf(stderr, "shmbusd: chgrp %s: %s\n", d->bus_dir, strerror(errno));
	if ((sb.st_mode & 07777) != m && fchmod(fd, m) < 0)
		fprintf(stderr, "shmbusd: chmod %04o %s: %s\n", (unsigned)m, d->bus_dir,
			strerror(errno));
	close(fd);
	return 0;
}

int apply_topics(struct daemon *d, const struct shmbusd_config *cfg, char *err, size_t errlen)
{
	if (cfg->ntopics > cfg->max_topics) {
		snprintf(err, errlen, "%s: %zu topics declared, max_topics is %u", cfg->path,
			 cfg->ntopics, cfg->max_topics);
		return -1;
	}
	/* Check every topic's options, and add up what the new ones need. */
	uint64_t need = 0;
	for (size_t i = 0; i < cfg->ntopics; i++) {
		const struct topic_decl *t = &cfg->topics[i];
		struct shmbus_seg_opts o;
		uint64_t size = 0;
		if (shmbus_opts_resolve(&t->opts, &o) < 0 || shmbus_seg_opts_check(&o, &size) < 0) {
			snprintf(err, errlen, "%s:%d: [topic %s]: %s", cfg->path,
				 section_line(cfg->path, t->name), t->name, shmbus_errmsg());
			return -1;
		}
		shmbus_topic_opts_t have;
		if (topic_info_guarded(d, t->name, &have) == -ENOENT)
			need += size;
	}
	struct statvfs vfs;
	if (need && statvfs(d->bus_dir, &vfs) == 0) {
		uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		uint64_t total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
		if (need > avail) {
			snprintf(
				err, errlen,
				"the topics need %llu MiB but %s has %llu MiB free (of %llu MiB). "
				"Grow it: 'mount -o remount,size=%lluM /dev/shm' on the host, or "
				"'docker run --shm-size=%lluM' in a container (Docker's default is "
				"64 MB), or declare smaller topics",
				(unsigned long long)(need >> 20), d->bus_dir,
				(unsigned long long)(avail >> 20),
				(unsigned long long)(total >> 20),
				(unsigned long long)((total - avail + need) >> 20) + 64,
				(unsigned long long)((total - avail + need) >> 20) + 64);
			return -1;
		}
	}
	for (size_t i = 0; i < cfg->ntopics; i++) {
		const struct topic_decl *t = &cfg->topics[i];
		shmbus_topic_opts_t have;
		int existed = topic_info_guarded(d, t->name, &have) == 0;
		int rc = shmbus_topic_create(d->bus, t->name, &t->opts);
		char esc[2 * SHMBUS_TOPIC_NAME_MAX + 2], why[600];
		if (rc == -EEXIST) {
			/* Made earlier with other options: it is kept as it is (its data too). */
			event(d, "topic_mismatch", "\"topic\":\"%s\",\"error\":\"%s\"",
			      json_str(esc, sizeof(esc), t->name),
			      json_str(why, sizeof(why), shmbus_errmsg()));
			continue;
		}
		if (rc < 0) {
			snprintf(err, errlen, "topic '%s': %s", t->name, shmbus_errmsg());
			return -1;
		}
		/* Reported here, in order with the reload; the inotify watch then skips it. */
		if (!existed && d->inotify_fd >= 0) {
			void *nn = realloc(d->selfmade, (d->nselfmade + 1) * sizeof(*d->selfmade));
			if (nn) {
				d->selfmade = nn;
				snprintf(d->selfmade[d->nselfmade++], sizeof(*d->selfmade), "%s",
					 t->name);
			}
		}
		if (!existed) {
			/* File mode: the [access] section's owner, group, mode and lists (the
			 * config being applied: on reload, the new one). */
			char fname[SHMBUS_TOPIC_NAME_MAX + 8];
			snprintf(fname, sizeof(fname), "%s.topic", t->name);
			if (cfg->access == SHMBUSD_ACCESS_FILE)
				acl_apply_file(d, cfg, fname);
			else
				topic_own(d, t->name);
		}
		if (!existed)
			event(d, "topic_created",
			      "\"topic\":\"%s\",\"capacity\":%llu,\"policy\":\"%s\"",
			      json_str(esc, sizeof(esc), t->name),
			      (unsigned long long)t->opts.capacity,
			      t->opts.policy == SHMBUS_OVERWRITE ? "overwrite" : "block");
	}
	return 0;
}

/* Detach: the parent waits for the child to say it started (one byte) and exits with
 * its verdict, so `shmbusd && ...` works. Returns the fd to report on, in the child,
 * whose stdin and stdout are /dev/null from here; stderr is kept until it is ready. */
static int daemonize(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		close(p[1]);
		char ok = 0;
		ssize_t n = read(p[0], &ok, 1);
		_exit(n == 1 && ok == 'y' ? 0 : 1);
	}
	close(p[0]);
	setsid();
	if (chdir("/") < 0)
		return -1;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0)
		return -1;
	close(null);
	return p[1];
}

/* A detached daemon's log: log_file (appended to), else /dev/null. -1 with the reason
 * on stderr. */
static int log_open(const struct shmbusd_config *cfg)
{
	const char *path = cfg->log_file[0] ? cfg->log_file : "/dev/null";
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		fprintf(stderr, "shmbusd: %s: log_file %s: %s\n",
			cfg->path[0] ? cfg->path : "defaults", path, strerror(errno));
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "check", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct daemon d;
	const char *cfg_path = getenv("SHMBUSD_CONFIG");
	int foreground = 0, check = 0, opt;
	while ((opt = getopt_long(argc, argv, "c:fnhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cfg_path = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("shmbusd %s\n", SHMBUS_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!cfg_path || !*cfg_path)
		cfg_path = access(SHMBUSD_DEFAULT_CONFIG, F_OK) == 0 ? SHMBUSD_DEFAULT_CONFIG :
								       NULL;
	char err[2048];
	if (config_load(cfg_path, &d.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "shmbusd: %s\n", err);
		return 1;
	}
	snprintf(d.cfg_path, sizeof(d.cfg_path), "%s", cfg_path ? cfg_path : "");
	if (check) {
		/* Options only: nothing is created, not even the bus directory. */
		for (size_t i = 0; i < d.cfg.ntopics; i++) {
			struct shmbus_seg_opts o;
			uint64_t size;
			const struct topic_decl *t = &d.cfg.topics[i];
			if (shmbus_opts_resolve(&t->opts, &o) < 0 ||
			    shmbus_seg_opts_check(&o, &size) < 0) {
				fprintf(stderr, "shmbusd: %s:%d: [topic %s]: %s\n", d.cfg.path,
					section_line(d.cfg.path, t->name), t->name,
					shmbus_errmsg());
				return 1;
			}
		}
		printf("shmbusd: %s: ok (%zu topic%s)\n", d.cfg.path[0] ? d.cfg.path : "defaults",
		       d.cfg.ntopics, d.cfg.ntopics == 1 ? "" : "s");
		return 0;
	}
	d.listen_fd = -1;
	d.signal_fd = -1;
	d.inotify_fd = -1;
	d.log_fd = -1;
	d.state_fd = -1;
	/* A client that truncates a topic file the daemon has mapped costs that topic, not
	 * the daemon (daemon/guard.h). */
	if (guard_init() < 0) {
		perror("shmbusd: sigaction SIGBUS");
		return 1;
	}
	d.started_ms = shmbusd_now_ms();
	/* Opened before anything is made: a log that cannot be written refuses the start.
	 * Events go there from now on (topics made below); messages still to stderr. */
	if (!foreground) {
		if ((d.log_fd = log_open(&d.cfg)) < 0)
			return 1;
		events_output(d.log_fd);
	}

	/* The library finds the bus where the config says; the daemon never registers
	 * with a daemon (itself, or one already running). */
	setenv("SHMBUS_DIR", d.cfg.dir, 1);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	/* Files get the mode; directories also x where they have r. */
	umask(0777 & ~(d.cfg.mode | ((d.cfg.mode & 0444) >> 2)));
	if (shmbus_bus_open(&d.bus, d.cfg.bus) < 0) {
		fprintf(stderr, "shmbusd: %s\n", shmbus_errmsg());
		return 1;
	}
	/* Brokered: topics are memfds handed out over the control socket from here on (and
	 * the daemon's own handle reaches them in-process); else files, whatever an earlier
	 * daemon's daemon.state said. */
	if (d.cfg.access == SHMBUSD_ACCESS_BROKERED)
		broker_init(&d);
	else
		shmbus_bus_set_broker(d.bus, NULL);
	snprintf(d.bus_dir, sizeof(d.bus_dir), "%s", shmbus_bus_path(d.bus));
	if (bus_dir_own(&d, err, sizeof(err)) < 0) {
		fprintf(stderr, "shmbusd: %s\n", err);
		return 1;
	}
	if (apply_topics(&d, &d.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "shmbusd: %s\n", err);
		return 1;
	}
	/* Topic files made before we started (by clients, or under another config). */
	acl_apply_all(&d);
	int ready_fd = -1;
	if (!foreground && (ready_fd = daemonize()) < 0) {
		perror("shmbusd: cannot detach");
		return 1;
	}
	/* daemon.state after the control socket: a daemon refused because another one
	 * serves the bus must leave that one's state (its pid, its counters) alone. */
	if (events_open(&d) < 0 || conductor_init(&d) < 0 || state_open(&d) < 0) {
		events_close(&d);
		conductor_fini(&d);
		state_close(&d);
		return 1;
	}
	char who[3072];
	event(&d, "start", "%s", events_whoami(&d, who, sizeof(who)));
	/* The bridge thread (its own ring); a listener that cannot be bound is no start.
	 * Before adoption: its readers take their groups over from a dead daemon's. */
	if (bridge_start(&d.bridge, &d.cfg, d.bus_dir) < 0) {
		fprintf(stderr, "shmbusd: the bridge could not start\n");
		event(&d, "stop", "%s,\"error\":\"the bridge could not start\"",
		      events_whoami(&d, who, sizeof(who)));
		events_close(&d);
		conductor_fini(&d);
		state_close(&d);
		return 1;
	}
	/* Clients that were there before us (or attached to a daemon that died). */
	adopt(&d);
	if (ready_fd >= 0) {
		/* Ready: stderr leaves the terminal before the parent exits, so whoever waits
		 * for the end of our output there sees it when `shmbusd` returns. */
		if (dup2(d.log_fd, 2) < 0)
			perror("shmbusd: stderr to the log");
		char ok = 'y';
		if (write(ready_fd, &ok, 1) < 0)
			perror("shmbusd: readiness");
		close(ready_fd);
	}
#ifdef HAVE_LIBSYSTEMD
	sd_notify(0, "READY=1");
#endif
	int rc = conductor_run(&d);
#ifdef HAVE_LIBSYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
	bridge_stop(d.bridge);
	d.bridge = NULL;
	event(&d, "stop", "%s", events_whoami(&d, who, sizeof(who)));
	events_close(&d);
	conductor_fini(&d);
	broker_fini();
	state_close(&d);
	config_free(&d.cfg);
	free(d.alarmed);
	free(d.selfmade);
	free(d.lost);
	/* d.dropped stays: the handles it holds cannot be closed (events.c). */
	shmbus_bus_close(d.bus);
	if (d.log_fd >= 0)
		close(d.log_fd);
	return rc < 0 ? 1 : 0;
}
