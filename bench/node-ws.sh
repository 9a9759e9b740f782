#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench/node-ws.sh DIR: make node's `ws` package available in DIR/node_modules (a directory
# under the build tree; never committed) for the bridge benchmark's Node peer. Installs it
# with npm from the registry only if it is not there yet. Exit 0 when it is there, 77 when
# node or npm is missing or the registry cannot be reached (the benchmark then skips that
# peer and says so).
set -u
DIR=$1
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "node-ws: node or npm is not installed" >&2
	exit 77
fi
if [ -f "$DIR/node_modules/ws/package.json" ]; then
	exit 0
fi
mkdir -p "$DIR" || exit 77
if ! npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error ws@8 >&2; then
	echo "node-ws: npm could not install ws (no registry?)" >&2
	exit 77
fi
[ -f "$DIR/node_modules/ws/package.json" ] || exit 77
