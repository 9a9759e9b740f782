/* SPDX-License-Identifier: MIT */
/*
 * Topic files. A topic is created under a temporary name, sized and its space reserved
 * (posix_fallocate: a tmpfs too small fails here with ENOSPC rather than with SIGBUS on a
 * later page fault), initialised, marked ready with a release store, and only then linked
 * under its real name; link() fails if another process won the race, and then the two
 * option sets are compared. Opening copies the header out with pread() and checks every
 * field against the file before anything is mapped or written, so a damaged or foreign
 * file is refused without being touched.
 */
#include "shm/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <shmbus.h>

#include "shm/err.h"

#define CAP_MIN 4096ull
#define CAP_MAX (1ull << 40)
#define SLOTS_MAX 4096u
#define GROUPS_MAX SHMBUS_GROUPS_MAX
#define PENDING_MAX 65536u

enum { OFF_PUBS, OFF_LOG, OFF_RTAB, OFF_READERS, OFF_GROUPS, OFF_PEND, SEG_NOFF };

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static int is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Region offsets for a set of table sizes (all fit easily in 64 bits: tables <= 4096): part
 * A (header, publisher slots, log), then part B (reader table header, reader slots, group
 * slots), each region on a page, so each part can be mapped from its own descriptor. */
static void layout(uint32_t npubs, uint32_t nreaders, uint32_t ngroups, uint32_t npend,
		   uint64_t cap, uint64_t off[SEG_NOFF], uint64_t *file_size)
{
	off[OFF_PUBS] = SHMBUS_HEADER_SIZE;
	off[OFF_LOG] = align_up(off[OFF_PUBS] + (uint64_t)npubs * sizeof(struct shmbus_pub_slot),
				SHMBUS_REGION_ALIGN);
	off[OFF_RTAB] = off[OFF_LOG] + cap;
	off[OFF_READERS] = off[OFF_RTAB] + SHMBUS_HEADER_SIZE;
	off[OFF_GROUPS] = align_up(off[OFF_READERS] +
				   (uint64_t)nreaders * sizeof(struct shmbus_reader_slot),
				   SHMBUS_REGION_ALIGN);
	off[OFF_PEND] = align_up(off[OFF_GROUPS] +
				 (uint64_t)ngroups * sizeof(struct shmbus_group_slot),
				 SHMBUS_REGION_ALIGN);
	*file_size = align_up(off[OFF_PEND] + (uint64_t)ngroups * npend * sizeof(struct shmbus_pend),
			      SHMBUS_REGION_ALIGN);
}

int shmbus_seg_opts_check(const struct shmbus_seg_opts *o, uint64_t *file_size)
{
	if (!is_pow2(o->capacity) || o->capacity < CAP_MIN || o->capacity > CAP_MAX)
		return shmbus_err(-EINVAL, "capacity %" PRIu64 " is not a power of two from 4 KiB "
				  "to 1 TiB", o->capacity);
	uint64_t mm_lim = o->capacity / 2 - 64;
	if (mm_lim > SHMBUS_MAX_MESSAGE_LIMIT)
		mm_lim = SHMBUS_MAX_MESSAGE_LIMIT;
	if (o->max_message > mm_lim)
		return shmbus_err(-EINVAL, "max_message %u is larger than %" PRIu64 " (capacity/2 - "
				  "64, at most 1 GiB) for capacity %" PRIu64, o->max_message,
				  mm_lim, o->capacity);
	if (o->policy != 0 && o->policy != 1)
		return shmbus_err(-EINVAL, "policy %u is neither SHMBUS_BLOCK (0) nor "
				  "SHMBUS_OVERWRITE (1)", o->policy);
	if (o->max_readers < 1 || o->max_readers > SLOTS_MAX)
		return shmbus_err(-EINVAL, "max_readers %u is not within 1..%u", o->max_readers,
				  SLOTS_MAX);
	if (o->max_publishers < 1 || o->max_publishers > SLOTS_MAX)
		return shmbus_err(-EINVAL, "max_publishers %u is not within 1..%u",
				  o->max_publishers, SLOTS_MAX);
	if (o->max_groups > GROUPS_MAX)
		return shmbus_err(-EINVAL, "max_groups %u is not within 0..%u", o->max_groups,
				  GROUPS_MAX);
	if (o->max_pending < 1 || o->max_pending > PENDING_MAX)
		return shmbus_err(-EINVAL, "max_pending %u is not within 1..%u", o->max_pending,
				  PENDING_MAX);
	if (o->flags & ~1u)
		return shmbus_err(-EINVAL, "unknown flags 0x%x", o->flags & ~1u);
	uint64_t off[SEG_NOFF];
	layout(o->max_publishers, o->max_readers, o->max_groups, o->max_pending, o->capacity, off,
	       file_size);
	return 0;
}

