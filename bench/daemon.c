/* SPDX-License-Identifier: MIT */
/*
 * The servers some peers need (nats-server, iceoryx's iox-roudi, shmbusd for the brokered
 * bus: brokered.c), started by the driver once per invocation and stopped when the suite
 * ends, however it ends: the driver stops them at the end (and from atexit), kills them
 * from its signal handlers, and each dies with the driver if the driver itself is killed
 * (PR_SET_PDEATHSIG).
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

#include "bench.h"

pid_t daemon_spawn(const char *prog, char *const argv[], const char *log)
{
	pid_t parent = getpid();

	fflush(NULL);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	/* Die with the suite, even when it is killed outright. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	int in = open("/dev/null", O_RDONLY);
	int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (in >= 0)
		dup2(in, 0);
	if (out >= 0) {
		dup2(out, 1);
		dup2(out, 2);
	}
	execv(prog, argv);
	_exit(127);
}

int daemon_exited(pid_t pid, int *status)
{
	return pid > 0 && waitpid(pid, status, WNOHANG) == pid;
}

void daemon_stop(pid_t *pid, int sig, double secs)
{
	if (*pid <= 0)
		return;
	kill(*pid, sig);
	uint64_t deadline = now_ns() + (uint64_t)(secs * 1e9);
	while (waitpid(*pid, NULL, WNOHANG) != *pid) {
		if (now_ns() > deadline) {
			kill(*pid, SIGKILL);
			waitpid(*pid, NULL, 0);
			break;
		}
		usleep(2000);
	}
	*pid = 0;
}

void daemon_exit_why(const char *name, int status, const char *log, char *why, size_t n)
{
	char line[160] = "", last[160] = "";
	FILE *f = fopen(log, "r");

	if (f) {
		while (fgets(line, sizeof(line), f))
			if (line[0] != '\n')
				snprintf(last, sizeof(last), "%s", line);
		fclose(f);
	}
	last[strcspn(last, "\n")] = 0;
	if (WIFEXITED(status))
		snprintf(why, n, "%s exited at start with status %d: %s", name, WEXITSTATUS(status),
			 last[0] ? last : "(no output)");
	else
		snprintf(why, n, "%s was killed at start by signal %d", name,
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

double pid_cpu_s(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long ut = 0, st = 0;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* Fields 14 and 15 (utime, stime) come after the ')' that ends the name. */
	char *p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int loopback_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

double daemons_cpu_s(void)
{
	return redis_cpu_s() + nats_cpu_s() + iox_cpu_s() + brokered_cpu_s();
}

void daemons_stop(void)
{
	redis_stop();
	nats_stop();
	iox_stop();
	brokered_stop();
}

void daemons_kill(void)
{
	pid_t p = redis_pid();

	if (p > 0)
		kill(p, SIGKILL);
	nats_kill();
	iox_kill();
	brokered_kill();
}
