/* SPDX-License-Identifier: MIT */
/*
 * shm/segment: a created topic file has the documented layout (regions 4 KiB aligned,
 * fully allocated, ready set), opens back with the same options, and a half-built file
 * (no ready word) is refused with -EPROTO and a message; creation races end with one file.
 */
#include "tests/lib/proc.h"

#include <sys/stat.h>

#include "ring/atomic.h"
#include "shm/err.h"
#include "shm/segment.h"

int main(void)
{
	const char *root = t_private_dir("seg");
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/b", root);
	CHECK(mkdir(dir, 0700) == 0);

	struct shmbus_seg_opts o = { .capacity = 1 << 16, .max_message = 1000, .policy = 1,
				     .max_readers = 5, .max_groups = 3, .max_publishers = 70,
				     .max_pending = 4 };
	CHECK_RC(shmbus_seg_create(dir, "t", &o), 0);
	CHECK_RC(shmbus_seg_create(dir, "t", &o), 1);
	struct shmbus_seg_opts o2 = o;
	o2.max_readers = 6;
	CHECK_RC(shmbus_seg_create(dir, "t", &o2), -EEXIST);
	CHECK(strstr(shmbus_errmsg(), "other options") != NULL);

	struct shmbus_seg s;
	CHECK_RC(shmbus_seg_open(&s, dir, "t"), 0);
	struct shmbus_topic_hdr *h = s.hdr;
	CHECK(h->magic == SHMBUS_MAGIC && h->version == SHMBUS_LAYOUT_VERSION);
	CHECK(h->ready == SHMBUS_READY);
	/* Part A: header, publishers, log; part B: reader table header, readers, groups. */
	CHECK(h->pubs_off == 4096);
	CHECK(h->log_off == 4096 + 8192); /* 70 x 64 B rounds up to two pages */
	CHECK(h->rtab_off == h->log_off + (1 << 16));
	CHECK(h->readers_off == h->rtab_off + 4096);
	CHECK(h->groups_off == h->readers_off + 4096);
	CHECK(h->pending_off == h->groups_off + 4096); /* 3 x 320 B */
	CHECK(h->max_pending == 4 && s.pend == (struct shmbus_pend *)(s.base + h->pending_off));
	CHECK(h->file_size == h->pending_off + 4096); /* 3 x 4 x 64 B */
	for (uint32_t i = 0; i < 12; i++)
		CHECK(s.pend[i].ctl == 0 && s.pend[i].pos == SHMBUS_NOPOS);
	CHECK(s.rt->magic == SHMBUS_RTAB_MAGIC && s.rt->generation == h->generation);
	CHECK((uint8_t *)s.rt == s.base + h->rtab_off && !s.log_ro);
	CHECK(s.cap == 1 << 16 && s.mask == s.cap - 1);
	CHECK(h->stamp_key >> 63);
	CHECK(s.opts.max_message == 1000 && s.opts.policy == 1 && s.opts.max_publishers == 70);
	for (uint32_t i = 0; i < 70; i++)
		CHECK(s.pubs[i].claim_pos == SHMBUS_NOPOS && s.pubs[i].owner == 0);
	for (uint32_t i = 0; i < 5; i++)
		CHECK(s.readers[i].pos == SHMBUS_NOPOS);
	char path[600];
	snprintf(path, sizeof(path), "%s/t.topic", dir);
	struct stat sb;
	CHECK(stat(path, &sb) == 0);
	CHECK((uint64_t)sb.st_size == h->file_size);
	/* Fully allocated: no hole for a later page fault to fail on. */
	CHECK((uint64_t)sb.st_blocks * 512 >= h->file_size);
	uint64_t gen = s.generation;

	/* Not ready: refused, named. */
	sb_st_release(&h->ready, 0);
	struct shmbus_seg s2;
	CHECK_RC(shmbus_seg_open(&s2, dir, "t"), -EPROTO);
	CHECK(strstr(shmbus_errmsg(), "not marked ready") != NULL);
	sb_st_release(&h->ready, SHMBUS_READY);
	shmbus_seg_close(&s);
	CHECK(unlink(path) == 0);

	/* A new incarnation gets a new generation. */
	CHECK_RC(shmbus_seg_create(dir, "t", &o), 0);
	CHECK_RC(shmbus_seg_open(&s, dir, "t"), 0);
	CHECK(s.generation != gen);
	shmbus_seg_close(&s);
	CHECK(unlink(path) == 0);

	/* Eight processes race to create one topic: one 0, the rest 1, one file. */
	pid_t kids[8];
	for (int i = 0; i < 8; i++) {
		kids[i] = t_fork();
		if (kids[i] == 0) {
			int rc = shmbus_seg_create(dir, "race", &o);
			_exit(rc == 0 ? 10 : rc == 1 ? 11 : 1);
		}
	}
	int created = 0, existed = 0;
	for (int i = 0; i < 8; i++) {
		int st = t_reap(kids[i], T_WAIT_MS, "a creator");
		CHECK(WIFEXITED(st));
		created += WEXITSTATUS(st) == 10;
		existed += WEXITSTATUS(st) == 11;
	}
	CHECK(created == 1 && existed == 7);
	CHECK_RC(shmbus_seg_open(&s, dir, "race"), 0);
	shmbus_seg_close(&s);
	printf("ok\n");
	return 0;
}
