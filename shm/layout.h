/* SPDX-License-Identifier: MIT */
/*
 * The on-disk (in-shm) layout of a topic file. Every process that maps a topic relies on
 * these offsets, so each is pinned with a _Static_assert. Only fixed-width integers and
 * fixed arrays: no pointers, no size_t, no bool. See docs/layout.md.
 *
 *   part A (the log):     [ header: 4 KiB ][ publisher slots ][ log (capacity) ]
 *   part B (the readers): [ reader table header: 4 KiB ][ reader slots ][ group slots ]
 *                         [ pending entries: max_groups x max_pending ]
 *
 * All regions start on a 4 KiB boundary; the log is a power of two. Part A is written by
 * publishers only, part B by readers too: so that a subscriber can be given part A
 * read-only (brokered mode: two sealed memfds, mapped side by side), everything a reader
 * writes (its slot, its group's cursor, the wake and space words, the table marks) is in
 * part B. In file mode both parts are one file, A then B. The format of the records in the
 * log is the ring's: ring/record.h.
 */
#ifndef SHMBUS_SHM_LAYOUT_H
#define SHMBUS_SHM_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define SHMBUS_MAGIC 0x53554254424d4853ull /* "SHMBTBUS" little-endian */
#define SHMBUS_LAYOUT_VERSION 4u
#define SHMBUS_RTAB_MAGIC 0x42415452424d4853ull /* "SHMBRTAB": part B's header */
#define SHMBUS_READY 0x52454459u /* "YDER": written last, with a release store */

#define SHMBUS_CACHELINE 64
#define SHMBUS_HEADER_SIZE 4096u
#define SHMBUS_REGION_ALIGN 4096u

/* Slot owner word: state in the high 32 bits, pid in the low 32. 0 = free. */
#define SHMBUS_SLOT_ACTIVE 1ull
/* A reader slot being reclaimed, or a publisher slot whose claim is being repaired, by the
 * pid in the low bits. If that pid dies, the next one takes over. */
#define SHMBUS_SLOT_RECLAIM 3ull
#define SHMBUS_OWNER(state, pid) (((uint64_t)(state) << 32) | (uint32_t)(pid))
#define SHMBUS_OWNER_PID(w) ((int32_t)(uint32_t)(w))
#define SHMBUS_OWNER_STATE(w) ((uint32_t)((w) >> 32))

/* "No position": a group member that holds nothing, a publisher with no claim. */
#define SHMBUS_NOPOS UINT64_MAX

/* "No sequence": a reader whose next sequence is not known yet. */
#define SHMBUS_NOSEQ UINT64_MAX

/*
 * A group cursor's second word: the sequence expected next, modulo 2^48 (SHMBUS_CSEQ_NONE:
 * not known yet, a group created "from earliest" before its first read), and in the top 16
 * bits a *tag*: 1 + the reader slot of an acknowledging member whose take moved the cursor
 * last and that may not have said so in its slot yet, or 0. Whoever moves the cursor from
 * a tagged word first confirms the take in that slot (ring/ack.h, shmbus_ack_confirm()):
 * so the slot's taken_seq, or the cursor itself, always tells whether a member that died
 * around its cursor CAS took the message.
 */
#define SHMBUS_CSEQ_MASK ((UINT64_C(1) << 48) - 1)
#define SHMBUS_CSEQ_NONE SHMBUS_CSEQ_MASK
static inline uint64_t shmbus_cseq(uint64_t w)
{
	return w & SHMBUS_CSEQ_MASK;
}
static inline uint32_t shmbus_ctag(uint64_t w)
{
	return (uint32_t)(w >> 48);
}
static inline uint64_t shmbus_cword(uint64_t seq, uint32_t tag)
{
	return (seq & SHMBUS_CSEQ_MASK) | (uint64_t)tag << 48;
}
/* The whole sequence a cursor word stands for, given the tail's (it is never behind the
 * tail by 2^48), or SHMBUS_NOSEQ. */
static inline uint64_t shmbus_cseq_full(uint64_t w, uint64_t tail_seq)
{
	if (shmbus_cseq(w) == SHMBUS_CSEQ_NONE)
		return SHMBUS_NOSEQ;
	return tail_seq - ((tail_seq - shmbus_cseq(w)) & SHMBUS_CSEQ_MASK);
}

/* One publisher slot: who it is and what it has claimed (written before the claim). */
struct shmbus_pub_slot {
	uint64_t owner;     /* SHMBUS_OWNER(ACTIVE, pid) or 0 */
	uint64_t starttime; /* /proc/<pid>/stat field 22 of the owner */
	uint64_t claim_pos; /* position it is claiming or holds uncommitted, or SHMBUS_NOPOS */
	uint64_t claim_end; /* end of that claim (padding included) */
	uint64_t claim_nmsg; /* sequence numbers that claim takes */
	uint64_t published; /* messages committed through this slot (stats) */
	uint64_t bytes;     /* payload bytes committed through this slot (stats) */
	uint64_t pad_[1];
};
_Static_assert(sizeof(struct shmbus_pub_slot) == 64, "pub slot size");

