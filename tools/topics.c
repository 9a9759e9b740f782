/* SPDX-License-Identifier: MIT */
/* The verbs that manage topics: topics (list), create, rm. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

/* ---- topics ---- */

struct topic_row {
	char name[SHMBUS_TOPIC_NAME_MAX + 1];
	int rc; /* < 0: the file could not be read; err says why */
	char err[512];
	shmbus_topic_opts_t opts;
	shmbus_topic_stats_t st;
};

struct topic_list {
	shmbus_bus_t *bus;
	struct topic_row *rows;
	size_t n, cap;
};

static int collect(const char *name, void *arg)
{
	struct topic_list *l = arg;
	struct topic_row r;

	memset(&r, 0, sizeof(r));
	snprintf(r.name, sizeof(r.name), "%s", name);
	r.rc = shmbus_topic_info(l->bus, name, &r.opts);
	if (r.rc == 0)
		r.rc = shmbus_topic_stats(l->bus, name, &r.st);
	if (r.rc == -ENOENT)
		return 0; /* removed since the directory was read */
	if (r.rc < 0)
		snprintf(r.err, sizeof(r.err), "%s", tool_topic_why(name, r.rc));
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct topic_row *nr = realloc(l->rows, cap * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		l->rows = nr;
		l->cap = cap;
	}
	l->rows[l->n++] = r;
	return 0;
}

static void topics_json(const struct topic_list *l)
{
	printf("[");
	for (size_t i = 0; i < l->n; i++) {
		const struct topic_row *r = &l->rows[i];
		printf("%s\n  {\"name\": ", i ? "," : "");
		tool_json_str(stdout, r->name);
		if (r->rc < 0) {
			printf(", \"error\": ");
			tool_json_str(stdout, r->err);
			printf("}");
			continue;
		}
		printf(", \"policy\": \"%s\", \"capacity\": %" PRIu64 ", \"max_message\": %" PRIu32
		       ", \"max_readers\": %" PRIu32 ", \"max_groups\": %" PRIu32
		       ", \"max_publishers\": %" PRIu32 ", \"max_pending\": %" PRIu32
		       ", \"publishers\": %" PRIu32 ", \"readers\": %" PRIu32
		       ", \"published\": %" PRIu64 ", \"bytes\": %" PRIu64 "}",
		       tool_policy_name(r->opts.policy), r->opts.capacity, r->opts.max_message,
		       r->opts.max_readers, r->opts.max_groups, r->opts.max_publishers,
		       r->opts.max_pending, r->st.publishers, r->st.readers, r->st.published,
		       r->st.bytes);
	}
	printf("%s]\n", l->n ? "\n" : "");
}

static void topics_table(const struct topic_list *l)
{
	int w = 5; /* strlen("TOPIC") */

	for (size_t i = 0; i < l->n; i++) {
		int len = (int)strlen(l->rows[i].name);
		if (len > w)
			w = len;
	}
	printf("%-*s  %-9s  %8s  %8s  %4s  %4s  %12s\n", w, "TOPIC", "POLICY", "CAPACITY",
	       "MAX MSG", "PUBS", "RDRS", "PUBLISHED");
	for (size_t i = 0; i < l->n; i++) {
		const struct topic_row *r = &l->rows[i];
		char cap[TOOL_UNIT_LEN], mm[TOOL_UNIT_LEN];

		if (r->rc < 0) {
			printf("%-*s  invalid: %s\n", w, r->name, r->err);
			continue;
		}
		printf("%-*s  %-9s  %8s  %8s  %4" PRIu32 "  %4" PRIu32 "  %12" PRIu64 "\n", w,
		       r->name, tool_policy_name(r->opts.policy),
		       tool_fmt_size(cap, r->opts.capacity), tool_fmt_size(mm, r->opts.max_message),
		       r->st.publishers, r->st.readers, r->st.published);
	}
}

static const char topics_help[] =
	"usage: shmbus topics [--json]\n"
	"\n"
	"One line per topic of the bus: name, policy, capacity and largest message (powers\n"
	"of 1024: 64M, 4K), publishers, readers, messages published. A topic file that is\n"
	"not valid is listed as invalid, with the reason, and makes the exit status 1.\n"
	"The bus must exist; topics creates nothing and does not register with shmbusd.\n"
	"\n"
	"  --json      a JSON array of objects instead (sizes and counts in bytes and units)\n"
	"  -h, --help  show this help\n";

