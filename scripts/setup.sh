#!/bin/sh
# SPDX-License-Identifier: MIT
#
# scripts/setup.sh: install the Debian 12 packages that shmbus's build, tests, examples and
# benchmarks need, and only those that are missing. Runs apt-get update only when something
# must be installed; uses sudo only when not root. Safe to run again and again.
set -eu

# build: meson ninja-build pkg-config gcc libc6-dev (gcc only recommends it) and the
#   libraries (libck-dev; liburing-dev, libjemalloc-dev, libinih-dev, libacl1-dev (POSIX
#   ACLs on topic files, for [access] sections) and libsystemd-dev (readiness
#   notification) for the daemon).
# tests: python3-pytest (bindings); clang + libclang-rt-14-dev for sanitizer builds with clang
#   (gcc-12's own libasan8/libubsan1/libtsan2 come with gcc through libgcc-12-dev);
#   procps (ps, pgrep in tests and scripts); util-linux (setarch, for TSan).
# bridge: libhiredis-dev (the Redis protocol codec) and libwslay-dev (the WebSocket frame
#   codec) for shmbusd's bridge; redis-server (real Redis peers in the bridge tests, and
#   redis-benchmark, from its dependency redis-tools, for the bridge benchmark);
#   python3-websockets (real WebSocket clients in the bridge tests, run by /usr/bin/python3).
# benchmarks (bench/): the peers shmbus is measured against in the same run:
#   libzmq3-dev (ZeroMQ ipc:// PUSH/PULL and PUB/SUB), redis-server (Redis Pub/Sub and
#   Streams on 127.0.0.1, started and stopped by the suite) with libhiredis-dev as its
#   client; iceoryx and libiceoryx-binding-c-dev (iceoryx 2 shared-memory pub/sub through its
#   C binding; the suite starts and stops its iox-roudi daemon); nats-server and libnats-dev
#   (NATS core pub/sub on 127.0.0.1, the server started and stopped by the suite);
#   valgrind (callgrind: instructions per message, repeatable on a noisy machine,
#   and valgrind/callgrind.h for the client requests); linux-perf (exact syscall counts
#   through the raw_syscalls tracepoint); gnuplot-nox (the PNG plots). Without one of them
#   the suite still runs and reports that peer or measurement as absent.
# python bindings (bindings/python): python3-dev (Python.h and the python3 pkg-config file for
#   Debian's /usr/bin/python3, the interpreter the module is built for); python3-numpy (the
#   tests publish and read numpy arrays through the buffer protocol); python3-mypy (the tests
#   check the type stubs against the module with stubtest, and the examples with mypy).
# benchmarks: redis-server and python3-redis (bindings/python/bench.py measures redis-py on a
#   local redis-server it starts, next to multiprocessing's queues, pipes and shared memory).
# With --node, also nodejs and npm: only the bridge benchmark's WebSocket peer (node's `ws`,
#   fetched from the npm registry into the build tree by bench/node-ws.sh) needs them; the
#   tests and scripts/main.sh do not, and without them that peer is reported as skipped.
PACKAGES="meson ninja-build pkg-config gcc libc6-dev libck-dev liburing-dev libjemalloc-dev
libinih-dev libacl1-dev libsystemd-dev python3-pytest clang libclang-rt-14-dev procps util-linux
libhiredis-dev libwslay-dev redis-server python3-websockets
libzmq3-dev iceoryx libiceoryx-binding-c-dev nats-server libnats-dev
valgrind linux-perf gnuplot-nox
python3-dev python3-numpy python3-mypy python3-redis"
if [ "${1:-}" = "--node" ]; then
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
		PACKAGES="$PACKAGES nodejs npm"
fi

missing=""
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -z "$missing" ]; then
	echo "setup: all build and test packages are installed"
	exit 0
fi

echo "setup: installing:$missing"
if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "setup: not root and no sudo; install these packages as root:$missing" >&2
	exit 1
fi
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO apt-get update
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
