/* SPDX-License-Identifier: MIT */
/*
 * Shared by the example programs: the payload they exchange, argument parsing helpers and
 * a monotonic clock. The payload starts with a header naming its publisher and that
 * publisher's message counter, and the rest of it is a pattern derived from both, so a
 * subscriber can check that every message is whole, in order and never seen twice.
 */
#ifndef SHMBUS_EXAMPLES_COMMON_H
#define SHMBUS_EXAMPLES_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <shmbus.h>

/* Message types. */
#define EX_TYPE_DATA 1
/* End of the stream (no payload to check): a subscriber that takes one stops reading. Each
 * member of a group takes its own, so a group of N members is ended by N of them, published
 * once every data message is in: the group's cursor hands them out after all the data. */
#define EX_TYPE_END 2

struct ex_payload {
	uint32_t publisher; /* --id of the publisher */
	uint32_t size;	    /* total payload size, header included */
	uint64_t counter;   /* this publisher's message number, from 0 */
};

#define EX_MIN_SIZE ((uint32_t)sizeof(struct ex_payload))

static inline uint8_t ex_pattern(uint32_t publisher, uint64_t counter, size_t i)
{
	return (uint8_t)(publisher * 131u + counter * 7u + i);
}

/* Fill buf (size bytes, >= EX_MIN_SIZE) with the message counter of publisher. */
static inline void ex_fill(void *buf, uint32_t size, uint32_t publisher, uint64_t counter)
{
	struct ex_payload h = { .publisher = publisher, .size = size, .counter = counter };
	uint8_t *b = buf;

	memcpy(b, &h, sizeof(h));
	for (size_t i = sizeof(h); i < size; i++)
		b[i] = ex_pattern(publisher, counter, i);
}

/* Check a received payload; on success store its header in *h. Returns 0 or -1. */
static inline int ex_check(const void *data, uint32_t len, struct ex_payload *h)
{
	const uint8_t *b = data;

	if (len < EX_MIN_SIZE)
		return -1;
	memcpy(h, b, sizeof(*h));
	if (h->size != len)
		return -1;
	for (size_t i = sizeof(*h); i < len; i++)
		if (b[i] != ex_pattern(h->publisher, h->counter, i))
			return -1;
	return 0;
}

static inline uint64_t ex_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Parse a non-negative integer with an optional K/M/G suffix (powers of 1024). */
static inline int ex_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	uint64_t mul = 1;

	errno = 0;
	if (!s || !*s || *s == '-')
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		mul = 1ull << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mul = 1ull << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mul = 1ull << 30;
		end++;
		break;
	}
	if (*end || (v && mul > UINT64_MAX / v))
		return -1;
	*out = v * mul;
	return 0;
}

/* Topic options shared by the examples: they must agree for shmbus_topic_create(). */
static inline void ex_topic_opts(shmbus_topic_opts_t *o, uint64_t capacity, int overwrite)
{
	shmbus_topic_opts_init(o);
	o->capacity = capacity;
	o->policy = overwrite ? SHMBUS_OVERWRITE : SHMBUS_BLOCK;
}

/* Create the topic unless it exists with the same options. Returns 0 or -1 (printed). */
static inline int ex_topic_ensure(shmbus_bus_t *bus, const char *prog, const char *topic,
				  const shmbus_topic_opts_t *o)
{
	int rc = shmbus_topic_create(bus, topic, o);

	if (rc < 0) {
		fprintf(stderr, "%s: cannot create topic '%s': %s (%s)\n", prog, topic,
			strerror(-rc), shmbus_errmsg());
		return -1;
	}
	return 0;
}

#endif /* SHMBUS_EXAMPLES_COMMON_H */