int tool_topics(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct topic_list l = { 0 };
	int json = 0, opt, ret = TOOL_FAILED;

	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(topics_help, stdout);
			return TOOL_OK;
		default:
			return tool_bad_option("topics", opt, argv);
		}
	}
	if (optind < argc)
		return tool_usage("topics", "unexpected argument '%s'", argv[optind]);
	ret = tool_bus_open("topics", SHMBUS_BUS_LOOK, &l.bus);
	if (ret)
		return ret;
	ret = TOOL_FAILED;
	int rc = shmbus_topic_foreach(l.bus, collect, &l);
	if (rc < 0) {
		/* The library's reason names the bus directory. */
		tool_fail("topics", rc, rc != -ENOMEM, "cannot list the topics");
		goto out;
	}
	if (json)
		topics_json(&l);
	else
		topics_table(&l);
	ret = TOOL_OK;
	for (size_t i = 0; i < l.n; i++) {
		if (l.rows[i].rc < 0) {
			fprintf(stderr, "shmbus topics: topic '%s': %s\n", l.rows[i].name,
				l.rows[i].err);
			ret = TOOL_FAILED;
		}
	}
out:
	free(l.rows);
	shmbus_bus_close(l.bus);
	return ret;
}

/* ---- create ---- */

static const char create_help[] =
	"usage: shmbus create TOPIC [options]\n"
	"\n"
	"Create a topic. If it exists with the same options, say so and succeed; if it\n"
	"exists with other options, fail (exit 1). SIZEs take K, M, G or T (powers of 1024);\n"
	"a value out of its range is a usage error (exit 2).\n"
	"\n"
	"  -c, --capacity SIZE       ring size, a power of two, 4K..1T (default 1M)\n"
	"  -m, --max-message SIZE    largest message, 1 .. capacity/2 - 64, at most 1G\n"
	"                            (default capacity/8)\n"
	"  -p, --policy POLICY       block (publishers wait for readers; default) or\n"
	"                            overwrite (readers that fall a lap behind lose messages)\n"
	"  -r, --max-readers N       reader slots, subscribers and group members, 1..4096\n"
	"                            (default 64)\n"
	"  -g, --max-groups N        group slots, 1..1024 (default 16)\n"
	"  -P, --max-publishers N    publisher slots, 1..4096 (default 64)\n"
	"      --max-pending N       messages each group's acknowledging members may\n"
	"                            hold unacked, 1..65536 (default 256; docs/acks.md)\n"
	"  -h, --help                show this help\n";

/*
 * The limits of shmbus_topic_opts_t as include/shmbus.h documents them, checked here so
 * that a value out of range is a usage error, said in the words of the option (the
 * library checks them again, in its own words, at create).
 */
#define CAPACITY_MIN (4ull << 10)
#define CAPACITY_MAX (1ull << 40)
#define MAX_MESSAGE_MAX (1ull << 30)
#define SLOTS_MAX 4096
#define GROUPS_MAX 1024
#define PENDING_MAX 65536

/* A slot count of create's option --opt, min..max. Returns 0, or TOOL_USAGE (reported). */
static int parse_slots(const char *opt, const char *arg, uint64_t min, uint64_t max, uint32_t *out)
{
	uint64_t v;

	if (tool_parse_u64(arg, max, &v) || v < min)
		return tool_usage("create", "bad --%s '%s': a number from %" PRIu64 " to %" PRIu64,
				  opt, arg, min, max);
	*out = (uint32_t)v;
	return 0;
}