static void seg_fname(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s.topic", name);
}

const char *shmbus_seg_ftype(mode_t m)
{
	if (S_ISREG(m))
		return "regular file";
	if (S_ISDIR(m))
		return "directory";
	if (S_ISLNK(m))
		return "symbolic link";
	if (S_ISFIFO(m))
		return "FIFO";
	if (S_ISSOCK(m))
		return "socket";
	if (S_ISCHR(m))
		return "character device";
	if (S_ISBLK(m))
		return "block device";
	return "special file";
}

/*
 * Open dirfd/fname without following a symlink, without blocking (a FIFO named like a
 * topic would block an open for reading until a writer came) and without taking a
 * terminal; then only a regular file is kept. Returns the fd, -ENOENT (message set), or
 * -EPROTO for anything that is not a regular file, or another -errno, with a message.
 */
static int open_regular(int dirfd, const char *dir, const char *fname, const char *name, int flags)
{
	int fd = openat(dirfd, fname, flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	struct stat sb;
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return shmbus_err(-ENOENT, "topic '%s' does not exist (no %s/%s)", name,
					  dir, fname);
		/* ELOOP: a symlink; ENXIO: a socket, or a FIFO opened to write; and so on. */
		if (fstatat(dirfd, fname, &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(sb.st_mode))
			return shmbus_err(-EPROTO,
					  "topic '%s': %s/%s is a %s, not a topic file; "
					  "remove it",
					  name, dir, fname, shmbus_seg_ftype(sb.st_mode));
		return shmbus_err(-e, "topic '%s': open %s/%s: %s", name, dir, fname, strerror(e));
	}
	if (fstat(fd, &sb) < 0) {
		int e = errno;
		close(fd);
		return shmbus_err(-e, "topic '%s': fstat %s/%s: %s", name, dir, fname, strerror(e));
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return shmbus_err(-EPROTO, "topic '%s': %s/%s is a %s, not a topic file; remove it",
				  name, dir, fname, shmbus_seg_ftype(sb.st_mode));
	}
	return fd;
}

/* The directory of a path-based call, as the bus opens its own: never through a symlink. */
static int open_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return shmbus_err(-errno, "cannot open directory %s: %s", dir, strerror(errno));
	return fd;
}

