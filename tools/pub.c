/* SPDX-License-Identifier: MIT */
/* shmbus pub: publish arguments, or stdin lines, as messages of an existing topic. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

static const char pub_help[] =
	"usage: shmbus pub TOPIC [MESSAGE...] [options]\n"
	"\n"
	"Publish each MESSAGE argument as one message of TOPIC, in order; with no MESSAGE,\n"
	"publish each line of stdin (without its newline). The topic must exist (see\n"
	"shmbus create). A message longer than the topic's largest is reported with its\n"
	"argument or line number and not published; the others still are, and the exit\n"
	"status is 1. Prints nothing on success unless --verbose.\n"
	"\n"
	"  --type T            the type word of every message (default 0)\n"
	"  -t, --timeout MS    on a block topic, how long to wait for readers to make room\n"
	"                      (default -1: as long as it takes); exit 1 when it runs out\n"
	"  -v, --verbose       say how many messages were published\n"
	"  -h, --help          show this help\n";

struct pub_ctx {
	const char *topic;
	shmbus_pub_t *pub;
	uint32_t type;
	uint32_t max_message;
	int timeout_ms;
	uint64_t published;
	int oversize; /* messages refused as too long */
};

/*
 * Publish one message; what names it in errors ("argument 3", "line 12"). Returns 0 when
 * published or refused as too long (counted), or TOOL_FAILED when publishing must stop.
 */
static int pub_one(struct pub_ctx *c, const char *what, unsigned long n, const void *data,
		   size_t len)
{
	int rc = shmbus_publish(c->pub, data, len, c->type);

	if (rc == 0) {
		c->published++;
		return 0;
	}
	if (rc == -EMSGSIZE) {
		fprintf(stderr,
			"shmbus pub: topic '%s': %s %lu is %zu bytes, more than the topic's "
			"largest message (%" PRIu32 " %s); not published\n",
			c->topic, what, n, len, c->max_message,
			tool_plural(c->max_message, "byte", "bytes"));
		c->oversize++;
		return 0;
	}
	if (rc == -EAGAIN) {
		fprintf(stderr,
			"shmbus pub: topic '%s': no room for %s %lu within %d ms (readers are "
			"behind); %" PRIu64 " published before it\n",
			c->topic, what, n, c->timeout_ms, c->published);
		return TOOL_FAILED;
	}
	return tool_fail("pub", rc, 0, "topic '%s': cannot publish %s %lu", c->topic, what, n);
}

static int pub_stdin(struct pub_ctx *c)
{
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;
	ssize_t n;
	int ret = 0;

	while ((n = getline(&line, &cap, stdin)) >= 0) {
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			n--;
		ret = pub_one(c, "line", lineno, line, (size_t)n);
		if (ret)
			break;
	}
	if (!ret && ferror(stdin))
		ret = tool_fail("pub", -errno, 0, "cannot read stdin after line %lu", lineno);
	free(line);
	return ret;
}

int tool_pub(int argc, char **argv)
{
	enum { OPT_TYPE = 256 };
	static const struct option longopts[] = {
		{ "type", required_argument, NULL, OPT_TYPE },
		{ "timeout", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pub_ctx c = { .timeout_ms = -1 };
	int verbose = 0, opt;
	uint64_t v;

	while ((opt = getopt_long(argc, argv, ":t:vh", longopts, NULL)) != -1) {
		switch (opt) {
		case OPT_TYPE:
			if (tool_parse_u64(optarg, UINT32_MAX, &v))
				return tool_usage("pub", "bad --type '%s' (0..4294967295)", optarg);
			c.type = (uint32_t)v;
			break;
		case 't':
			if (tool_parse_ms(optarg, 1, &c.timeout_ms))
				return tool_usage("pub", "bad --timeout '%s' (milliseconds, or -1)",
						  optarg);
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			fputs(pub_help, stdout);
			return TOOL_OK;
		default:
			return tool_bad_option("pub", opt, argv);
		}
	}
	if (optind == argc)
		return tool_usage("pub", "a TOPIC is needed");
	c.topic = argv[optind++];
	int ret = tool_check_topic("pub", c.topic, 1);
	if (ret)
		return ret;

	shmbus_bus_t *bus;
	ret = tool_bus_open("pub", 0, &bus);
	if (ret)
		return ret;
	ret = TOOL_FAILED;
	int rc = shmbus_pub_open(&c.pub, bus, c.topic);
	if (rc < 0) {
		tool_fail_topic("pub", c.topic, rc, "cannot publish to topic '%s'", c.topic);
		goto out;
	}
	shmbus_topic_opts_t o;
	rc = shmbus_topic_info(bus, c.topic, &o);
	if (rc < 0) {
		tool_fail_topic("pub", c.topic, rc, "cannot read the options of topic '%s'",
				c.topic);
		goto out;
	}
	c.max_message = o.max_message;
	shmbus_pub_set_timeout(c.pub, c.timeout_ms);

	if (optind == argc) {
		ret = pub_stdin(&c);
	} else {
		ret = TOOL_OK;
		for (int i = optind; i < argc && !ret; i++)
			ret = pub_one(&c, "argument", (unsigned long)(i - optind + 1), argv[i],
				      strlen(argv[i]));
	}
	if (verbose)
		printf("published %" PRIu64 " %s to topic '%s'\n", c.published,
		       tool_plural(c.published, "message", "messages"), c.topic);
	if (!ret && c.oversize)
		ret = TOOL_FAILED;
out:
	shmbus_pub_close(c.pub);
	shmbus_bus_close(bus);
	return ret;
}
