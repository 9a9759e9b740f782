/* SPDX-License-Identifier: MIT */
/*
 * shmbus: the command-line tool of the shmbus bus. Global options, then one verb; each
 * verb lives in its own file (topics.c: topics/create/rm, stat.c, tail.c, pub.c,
 * doctor.c) and uses only the public API of include/shmbus.h.
 */
#include <getopt.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/version.h"

static const struct {
	const char *name;
	tool_verb_fn fn;
} verbs[] = {
	{ "topics", tool_topics }, /* topics.c */
	{ "create", tool_create }, /* topics.c */
	{ "rm", tool_rm },	   /* topics.c */
	{ "pub", tool_pub },	   /* pub.c */
	{ "tail", tool_tail },	   /* tail.c */
	{ "stat", tool_stat },	   /* stat.c */
	{ "doctor", tool_doctor }, /* doctor.c */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmbus [--bus NAME] VERB [options] [arguments]\n"
		"\n"
		"Inspect and use a shmbus bus: topics are lock-free rings in shared-memory files.\n"
		"\n"
		"verbs:\n"
		"  topics              list the topics of the bus\n"
		"  stat [TOPIC...]     live rates, totals, readers and groups of topics\n"
		"  tail TOPIC          print messages as they arrive\n"
		"  pub TOPIC [MSG...]  publish each MSG, or each line of stdin\n"
		"  create TOPIC        create a topic\n"
		"  rm TOPIC...         remove topics\n"
		"  doctor              check the bus, its topics and the daemon\n"
		"Each verb takes --help.\n"
		"\n"
		"options:\n"
		"  -b, --bus NAME      the bus to use (default: $SHMBUS_BUS, or \"default\")\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"environment:\n"
		"  SHMBUS_DIR          where buses live (default /dev/shm/shmbus)\n"
		"  SHMBUS_BUS          the bus when --bus is not given\n"
		"\n"
		"exit status:\n"
		"  0  success\n"
		"  1  runtime failure (a bus or topic that does not exist, an invalid topic file,\n"
		"     no space, a timeout...)\n"
		"  2  usage error (unknown verb or option; a missing, malformed or out-of-range\n"
		"     argument, such as a topic or bus name that can never be one)\n"
		"\n"
		"topics, stat, doctor and tail only look: they create nothing (a mistyped bus is\n"
		"an error) and do not register with shmbusd (no attach or detach in $sys.log).\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "bus", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	opterr = 0;
	/* '+': stop at the verb, whose options are its own. */
	while ((opt = getopt_long(argc, argv, "+:b:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			tool_bus_name = optarg;
			break;
		case 'h':
			usage(stdout);
			return TOOL_OK;
		case 'V':
			printf("shmbus %s\n", SHMBUS_TOOL_VERSION);
			return TOOL_OK;
		default:
			if (opt == ':')
				fprintf(stderr, "shmbus: option '%s' needs a value\n",
					argv[optind - 1]);
			else
				fprintf(stderr, "shmbus: unknown option '%s'\n", argv[optind - 1]);
			fprintf(stderr, "Try 'shmbus --help'.\n");
			return TOOL_USAGE;
		}
	}
	if (optind == argc) {
		usage(stderr);
		return TOOL_USAGE;
	}
	int first = optind;
	const char *verb = argv[first];
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strcmp(verb, verbs[i].name) == 0) {
			/* optind = 0 makes glibc's getopt start afresh on the verb's arguments. */
			optind = 0;
			return verbs[i].fn(argc - first, argv + first);
		}
	}
	fprintf(stderr, "shmbus: unknown verb '%s'\nTry 'shmbus --help'.\n", verb);
	return TOOL_USAGE;
}
