/* SPDX-License-Identifier: MIT */
/* Topic patterns, as the bridge and sinks use them (include/shmbus.h, "topic patterns"). */
#include <errno.h>
#include <string.h>

#include "bus/intree.h"
#include "shm/err.h"

static int tok_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

SHMBUS_API int shmbus_pattern_check(const char *pattern)
{
	if (!pattern)
		return shmbus_err(-EINVAL, "no topic pattern");
	const char *p = pattern;
	size_t n = strlen(pattern);
	if (!n)
		return shmbus_err(-EINVAL, "empty topic pattern");
	if (n > SHMBUS_TOPIC_NAME_MAX)
		return shmbus_err(-EINVAL, "topic pattern '%.60s...' is longer than %d bytes",
				  pattern, SHMBUS_TOPIC_NAME_MAX);
	if (!strncmp(p, "$sys.", 5))
		p += 5;
	for (;;) {
		size_t t = strcspn(p, ".");
		if (t == 0)
			return shmbus_err(-EINVAL, "topic pattern '%s' has an empty token",
					  pattern);
		if (t == 1 && *p == '>') {
			if (p[1])
				return shmbus_err(-EINVAL,
						  "topic pattern '%s': '>' must be the last token",
						  pattern);
			return 0;
		}
		if (!(t == 1 && *p == '*'))
			for (size_t i = 0; i < t; i++)
				if (!tok_char((unsigned char)p[i]))
					return shmbus_err(-EINVAL,
							  "topic pattern '%s': bad character '%c' "
							  "(tokens are A-Z a-z 0-9 _ -, or * or >)",
							  pattern, p[i]);
		if (!p[t])
			return 0;
		p += t + 1;
	}
}

int shmbus_pattern_wild(const char *pattern)
{
	for (const char *p = pattern; *p; p++)
		if ((*p == '*' || *p == '>') && (p == pattern || p[-1] == '.') &&
		    (p[1] == '.' || !p[1]))
			return 1;
	return 0;
}

SHMBUS_API int shmbus_pattern_match(const char *pattern, const char *topic)
{
	if (topic[0] == '$' && pattern[0] != '$')
		return 0;
	const char *p = pattern, *t = topic;
	for (;;) {
		size_t pl = strcspn(p, "."), tl = strcspn(t, ".");
		if (pl == 1 && *p == '>')
			return tl > 0; /* one or more tokens left */
		if (!(pl == 1 && *p == '*') && (pl != tl || memcmp(p, t, pl)))
			return 0;
		if (!tl)
			return 0;
		p += pl;
		t += tl;
		if (!*p || !*t)
			return !*p && !*t;
		p++;
		t++;
	}
}
