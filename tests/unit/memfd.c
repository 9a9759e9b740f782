/* SPDX-License-Identifier: MIT */
/*
 * Brokered topics in memory (shm/segment.c): a topic built in two sealed memfds (part A,
 * the log; part B, the reader table) cannot be shrunk or grown by anyone holding them, so
 * no mapping of it can ever fault; mapped side by side it is the same view as a file; a
 * read-only descriptor of part A gives a mapping that cannot be written (a write faults,
 * and no mprotect makes it writable); descriptors that are not sealed, or parts of two
 * different topics, are refused.
 */
#include "tests/lib/test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/segment.h"

static int reopen_ro(int fd)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, O_RDONLY | O_CLOEXEC);
}

int main(void)
{
	struct shmbus_seg_opts o = { .capacity = 1 << 16, .max_message = 1000, .policy = 0,
				     .max_readers = 5, .max_groups = 3, .max_publishers = 4,
				     .max_pending = 4 };
	int a = -1, b = -1;
	CHECK_RC(shmbus_seg_create_memfds("m", &o, &a, &b), 0);
	int seals = fcntl(a, F_GET_SEALS);
	CHECK(seals >= 0 && (seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
				    (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
	CHECK(fcntl(b, F_GET_SEALS) == seals);
	/* Nobody can shrink or grow them, not even with a read-write descriptor. */
	CHECK(ftruncate(a, 0) < 0 && errno == EPERM);
	CHECK(ftruncate(b, 4096) < 0 && errno == EPERM);
	CHECK(fcntl(a, F_ADD_SEALS, F_SEAL_WRITE) < 0 && errno == EPERM);

	struct shmbus_seg w;
	CHECK_RC(shmbus_seg_open_fds(&w, a, b, 0, "m"), 0);
	CHECK(!w.log_ro && w.cap == (1u << 16) && w.opts.max_readers == 5);
	CHECK(w.hdr->version == SHMBUS_LAYOUT_VERSION && w.rt->magic == SHMBUS_RTAB_MAGIC);
	CHECK((uint8_t *)w.rt == w.base + w.rtab_off && w.log + w.cap == (uint8_t *)w.rt);
	CHECK(w.readers[4].pos == SHMBUS_NOPOS && w.pubs[3].claim_pos == SHMBUS_NOPOS);
	memcpy(w.log, "hello", 6);
	w.readers[0].consumed = 7;

	/* A subscriber's view: part A read-only. It sees what was written, writes part B. */
	int ra = reopen_ro(a);
	CHECK(ra >= 0);
	struct shmbus_seg r;
	CHECK_RC(shmbus_seg_open_fds(&r, ra, b, 1, "m"), 0);
	CHECK(r.log_ro && strcmp((char *)r.log, "hello") == 0 && r.readers[0].consumed == 7);
	r.readers[1].consumed = 9;
	r.rt->wake = 3;
	CHECK(w.readers[1].consumed == 9 && w.rt->wake == 3);
	/* Part A cannot be made writable... */
	CHECK(mprotect(r.base, 4096, PROT_READ | PROT_WRITE) < 0 && errno == EACCES);
	CHECK(mmap(NULL, r.rtab_off, PROT_READ | PROT_WRITE, MAP_SHARED, ra, 0) == MAP_FAILED);
	/* ...and a write to it faults (in a child). */
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		((volatile uint8_t *)r.log)[0] = 'X';
		_exit(0);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
	CHECK(w.log[0] == 'h');
	/* A read-only descriptor cannot be opened read-write. */
	struct shmbus_seg bad;
	CHECK(shmbus_seg_open_fds(&bad, ra, b, 0, "m") < 0);
	shmbus_seg_close(&r);
	close(ra);

	/* Parts of two topics do not go together. */
	int a2, b2;
	CHECK_RC(shmbus_seg_create_memfds("m2", &o, &a2, &b2), 0);
	CHECK_RC(shmbus_seg_open_fds(&bad, a, b2, 0, "m"), -EBADMSG);
	CHECK(strstr(shmbus_errmsg(), "reader table") != NULL);
	/* A descriptor that is not sealed (it could shrink under us) is refused. */
	int u = memfd_create("unsealed", MFD_CLOEXEC);
	CHECK(u >= 0);
	CHECK_RC(shmbus_seg_open_fds(&bad, u, b, 0, "m"), -EPERM);
	CHECK(strstr(shmbus_errmsg(), "sealed") != NULL);
	shmbus_seg_close(&w);
	close(u);
	close(a);
	close(b);
	close(a2);
	close(b2);
	printf("memfd: sealed parts, read-only log, mismatches refused\n");
	return 0;
}