/* Reader slot flags. JOINED: the reader has its position (a fan-out reader) or its group
 * (a member), so everything published from now on reaches it; set with a release store
 * once the open is done. A slot taken but not yet joined is not counted as a reader. */
#define SHMBUS_RSLOT_JOINED 1u
/* An acknowledging member: what it holds is in its group's pending entries. */
#define SHMBUS_RSLOT_ACK 2u

/* One reader slot: a fan-out subscriber or a group member. Its own two cache lines. */
struct shmbus_reader_slot {
	uint64_t owner;     /* SHMBUS_OWNER(ACTIVE, pid) or 0 */
	uint64_t starttime; /* /proc/<pid>/stat field 22 of the owner */
	uint64_t pos;       /* fan-out: cursor (record read or being read); member: held record
	                     * or SHMBUS_NOPOS. Producers in block mode never pass it. */
	uint32_t group;     /* 0 = fan-out, else group index + 1 */
	uint32_t flags;     /* SHMBUS_RSLOT_* */
	uint64_t consumed;  /* messages received (stats) */
	uint64_t lost;      /* messages lost to overwrite (stats) */
	uint64_t next_seq;  /* fan-out: sequence expected next, for lag in messages (stats) */
	uint64_t pending;   /* an acknowledging member: its pending entries (ring/ack.h) */
	uint64_t taken_seq; /* ... and 1 + the sequence of the message it took last, mod 2^48:
			     * stored after its cursor CAS, by it or by whoever moves the
			     * cursor next (shmbus_ack_confirm()) */
	uint64_t floor;	    /* ... and the lowest position its pending entries name, or
			     * SHMBUS_NOPOS: block-mode publishers honour it (ring/ack.h) */
	uint64_t pad_[6];
};
_Static_assert(sizeof(struct shmbus_reader_slot) == 128, "reader slot size");
_Static_assert(offsetof(struct shmbus_reader_slot, pos) == 16, "reader pos offset");

#define SHMBUS_GROUP_FREE 0u
#define SHMBUS_GROUP_INIT 1u
#define SHMBUS_GROUP_ACTIVE 2u

/* One group: a shared cursor {position, next expected sequence}, moved by 16-byte CAS. */
struct shmbus_group_slot {
	uint64_t cursor[2] __attribute__((aligned(16))); /* [0] position, [1] shmbus_cword() */
	uint32_t state;                                   /* SHMBUS_GROUP_* */
	uint32_t pad0_;
	uint64_t lost;      /* messages the group lost to overwrite */
	uint64_t abandoned; /* messages held by members that died (not redelivered) */
	char name[48];
	/* A durable group's hold (CLOCK_MONOTONIC ns, 0 = none): until then block-mode
	 * publishers honour its cursor even with no live member (a restarting daemon's
	 * mirror). Renewed by the bridge; it simply expires. See docs/algorithm.md. */
	uint64_t lease_ns;
	uint64_t pad_[4];
	/* Acknowledging members (ring/ack.h): the group's options, fixed when it is made
	 * (written before state goes ACTIVE), and its counters. */
	uint32_t max_pending;	     /* entries the group may hold (<= the topic's) */
	uint32_t max_pending_member; /* ... one member may hold */
	uint32_t ack_wait_ms;
	uint32_t max_deliver;
	uint32_t nready; /* entries waiting for redelivery (read at every take, rarely set) */
	uint32_t ack_used; /* an acknowledging member ever joined: its entries matter */
	uint64_t redelivered;
	uint64_t dead_lettered;
	uint64_t pad2_[3];
	/* entries not free now (reserved, held or ready), kept only for a group limit below
	 * the table's size: then written twice per message by every member, so on a line of
	 * its own */
	uint32_t npending __attribute__((aligned(64)));
	uint32_t pad3_[15];
	char dead_letter[128]; /* topic for messages given up on, "" for none */
};
_Static_assert(sizeof(struct shmbus_group_slot) == 384, "group slot size");
_Static_assert(offsetof(struct shmbus_group_slot, npending) == 192, "group npending offset");
_Static_assert(offsetof(struct shmbus_group_slot, lease_ns) == 88, "group lease offset");
_Static_assert(offsetof(struct shmbus_group_slot, max_pending) == 128, "group ack offset");

/*
 * One pending entry (ring/ack.h): a message an acknowledging member took and did not ack
 * yet. ctl packs state, reason, deliveries, the holder's reader slot and a generation that
 * every free makes new (an ack names the generation it saw), moved by CAS.
 */
struct shmbus_pend {
	uint64_t ctl;
	uint64_t pos;	    /* the record's position (SHMBUS_NOPOS: none yet) */
	uint64_t seq;	    /* its sequence number */
	uint64_t due_ns;    /* CLOCK_MONOTONIC: held: ack deadline; ready: not before */
	uint64_t first_ns;  /* CLOCK_MONOTONIC of its first delivery */
	uint64_t owner;	    /* the holder's reader slot owner word (its pid) */
	uint64_t starttime; /* the holder's start time */
	uint64_t pad_;
};
_Static_assert(sizeof(struct shmbus_pend) == 64, "pending entry size");

