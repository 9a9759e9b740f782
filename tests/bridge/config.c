/* SPDX-License-Identifier: MIT */
/*
 * The bridge's config sections: every mistake is refused by `shmbusd --check` (and so at
 * start) with FILE:LINE and a reason that says what to write instead; a good file passes.
 * usage: bridge_config PATH-TO-SHMBUSD
 */
#include "bridge_helpers.h"

static const char *shmbusd;
static char path[512], errpath[512];

/* Run --check on text; returns its exit status, stderr into err. */
static int check(const char *text, char *err, size_t len)
{
	t_write(path, "%s", text);
	char *argv[] = { (char *)shmbusd, (char *)"--check", (char *)"--config", path, NULL };
	pid_t pid = t_spawn(&(struct t_cmd){ .argv = argv, .out = "/dev/null", .err = errpath });
	int st = t_reap(pid, 10000, "shmbusd --check");
	t_read(errpath, err, len);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void bad(const char *text, int line, const char *reason)
{
	char err[4096], want[600];
	int rc = check(text, err, sizeof(err));
	snprintf(want, sizeof(want), "%s:%d: ", path, line);
	if (rc != 1 || !strstr(err, want) || !strstr(err, reason)) {
		fprintf(stderr, "FAIL: exit %d, want 1 with '%s' and '%s'; got: %s\n---\n%s\n", rc,
			want, reason, err, text);
		exit(1);
	}
	printf("  line %d: %s", line, strstr(err, want) + strlen(want));
}

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	shmbusd = argv[1];
	const char *dir = t_private_dir("brc");
	snprintf(path, sizeof(path), "%s/c.conf", dir);
	snprintf(errpath, sizeof(errpath), "%s/err", dir);
	char err[4096];
	int rc =
		check("[mirror m]\ntopics = orders.* , audit.>\nto = redis://u:p@127.0.0.1:6379/1\n"
		      "mode = stream\nkey = bus.{topic}\nmaxlen = 100000\nwindow = 256\n"
		      "[mirror w]\ntopics = >\nto = ws://127.0.0.1:9000/in\nformat = json\n"
		      "[import i]\nfrom = redis://127.0.0.1/0/ext\ntopic = ext.in\nstart = latest\n"
		      "[websocket]\nlisten = 127.0.0.1:8080\npublish = cmd.*\nmax_queue = 64K\n",
		      err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "a good file was refused: %s\n", err);
		return 1;
	}
	printf("a good file is accepted; mistakes are refused:\n");
	bad("[mirror m]\ntopics = a\n", 1, "no 'to'");
	bad("[mirror m]\nto = redis://h\n", 1, "no 'topics'");
	bad("[mirror m]\n\n", 1, "the section has no keys");
	bad("[mirror m]\ntopics = a\nto = rediss://h\n", 3, "TLS is not supported");
	bad("[mirror m]\ntopics = a..b\nto = redis://h\n", 2, "empty token");
	bad("[mirror m]\ntopics = a.*\nto = redis://h\nkey = fixed\n", 1, "has no {topic}");
	bad("[mirror m]\ntopics = a\nto = redis://h\nkey = x{oops}\n", 4, "only placeholder");
	bad("[mirror m]\ntopics = a\nto = redis://h\nformat = json\n", 1,
	    "format and ack are for ws://");
	bad("[mirror m]\ntopics = a\nto = ws://h/x\nmaxlen = 5\n", 1, "for redis:// mirrors");
	bad("[mirror m]\ntopics = a\nto = redis://h\nmode = pubsub\nmaxlen = 5\n", 1,
	    "maxlen is for mode = stream");
	bad("[mirror m]\ntopics = a\nto = redis://h\nwindow = 0\n", 4, "window '0'");
	bad("[mirror m]\ntopics = a\nto = redis://h\ncolour = red\n", 4, "unknown key 'colour'");
	bad("[mirror m]\ntopics = a\nto = redis://h\nuser = bob\n", 1, "needs a password");
	bad("[mirror a.b]\ntopics = a\nto = redis://h\n", 2, "one token");
	bad("[mirror m]\ntopics = a\ntopics = b\nto = redis://h\n", 3, "set twice");
	bad("[mirror m]\ntopics = a\nto = ws://h/x\nack = peer\n", 1, "needs format = json");
	bad("[import i]\nfrom = redis://h\ntopic = t\n", 2, "no stream key");
	bad("[import i]\nfrom = redis://h/k\n", 1, "no 'topic'");
	bad("[import i]\nfrom = redis://h/k\ntopic = $sys.x\n", 3, "reserved");
	bad("[websocket]\nlisten = localhost:80\n", 2, "not a numeric IP address");
	bad("[websocket]\nlisten = 127.0.0.1\n", 2, "not ADDRESS:PORT");
	bad("[websocket]\npublish = a\n", 1, "no 'listen'");
	bad("[websocket]\nlisten = 127.0.0.1:1\nmax_queue = 10\n", 3, "max_queue");
	bad("[bridge]\nx = 1\n", 2, "unknown section [bridge]");
	/* Words from a fixed list, timing, credentials and loops, for both kinds. */
	bad("[mirror m]\ntopics = a\nto = redis://h\nmode = list\n", 4,
	    "mode 'list' is neither 'stream' nor 'pubsub'");
	bad("[mirror m]\ntopics = a\nto = ws://h/x\nformat = xml\n", 4,
	    "format 'xml' is neither 'binary' nor 'json'");
	bad("[mirror m]\ntopics = a\nto = ws://h/x\nack = all\n", 4,
	    "ack 'all' is neither 'none' nor 'peer'");
	bad("[import i]\nfrom = redis://h/k\ntopic = t\nstart = now\n", 4,
	    "start 'now' is neither 'earliest' nor 'latest'");
	bad("[mirror m]\ntopics = a\nto = redis://h\ntimeout_ms = 5\n", 4,
	    "timeout_ms: not a number from 10 to 3600000");
	bad("[mirror m]\ntopics = a\nto = redis://h\nbackoff_min_ms = 500\nbackoff_max_ms = 100\n",
	    1, "[mirror m]: backoff_min_ms is above backoff_max_ms");
	bad("[import i]\nfrom = redis://h/k\ntopic = t\nbackoff_min_ms = 500\n"
	    "backoff_max_ms = 100\n",
	    1, "[import i]: backoff_min_ms is above backoff_max_ms");
	bad("[import i]\nfrom = redis://h/k\ntopic = t\nuser = bob\n", 1,
	    "[import i]: user 'bob' needs a password");
	bad("[import i]\nfrom = redis://h/k\ntopic = t\norigin = \n", 4, "origin: empty");
	bad("[mirror m]\ntopics = ext.*\nto = redis://127.0.0.1\n"
	    "[import i]\nfrom = redis://127.0.0.1/k\ntopic = ext.in\nskip_own = no\n",
	    4, "topic 'ext.in' is mirrored back to the same Redis by [mirror m]");
	/* The user of the URL needs the password of the URL or of the section. */
	CHECK(check("[import i]\nfrom = redis://bob:pw@h/k\ntopic = t\n", err, sizeof(err)) == 0);
	CHECK(check("[import i]\nfrom = redis://bob@h/k\ntopic = t\nuser = ann\n", err,
		    sizeof(err)) == 0);
	printf("ok\n");
	return 0;
}