int tool_create(int argc, char **argv)
{
	enum { OPT_MAX_PENDING = 256 };
	static const struct option longopts[] = {
		{ "capacity", required_argument, NULL, 'c' },
		{ "max-message", required_argument, NULL, 'm' },
		{ "policy", required_argument, NULL, 'p' },
		{ "max-readers", required_argument, NULL, 'r' },
		{ "max-groups", required_argument, NULL, 'g' },
		{ "max-publishers", required_argument, NULL, 'P' },
		{ "max-pending", required_argument, NULL, OPT_MAX_PENDING },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	shmbus_topic_opts_t o;
	const char *mm_arg = NULL, *cap_arg = "1M (the default)";
	uint64_t v;
	int opt;

	shmbus_topic_opts_init(&o);
	while ((opt = getopt_long(argc, argv, ":c:m:p:r:g:P:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (tool_parse_size(optarg, CAPACITY_MAX, &v) || v < CAPACITY_MIN ||
			    (v & (v - 1)))
				return tool_usage(
					"create",
					"bad --capacity '%s': a power of two from 4K to 1T, "
					"such as 64K or 16M",
					optarg);
			o.capacity = v;
			cap_arg = optarg;
			break;
		case 'm':
			if (tool_parse_size(optarg, MAX_MESSAGE_MAX, &v) || v == 0)
				return tool_usage("create",
						  "bad --max-message '%s': a size from 1 to "
						  "capacity/2 - 64, at most 1G",
						  optarg);
			o.max_message = (uint32_t)v;
			mm_arg = optarg;
			break;
		case 'p':
			if (strcmp(optarg, "block") == 0)
				o.policy = SHMBUS_BLOCK;
			else if (strcmp(optarg, "overwrite") == 0)
				o.policy = SHMBUS_OVERWRITE;
			else
				return tool_usage("create",
						  "bad --policy '%s' (block or overwrite)", optarg);
			break;
		case 'r':
			if (parse_slots("max-readers", optarg, 1, SLOTS_MAX, &o.max_readers))
				return TOOL_USAGE;
			break;
		case 'g':
			/* 1 and up: the library reads 0 as "the default". */
			if (parse_slots("max-groups", optarg, 1, GROUPS_MAX, &o.max_groups))
				return TOOL_USAGE;
			break;
		case 'P':
			if (parse_slots("max-publishers", optarg, 1, SLOTS_MAX, &o.max_publishers))
				return TOOL_USAGE;
			break;
		case OPT_MAX_PENDING:
			if (parse_slots("max-pending", optarg, 1, PENDING_MAX, &o.max_pending))
				return TOOL_USAGE;
			break;
		case 'h':
			fputs(create_help, stdout);
			return TOOL_OK;
		default:
			return tool_bad_option("create", opt, argv);
		}
	}
	if (argc - optind != 1)
		return tool_usage("create",
				  argc == optind ? "a TOPIC is needed" : "one TOPIC at a time");
	/* The largest message depends on the capacity, given before or after it. */
	uint64_t mm_max = o.capacity / 2 - 64;
	if (mm_max > MAX_MESSAGE_MAX)
		mm_max = MAX_MESSAGE_MAX;
	if (mm_arg && o.max_message > mm_max)
		return tool_usage("create",
				  "bad --max-message '%s': at most %" PRIu64
				  " bytes (capacity/2 - 64) with --capacity %s",
				  mm_arg, mm_max, cap_arg);
	const char *topic = argv[optind];
	int ret = tool_check_topic("create", topic, 0);
	if (ret)
		return ret;
	shmbus_bus_t *bus;
	ret = tool_bus_open("create", 0, &bus);
	if (ret)
		return ret;
	int rc = shmbus_topic_create(bus, topic, &o);
	if (rc < 0)
		ret = tool_fail_topic("create", topic, rc, "cannot create topic '%s'", topic);
	else if (rc == 1)
		printf("topic '%s' exists with these options\n", topic);
	else
		printf("topic '%s' created\n", topic);
	shmbus_bus_close(bus);
	return ret;
}

/* ---- rm ---- */

static const char rm_help[] =
	"usage: shmbus rm TOPIC...\n"
	"\n"
	"Remove topics. Processes that have one open keep using it until they close it;\n"
	"new opens fail. Each topic that cannot be removed is reported, and the exit\n"
	"status is then 1; the others are removed all the same.\n"
	"\n"
	"  -h, --help  show this help\n";

int tool_rm(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt, ret = TOOL_OK;

	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (opt != 'h')
			return tool_bad_option("rm", opt, argv);
		fputs(rm_help, stdout);
		return TOOL_OK;
	}
	if (optind == argc)
		return tool_usage("rm", "a TOPIC is needed");
	/* All names first: a malformed one removes nothing. */
	for (int i = optind; i < argc; i++)
		if (tool_check_topic("rm", argv[i], 1))
			return TOOL_USAGE;
	shmbus_bus_t *bus;
	ret = tool_bus_open("rm", 0, &bus);
	if (ret)
		return ret;
	for (int i = optind; i < argc; i++) {
		int rc = shmbus_topic_remove(bus, argv[i]);
		if (rc < 0)
			ret = tool_fail_topic("rm", argv[i], rc, "cannot remove topic '%s'",
					      argv[i]);
	}
	shmbus_bus_close(bus);
	return ret;
}
