/* SPDX-License-Identifier: MIT */
/*
 * Topic files: creation (fully built and space reserved before the file appears under its
 * name), opening with validation of every header field against the file, and the mapped
 * view the ring code works on. Knows nothing of publishers or readers.
 */
#ifndef SHMBUS_SHM_SEGMENT_H
#define SHMBUS_SHM_SEGMENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/layout.h"

/* Options as the file records them (validated copies of shmbus_topic_opts_t). */
struct shmbus_seg_opts {
	uint64_t capacity;
	uint32_t max_message;
	uint32_t policy;
	uint32_t max_readers;
	uint32_t max_groups;
	uint32_t max_publishers;
	uint32_t flags;
	uint32_t max_pending; /* pending entries per group */
};

/* A mapped, validated topic. The pointers and sizes are private copies, never re-read. */
struct shmbus_seg {
	uint8_t *base;
	size_t size;
	struct shmbus_topic_hdr *hdr;
	struct shmbus_pub_slot *pubs;
	uint8_t *log;
	struct shmbus_rtab_hdr *rt; /* part B: the reader table header */
	struct shmbus_reader_slot *readers;
	struct shmbus_group_slot *groups;
	struct shmbus_pend *pend; /* max_groups x max_pending entries, group by group */
	uint64_t rtab_off; /* where part B starts */
	int log_ro;	   /* part A is mapped read-only (a brokered subscriber) */
	uint64_t cap;
	uint64_t mask;
	uint64_t key;
	uint64_t generation;
	struct shmbus_seg_opts opts;
	char name[128];
};

/* Most group slots a topic may have. */
#define SHMBUS_GROUPS_MAX 1024u

/* Are two option sets the same topic's? */
int shmbus_seg_opts_equal(const struct shmbus_seg_opts *a, const struct shmbus_seg_opts *b);

/* Largest payload a topic may allow: records and padding must fit a 31-bit length. */
#define SHMBUS_MAX_MESSAGE_LIMIT (1u << 30)

/*
 * Check opts (after defaults were applied) and compute the file size. Returns 0 or
 * -EINVAL with a message naming the field.
 */
int shmbus_seg_opts_check(const struct shmbus_seg_opts *o, uint64_t *file_size);

/*
 * Files are opened relative to the directory's fd (dirfd; dir is its path, for messages),
 * with O_NOFOLLOW|O_NONBLOCK, and kept only if fstat shows a regular file at least a
 * header long: a symlink, FIFO, socket or device named like a topic is -EPROTO at once
 * (no open ever waits for a FIFO's writer). The forms without _at open dir themselves
 * (O_DIRECTORY|O_NOFOLLOW) and are for tests and tools that hold a path only.
 */

/*
 * Create the topic file name.topic in dirfd. Returns 0 created, 1 existed with the same
 * options, -EEXIST (other options), -ENOSPC, -EACCES, -EPROTO/-EBADMSG (a file that is
 * not a valid topic is in the way), or another -errno; with a message.
 */
int shmbus_seg_create_at(int dirfd, const char *dir, const char *name,
			 const struct shmbus_seg_opts *o);
int shmbus_seg_create(const char *dir, const char *name, const struct shmbus_seg_opts *o);

/* Open and map name.topic in dirfd read-write after validating it. 0 or -errno, message. */
int shmbus_seg_open_at(struct shmbus_seg *seg, int dirfd, const char *dir, const char *name);
int shmbus_seg_open(struct shmbus_seg *seg, const char *dir, const char *name);

/* Unmap. */
void shmbus_seg_close(struct shmbus_seg *seg);

/*
 * Brokered mode: build a topic in two sealed memfds instead of a file, part A (header,
 * publisher slots, log) in *fda and part B (reader table) in *fdb, both read-write and
 * sealed against shrinking and growing (F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL), so that
 * nobody holding them can ever make a mapping of them fault. 0 or -errno with a message.
 */
int shmbus_seg_create_memfds(const char *name, const struct shmbus_seg_opts *o, int *fda,
			     int *fdb);

/*
 * Map a topic from its two parts' descriptors (shmbus_seg_create_memfds(), passed on),
 * side by side so that the view is the same as a file's. With log_ro, part A is mapped
 * read-only (fda may be read-only): the caller must never write it (seg->log_ro tells the
 * ring code). Both descriptors must be sealed against shrinking (a descriptor that is not
 * could fault: -EPERM), of the sizes the header names. The descriptors are not kept (the
 * caller closes them). 0 or -errno with a message.
 */
int shmbus_seg_open_fds(struct shmbus_seg *seg, int fda, int fdb, int log_ro, const char *name);

/*
 * The generation (random incarnation id) in the header of dir/name.topic, read and
 * validated without mapping the file; 0 if there is no such file or it is not a valid
 * topic. Cheap enough to poll: a topic removed and created again has another.
 */
uint64_t shmbus_seg_generation_at(int dirfd, const char *name);
uint64_t shmbus_seg_generation(const char *dir, const char *name);

/* What a file of mode m is, for messages ("FIFO", "symbolic link", "regular file"...). */
const char *shmbus_seg_ftype(mode_t m);

/*
 * Validate a header against the file size it came from; on success fill seg's view
 * fields (not base). Returns 0, -EPROTO (not ours / other version / not ready) or
 * -EBADMSG (inconsistent), with a message naming the topic.
 */
int shmbus_seg_validate(struct shmbus_seg *seg, const struct shmbus_topic_hdr *h,
			uint64_t size, const char *name);

#endif