/*
 * The topic header (first 4 KiB). Configuration first (immutable once ready), then the
 * hot words, each on its own pair of cache lines so a neighbour's prefetch never shares.
 */
struct shmbus_topic_hdr {
	/* immutable after ready */
	uint64_t magic;          /* SHMBUS_MAGIC */
	uint32_t version;        /* SHMBUS_LAYOUT_VERSION */
	uint32_t ready;          /* SHMBUS_READY once fully built (release store, last) */
	uint64_t file_size;      /* must equal fstat size */
	uint64_t capacity;       /* log bytes, power of two */
	uint32_t max_message;
	uint32_t policy;
	uint32_t max_readers;
	uint32_t max_groups;
	uint32_t max_publishers;
	uint32_t flags;
	uint64_t generation;     /* random id of this incarnation of the topic */
	uint64_t stamp_key;      /* XORed into commit words */
	uint64_t pubs_off;       /* offsets of the regions from the file start */
	uint64_t readers_off;
	uint64_t groups_off;
	uint64_t log_off;
	uint64_t created_ns;
	char name[128];
	/* rarely written: scan bound of the publisher table (highest slot ever used + 1) */
	uint32_t pubs_hwm;
	uint32_t max_pending; /* pending entries per group (immutable) */
	uint64_t rtab_off; /* where part B (the reader table header) starts */

	/* claim tail: {position, next sequence}, moved by one 16-byte CAS per claim */
	uint64_t tail[2] __attribute__((aligned(128)));
	uint8_t pad1_[128 - 16];

	/* (version 2 had the readers' wake word here, and the publishers' space word: both
	 * are written by readers, and are in part B from version 3) */
	uint64_t pending_off; /* where the pending entries start (immutable) */
	uint8_t pad2_[256 - 8];

	/* counters, written with relaxed atomic adds on slow-ish paths */
	uint64_t published;
	uint64_t bytes;
	uint64_t aborted;
	uint64_t backpressure_waits;
	uint64_t wakeups;
	uint64_t pad_reclaimed_; /* version 2's readers_reclaimed: in part B now */
	uint64_t pubs_reclaimed;
	uint8_t pad4_[4096 - 640 - 56];
};
_Static_assert(offsetof(struct shmbus_topic_hdr, magic) == 0, "magic offset");
_Static_assert(offsetof(struct shmbus_topic_hdr, version) == 8, "version offset");
_Static_assert(offsetof(struct shmbus_topic_hdr, ready) == 12, "ready offset");
_Static_assert(offsetof(struct shmbus_topic_hdr, name) == 112, "name offset");
_Static_assert(offsetof(struct shmbus_topic_hdr, tail) == 256, "tail offset");
_Static_assert(offsetof(struct shmbus_topic_hdr, rtab_off) == 248, "rtab offset");
_Static_assert(offsetof(struct shmbus_topic_hdr, pending_off) == 384, "pending offset");
_Static_assert(offsetof(struct shmbus_topic_hdr, published) == 640, "counters offset");
_Static_assert(sizeof(struct shmbus_topic_hdr) == SHMBUS_HEADER_SIZE, "header size");

/*
 * The reader table header: the first 4 KiB of part B. What readers write that is not their
 * own slot or their group's: the table marks, the group-creation lock, the wake words.
 */
struct shmbus_rtab_hdr {
	uint64_t magic;	     /* SHMBUS_RTAB_MAGIC */
	uint64_t generation; /* equals the header's: the two parts belong together */
	/* rarely written: scan bounds of the tables (highest slot ever used + 1), and the
	 * thread id holding the group-creation lock (0 = free) */
	uint32_t readers_hwm;
	uint32_t groups_hwm;
	uint32_t group_lock;
	uint32_t pad0_;
	uint64_t readers_reclaimed; /* reader slots freed after their process died */
	uint8_t pad1_[128 - 40];

	/* readers' sleep word: armed bits (a reader sleeps, now or lazily) and a wake count
	 * (ring/wake.h) */
	uint32_t wake;
	uint32_t pad_wake_;
	uint8_t pad2_[128 - 8];

	/* publishers' sleep word (block mode; readers bump it when they free space) and the
	 * count of waiting publishers */
	uint32_t space;
	uint32_t pub_waiters;
	uint8_t pad3_[128 - 8];

	uint8_t pad4_[4096 - 384];
};
_Static_assert(offsetof(struct shmbus_rtab_hdr, readers_hwm) == 16, "rtab hwm offset");
_Static_assert(offsetof(struct shmbus_rtab_hdr, readers_reclaimed) == 32, "rtab reclaimed");
_Static_assert(offsetof(struct shmbus_rtab_hdr, wake) == 128, "rtab wake offset");
_Static_assert(offsetof(struct shmbus_rtab_hdr, space) == 256, "rtab space offset");
_Static_assert(sizeof(struct shmbus_rtab_hdr) == SHMBUS_HEADER_SIZE, "rtab header size");

#endif /* SHMBUS_SHM_LAYOUT_H */