int shmbus_seg_validate(struct shmbus_seg *seg, const struct shmbus_topic_hdr *h,
			uint64_t size, const char *name)
{
	/* Before any field is believed: a file shorter than a header is no topic. */
	if (size < SHMBUS_HEADER_SIZE)
		return shmbus_err(-EPROTO,
				  "topic '%s': file is %" PRIu64 " bytes, shorter than "
				  "a topic header (%u): not a topic file, or truncated",
				  name, size, (unsigned)SHMBUS_HEADER_SIZE);
	if (h->magic != SHMBUS_MAGIC)
		return shmbus_err(-EPROTO,
				  "topic '%s': not a shmbus topic file (bad magic "
				  "0x%016" PRIx64 ")",
				  name, h->magic);
	if (h->version != SHMBUS_LAYOUT_VERSION)
		return shmbus_err(-EPROTO, "topic '%s': file is layout version %u, this library "
				  "reads version %u", name, h->version, SHMBUS_LAYOUT_VERSION);
	if (h->ready != SHMBUS_READY)
		return shmbus_err(-EPROTO, "topic '%s': file is not marked ready (its creator "
				  "died while building it, or it is damaged); remove it", name);
	if (h->file_size != size)
		return shmbus_err(-EBADMSG, "topic '%s': header says %" PRIu64 " bytes, the file "
				  "is %" PRIu64 " (truncated or damaged)", name, h->file_size, size);
	struct shmbus_seg_opts o = {
		.capacity = h->capacity,
		.max_message = h->max_message,
		.policy = h->policy,
		.max_readers = h->max_readers,
		.max_groups = h->max_groups,
		.max_publishers = h->max_publishers,
		.flags = h->flags & 1u,
		.max_pending = h->max_pending,
	};
	uint64_t fs;
	int rc = shmbus_seg_opts_check(&o, &fs);
	if (rc < 0) {
		char why[256];
		snprintf(why, sizeof(why), "%s", shmbus_errmsg());
		return shmbus_err(-EBADMSG, "topic '%s': damaged header: %s", name, why);
	}
	uint64_t off[SEG_NOFF];
	layout(o.max_publishers, o.max_readers, o.max_groups, o.max_pending, o.capacity, off, &fs);
	if (h->pubs_off != off[OFF_PUBS] || h->log_off != off[OFF_LOG] ||
	    h->rtab_off != off[OFF_RTAB] || h->readers_off != off[OFF_READERS] ||
	    h->groups_off != off[OFF_GROUPS] || h->pending_off != off[OFF_PEND] || fs != size)
		return shmbus_err(-EBADMSG, "topic '%s': damaged header: region offsets "
				  "%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64
				  " do not match its tables and a %" PRIu64 "-byte topic",
				  name, h->pubs_off, h->log_off, h->rtab_off, h->readers_off,
				  h->groups_off, size);
	if (h->stamp_key == 0)
		return shmbus_err(-EBADMSG, "topic '%s': damaged header: zero stamp key", name);
	if (seg) {
		seg->opts = o;
		seg->cap = o.capacity;
		seg->mask = o.capacity - 1;
		seg->key = h->stamp_key;
		seg->generation = h->generation;
		seg->size = size;
		seg->rtab_off = h->rtab_off;
		snprintf(seg->name, sizeof(seg->name), "%s", name);
	}
	return 0;
}

/* Part B's header, at off in fd, must belong to the topic whose header is h. */
static int rtab_validate(int fd, uint64_t off, const struct shmbus_topic_hdr *h, const char *name)
{
	struct shmbus_rtab_hdr r;
	memset(&r, 0, sizeof(r));
	ssize_t n = pread(fd, &r, sizeof(r), (off_t)off);
	if (n < 0)
		return shmbus_err(-errno, "topic '%s': read: %s", name, strerror(errno));
	if (r.magic != SHMBUS_RTAB_MAGIC || r.generation != h->generation)
		return shmbus_err(-EBADMSG, "topic '%s': damaged reader table header (magic "
				  "0x%016" PRIx64 ", generation %016" PRIx64 " for %016" PRIx64 ")",
				  name, r.magic, r.generation, h->generation);
	return 0;
}

/* Read the header of an open file and validate it. */
static int read_validate(int fd, struct shmbus_seg *seg, const char *name)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return shmbus_err(-errno, "topic '%s': fstat: %s", name, strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return shmbus_err(-EPROTO, "topic '%s': a %s, not a topic file", name,
				  shmbus_seg_ftype(sb.st_mode));
	struct shmbus_topic_hdr h;
	memset(&h, 0, sizeof(h));
	ssize_t n = pread(fd, &h, sizeof(h), 0);
	if (n < 0)
		return shmbus_err(-errno, "topic '%s': read: %s", name, strerror(errno));
	/* The size the header is checked against is the one fstat saw; a file that shrank
	 * since reads short, and the zeros left in h fail the checks. */
	int rc = shmbus_seg_validate(seg, &h, (uint64_t)sb.st_size, name);
	if (rc < 0)
		return rc;
	return rtab_validate(fd, h.rtab_off, &h, name);
}

