#!/bin/sh
# SPDX-License-Identifier: MIT
#
# scripts/main.sh: install what is missing, build shmbus (build/, release unless build/ is
# already configured otherwise), then run the main job. Until the daemon exists, that is:
#   1. examples/demo.sh under shmbusd (its built-in default config): publisher and
#      subscriber processes exchanging messages, one subscriber killed with SIGKILL on
#      purpose and reaped by the daemon, the daemon's events; publisher and subscriber
#      processes exchanging messages on a
#      private bus, printing per-process counts and rates and the aggregate rate;
#   2. the quick benchmark (bench/spsc --quick): shmbus against a bare shared-memory ring,
#      a Unix socket and memcpy, as a table with the targets met or missed.
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
echo "==== benchmark: build/bench/spsc --quick (JSON in build/bench-spsc-quick.json)"
build/bench/spsc --quick --json build/bench-spsc-quick.json
