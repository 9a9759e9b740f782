/* SPDX-License-Identifier: MIT */
/*
 * Per-topic access ([access PATTERN] sections of shmbusd's config, daemon/config.h): who may
 * subscribe to, publish to, create and remove a topic, and the owner, group, mode and POSIX
 * ACL its file gets. The first section in file order whose pattern matches a topic decides;
 * a topic no section matches is the daemon's, with the bus's group and mode.
 *
 * Rights: root and the daemon's own euid may do everything. Otherwise the mode's bits, as a
 * file's (the owner's bits to the owner, the group's to its members, the others' to the
 * rest): r = subscribe, w = publish; the publish and subscribe lists add to them. create:
 * those in the create list, else those who may publish. remove: the owner.
 *
 * The evaluator reads the config only, never the file: in brokered mode the daemon asks it
 * before handing out a descriptor; in file mode the kernel enforces the file's attributes
 * (acl_apply_fd), which are coarser (docs/security.md: "Per-topic access (shmbusd)").
 */
#ifndef SHMBUSD_ACL_H
#define SHMBUSD_ACL_H

#include <stddef.h>
#include <sys/types.h>

#include "daemon/config.h"

#define ACL_SUBSCRIBE 1u
#define ACL_PUBLISH 2u
#define ACL_CREATE 4u
#define ACL_REMOVE 8u

struct acl_peer {
	uid_t uid;
	gid_t gid;
	const gid_t *groups; /* supplementary groups (SO_PEERGROUPS), may hold gid */
	int ngroups;
	pid_t pid;
};

/*
 * Which of want does peer have on topic? Returns the subset granted. why (may be NULL) gets
 * a human reason for anything refused, e.g. "uid 65534 (nobody) may not publish to
 * 'orders.x' ([access orders.>] at FILE:LINE: owner root, group root, mode 0640, publish =
 * user:alice)"; "" when everything wanted is granted.
 */
unsigned acl_rights(const struct shmbusd_config *c, const char *topic, const struct acl_peer *p,
		    unsigned want, char *why, size_t whylen);

/* The owner, group and mode a topic's file gets (mode: the section's, rw bits only). */
void acl_file_attrs(const struct shmbusd_config *c, const char *topic, uid_t *owner, gid_t *group,
		    mode_t *mode);

/*
 * Apply owner, group and mode (acl_file_attrs) and the publish and subscribe lists (as POSIX
 * ACL entries granting rw: one file holds a topic's log and its reader table, so a reader
 * writes too) to an open topic file. 0 or -errno, with the reason in why.
 */
int acl_apply_fd(const struct shmbusd_config *c, const char *topic, int fd, char *why,
		 size_t whylen);

/* ---- in the daemon (file mode) ---- */

struct daemon;

/*
 * Apply the running config's access to the topic file fname ("NAME.topic") in the bus
 * directory: opened without following symlinks, regular files with one link only (or
 * two while the library's temporary name for it still exists). $sys.* topics are left as
 * they are. A failure is an "access_failed" event. 0, or -errno.
 */
int acl_apply_file(struct daemon *d, const struct shmbusd_config *c, const char *fname);

/* acl_apply_file() for every topic file of the bus (at start and after a reload). */
void acl_apply_all(struct daemon *d);

/* Say on $sys.log that peer was refused want on topic ("access_denied", with why). */
void acl_denied_event(struct daemon *d, const char *topic, const struct acl_peer *p, unsigned want,
		      const char *why);

#endif