/* Point seg's views into the mapping at m (seg's options are validated). */
static void seg_view(struct shmbus_seg *seg, void *m)
{
	seg->base = m;
	seg->hdr = m;
	uint64_t off[SEG_NOFF], fs;
	layout(seg->opts.max_publishers, seg->opts.max_readers, seg->opts.max_groups,
	       seg->opts.max_pending, seg->cap, off, &fs);
	seg->pubs = (struct shmbus_pub_slot *)(seg->base + off[OFF_PUBS]);
	seg->log = seg->base + off[OFF_LOG];
	seg->rt = (struct shmbus_rtab_hdr *)(seg->base + off[OFF_RTAB]);
	seg->readers = (struct shmbus_reader_slot *)(seg->base + off[OFF_READERS]);
	seg->groups = (struct shmbus_group_slot *)(seg->base + off[OFF_GROUPS]);
	seg->pend = (struct shmbus_pend *)(seg->base + off[OFF_PEND]);
}

int shmbus_seg_open_at(struct shmbus_seg *seg, int dirfd, const char *dir, const char *name)
{
	char fname[256];
	memset(seg, 0, sizeof(*seg));
	seg_fname(fname, sizeof(fname), name);
	int fd = open_regular(dirfd, dir, fname, name, O_RDWR);
	if (fd < 0)
		return fd;
	int rc = read_validate(fd, seg, name);
	if (rc < 0)
		goto out;
	void *m = mmap(NULL, seg->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		rc = shmbus_err(-errno, "topic '%s': mmap of %zu bytes: %s", name, seg->size,
				strerror(errno));
		goto out;
	}
	seg_view(seg, m);
	rc = 0;
out:
	close(fd);
	return rc;
}

int shmbus_seg_open(struct shmbus_seg *seg, const char *dir, const char *name)
{
	memset(seg, 0, sizeof(*seg));
	int dfd = open_dir(dir);
	if (dfd < 0)
		return dfd;
	int rc = shmbus_seg_open_at(seg, dfd, dir, name);
	close(dfd);
	return rc;
}

uint64_t shmbus_seg_generation_at(int dirfd, const char *name)
{
	char fname[256];
	seg_fname(fname, sizeof(fname), name);
	int fd = openat(dirfd, fname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return 0;
	/* The header checked as an open would check it: a damaged file is no topic. */
	struct shmbus_seg seg;
	memset(&seg, 0, sizeof(seg));
	int rc = read_validate(fd, &seg, name);
	close(fd);
	return rc < 0 ? 0 : seg.generation;
}

uint64_t shmbus_seg_generation(const char *dir, const char *name)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return 0;
	uint64_t g = shmbus_seg_generation_at(dfd, name);
	close(dfd);
	return g;
}

void shmbus_seg_close(struct shmbus_seg *seg)
{
	if (seg->base)
		munmap(seg->base, seg->size);
	seg->base = NULL;
}

static uint64_t rand64(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof(v), 0) != sizeof(v)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		v = ((uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull) ^ (uint64_t)getpid();
	}
	return v;
}

