#!/bin/sh
# SPDX-License-Identifier: MIT
#
# scripts/main.sh: install what is missing, build shmbus (build/, release unless build/ is
# already configured otherwise), then run the main job:
#   1. examples/demo.sh under shmbusd (its built-in default config): publisher and
#      subscriber processes exchanging messages on a private bus, each printing its counts
#      and rate, then the aggregate rate (of busy processes sharing the CPUs: a demo, not a
#      measurement, as it says); one more subscriber stops reading, holding the publishers
#      back, and is killed with SIGKILL on purpose; the daemon frees its slot and logs the
#      crash, and the daemon's events are shown;
#   2. the quick benchmark suite (bench/shmbus-bench --quick, under two minutes on 2 cores):
#      shmbus against a bare shared-memory ring, memcpy, pipes, Unix sockets, ZeroMQ and a
#      private Redis, as a table with every shmbus figure as a ratio to each peer and the
#      targets met or missed; the table, JSON and PNG plots in build/bench-results/ (the
#      plots' data in its data/), listed at the end of the report.
# Exits non-zero if the build, the demo or the benchmark fails.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

"$ROOT/scripts/setup.sh"

echo
echo "==== build (build/)"
# A build/ configured already (maybe by a developer) keeps its options.
if [ ! -f build/meson-private/coredata.dat ]; then
	rm -rf build
	meson setup build --buildtype=release
fi
meson compile -C build
buildtype=$(meson introspect --buildoptions build |
	python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "buildtype"))')
if [ "$buildtype" != release ]; then
	echo "note: build/ is a '$buildtype' build; benchmark figures are for that build type"
fi

echo
echo "==== demo: examples/demo.sh"
"$ROOT/examples/demo.sh" -b build/examples -d build/daemon/shmbusd

echo
echo "==== benchmark: build/bench/shmbus-bench --quick (results in build/bench-results/)"
build/bench/shmbus-bench --quick --out build/bench-results