/* Fill a freshly mapped, zeroed file. ready is stored last, with release. */
static void seg_init(uint8_t *base, const char *name, const struct shmbus_seg_opts *o,
		     uint64_t size)
{
	struct shmbus_topic_hdr *h = (void *)base;
	uint64_t off[SEG_NOFF], fs;
	layout(o->max_publishers, o->max_readers, o->max_groups, o->max_pending, o->capacity, off,
	       &fs);
	h->magic = SHMBUS_MAGIC;
	h->version = SHMBUS_LAYOUT_VERSION;
	h->file_size = size;
	h->capacity = o->capacity;
	h->max_message = o->max_message;
	h->policy = o->policy;
	h->max_readers = o->max_readers;
	h->max_groups = o->max_groups;
	h->max_publishers = o->max_publishers;
	h->flags = o->flags;
	h->generation = rand64();
	/* Never zero, and far above any position a log reaches, so a zeroed or stale
	 * commit word can never equal position ^ key. */
	h->stamp_key = rand64() | (1ull << 63);
	h->pubs_off = off[OFF_PUBS];
	h->log_off = off[OFF_LOG];
	h->rtab_off = off[OFF_RTAB];
	h->readers_off = off[OFF_READERS];
	h->groups_off = off[OFF_GROUPS];
	h->pending_off = off[OFF_PEND];
	h->max_pending = o->max_pending;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	h->created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	snprintf(h->name, sizeof(h->name), "%s", name);
	struct shmbus_rtab_hdr *rt = (void *)(base + off[OFF_RTAB]);
	rt->magic = SHMBUS_RTAB_MAGIC;
	rt->generation = h->generation;
	struct shmbus_pub_slot *ps = (void *)(base + off[OFF_PUBS]);
	for (uint32_t i = 0; i < o->max_publishers; i++)
		ps[i].claim_pos = SHMBUS_NOPOS;
	struct shmbus_pend *pe = (void *)(base + off[OFF_PEND]);
	for (uint64_t i = 0; i < (uint64_t)o->max_groups * o->max_pending; i++)
		pe[i].pos = SHMBUS_NOPOS;
	struct shmbus_reader_slot *rs = (void *)(base + off[OFF_READERS]);
	for (uint32_t i = 0; i < o->max_readers; i++) {
		rs[i].pos = SHMBUS_NOPOS;
		rs[i].floor = SHMBUS_NOPOS;
	}
	/* Release: everything above is visible before anyone who sees ready (acquire) reads
	 * it. A builtin, not ring/atomic.h: shm/ sits below ring/. */
	__atomic_store_n(&h->ready, SHMBUS_READY, __ATOMIC_RELEASE);
}

int shmbus_seg_opts_equal(const struct shmbus_seg_opts *a, const struct shmbus_seg_opts *b)
{
	return a->capacity == b->capacity && a->max_message == b->max_message &&
	       a->policy == b->policy && a->max_readers == b->max_readers &&
	       a->max_groups == b->max_groups && a->max_publishers == b->max_publishers &&
	       a->flags == b->flags && a->max_pending == b->max_pending;
}

/* A topic file exists as fname: same options → 1, other → -EEXIST, invalid → error. */
static int compare_existing(int dirfd, const char *dir, const char *fname, const char *name,
			    const struct shmbus_seg_opts *o)
{
	int fd = open_regular(dirfd, dir, fname, name, O_RDONLY);
	if (fd < 0)
		return fd;
	struct shmbus_seg s;
	memset(&s, 0, sizeof(s));
	/* A creator between link() and nothing else is impossible (we link complete files),
	 * so a not-ready file is genuinely damaged. */
	int rc = read_validate(fd, &s, name);
	close(fd);
	if (rc < 0)
		return rc;
	if (!shmbus_seg_opts_equal(&s.opts, o))
		return shmbus_err(-EEXIST, "topic '%s' exists with other options (capacity "
				  "%" PRIu64 ", max_message %u, policy %s, readers %u, groups %u, "
				  "publishers %u)", name, s.opts.capacity, s.opts.max_message,
				  s.opts.policy ? "overwrite" : "block", s.opts.max_readers,
				  s.opts.max_groups, s.opts.max_publishers);
	return 1;
}

int shmbus_seg_create_at(int dirfd, const char *dir, const char *name,
			 const struct shmbus_seg_opts *o)
{
	uint64_t size;
	int rc = shmbus_seg_opts_check(o, &size);
	if (rc < 0)
		return rc;
	char fname[256], tmp[320];
	seg_fname(fname, sizeof(fname), name);
	struct stat sb;
	/* Anything of that name (a symlink too, not followed) is looked at, never replaced. */
	if (fstatat(dirfd, fname, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return compare_existing(dirfd, dir, fname, name, o);

	struct statvfs vfs;
	if (fstatvfs(dirfd, &vfs) == 0 && vfs.f_blocks != 0) {
		uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		if (size > avail)
			return shmbus_err(-ENOSPC, "topic '%s' needs %" PRIu64 " bytes but %s has "
					  "only %" PRIu64 " free; grow the tmpfs (e.g. mount -o "
					  "remount,size=... /dev/shm, or docker run --shm-size)",
					  name, size, dir, avail);
	}
	snprintf(tmp, sizeof(tmp), ".%s.%d.%08x.tmp", name, (int)getpid(), (unsigned)rand64());
	int fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int e = errno;
		return shmbus_err(-e, "topic '%s': cannot create %s/%s: %s", name, dir, tmp,
				  strerror(e));
	}
	/* The file's mode follows the bus directory's, whatever the creator's umask: read and
	 * write for whom the directory lets add files (its group, or everyone with the sticky
	 * bit: shmbusd's `mode`), owner read-write always. A topic one member makes is for
	 * the others too; its group is the directory's when that is setgid (shmbusd's
	 * `group`). */
	struct stat ds;
	if (fstat(dirfd, &ds) == 0) {
		mode_t fm = 0600;
		if (ds.st_mode & S_IWGRP)
			fm |= 0060;
		if ((ds.st_mode & S_IWOTH) && (ds.st_mode & S_ISVTX))
			fm |= 0006;
		if (fchmod(fd, fm) < 0) {
			rc = shmbus_err(-errno, "topic '%s': chmod %04o: %s", name, (unsigned)fm,
					strerror(errno));
			unlinkat(dirfd, tmp, 0);
			close(fd);
			return rc;
		}
	}
	uint8_t *m = MAP_FAILED;
	if (ftruncate(fd, (off_t)size) < 0) {
		rc = shmbus_err(-errno, "topic '%s': ftruncate to %" PRIu64 ": %s", name, size,
				strerror(errno));
		goto fail;
	}
	int e = posix_fallocate(fd, 0, (off_t)size);
	if (e) {
		rc = shmbus_err(-e, "topic '%s': cannot reserve %" PRIu64 " bytes in %s: %s%s",
				name, size, dir, strerror(e),
				e == ENOSPC ? "; grow the tmpfs (mount -o remount,size=... "
					      "/dev/shm, or docker run --shm-size)" : "");
		goto fail;
	}
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		rc = shmbus_err(-errno, "topic '%s': mmap: %s", name, strerror(errno));
		goto fail;
	}
	seg_init(m, name, o, size);
	munmap(m, size);
	if (linkat(dirfd, tmp, dirfd, fname, 0) < 0) {
		e = errno;
		unlinkat(dirfd, tmp, 0);
		close(fd);
		if (e == EEXIST)
			return compare_existing(dirfd, dir, fname, name, o);
		return shmbus_err(-e, "topic '%s': link %s/%s: %s", name, dir, fname, strerror(e));
	}
	unlinkat(dirfd, tmp, 0);
	close(fd);
	return 0;
fail:
	unlinkat(dirfd, tmp, 0);
	close(fd);
	return rc;
}

int shmbus_seg_create(const char *dir, const char *name, const struct shmbus_seg_opts *o)
{
	int dfd = open_dir(dir);
	if (dfd < 0)
		return dfd;
	int rc = shmbus_seg_create_at(dfd, dir, name, o);
	close(dfd);
	return rc;
}

/* ---- brokered mode: two sealed memfds ---------------------------------------------- */

#define SEALS_NEEDED (F_SEAL_SHRINK | F_SEAL_GROW)

static int memfd_part(const char *name, const char *part, uint64_t size)
{
	char mname[160];
	snprintf(mname, sizeof(mname), "shmbus:%s:%s", name, part);
	int fd = memfd_create(mname, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return shmbus_err(-errno, "topic '%s': memfd_create: %s", name, strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		close(fd);
		return shmbus_err(-e, "topic '%s': ftruncate memfd to %" PRIu64 ": %s", name, size,
				  strerror(e));
	}
	int e = posix_fallocate(fd, 0, (off_t)size);
	if (e) {
		close(fd);
		return shmbus_err(-e, "topic '%s': cannot reserve %" PRIu64 " bytes: %s", name,
				  size, strerror(e));
	}
	return fd;
}

/* Map part A of fda and part B of fdb side by side: a reservation of the whole size first,
 * so that the two fixed mappings land on address space that is ours. */
static void *map_parts(int fda, int fdb, uint64_t rtab_off, uint64_t size, int log_ro)
{
	void *m = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return m;
	int pa = log_ro ? PROT_READ : PROT_READ | PROT_WRITE;
	if (mmap(m, rtab_off, pa, MAP_SHARED | MAP_FIXED, fda, 0) == MAP_FAILED ||
	    mmap((uint8_t *)m + rtab_off, size - rtab_off, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, fdb, 0) == MAP_FAILED) {
		int e = errno;
		munmap(m, size);
		errno = e;
		return MAP_FAILED;
	}
	return m;
}

static int seal(int fd, const char *name)
{
	if (fcntl(fd, F_ADD_SEALS, SEALS_NEEDED | F_SEAL_SEAL) < 0)
		return shmbus_err(-errno, "topic '%s': sealing memfd: %s", name, strerror(errno));
	return 0;
}

int shmbus_seg_create_memfds(const char *name, const struct shmbus_seg_opts *o, int *fda,
			     int *fdb)
{
	uint64_t size, off[SEG_NOFF];
	int rc = shmbus_seg_opts_check(o, &size);
	if (rc < 0)
		return rc;
	layout(o->max_publishers, o->max_readers, o->max_groups, o->max_pending, o->capacity, off,
	       &size);
	int a = memfd_part(name, "log", off[OFF_RTAB]);
	if (a < 0)
		return a;
	int b = memfd_part(name, "readers", size - off[OFF_RTAB]);
	if (b < 0) {
		close(a);
		return b;
	}
	void *m = map_parts(a, b, off[OFF_RTAB], size, 0);
	if (m == MAP_FAILED) {
		rc = shmbus_err(-errno, "topic '%s': mmap: %s", name, strerror(errno));
		goto fail;
	}
	seg_init(m, name, o, size);
	munmap(m, size);
	if ((rc = seal(a, name)) < 0 || (rc = seal(b, name)) < 0)
		goto fail;
	*fda = a;
	*fdb = b;
	return 0;
fail:
	close(a);
	close(b);
	return rc;
}

/* fd's size, and that it cannot shrink. */
static int part_check(int fd, const char *name, const char *part, uint64_t *size)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return shmbus_err(-errno, "topic '%s': fstat of its %s: %s", name, part,
				  strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return shmbus_err(-EPROTO, "topic '%s': its %s is a %s, not memory", name, part,
				  shmbus_seg_ftype(sb.st_mode));
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & SEALS_NEEDED) != SEALS_NEEDED)
		return shmbus_err(-EPERM, "topic '%s': its %s is not sealed against shrinking "
				  "(a mapping of it could fault); refusing it", name, part);
	*size = (uint64_t)sb.st_size;
	return 0;
}

int shmbus_seg_open_fds(struct shmbus_seg *seg, int fda, int fdb, int log_ro, const char *name)
{
	memset(seg, 0, sizeof(*seg));
	uint64_t sa = 0, sbsz = 0;
	int rc = part_check(fda, name, "log", &sa);
	if (rc < 0 || (rc = part_check(fdb, name, "reader table", &sbsz)) < 0)
		return rc;
	struct shmbus_topic_hdr h;
	memset(&h, 0, sizeof(h));
	if (pread(fda, &h, sizeof(h), 0) < 0)
		return shmbus_err(-errno, "topic '%s': read: %s", name, strerror(errno));
	if (h.rtab_off != sa)
		return shmbus_err(-EBADMSG, "topic '%s': its log is %" PRIu64 " bytes, the header "
				  "says %" PRIu64, name, sa, h.rtab_off);
	if ((rc = shmbus_seg_validate(seg, &h, sa + sbsz, name)) < 0 ||
	    (rc = rtab_validate(fdb, 0, &h, name)) < 0)
		return rc;
	void *m = map_parts(fda, fdb, sa, seg->size, log_ro);
	if (m == MAP_FAILED)
		return shmbus_err(-errno, "topic '%s': mmap of %zu bytes: %s", name, seg->size,
				  strerror(errno));
	seg_view(seg, m);
	seg->log_ro = log_ro;
	return 0;
}
