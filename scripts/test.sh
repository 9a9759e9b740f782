#!/bin/sh
# SPDX-License-Identifier: MIT
#
# scripts/test.sh: install what is missing, build shmbus three ways and run the test suite:
#   1. build-ci    debugoptimized, -Werror                 all suites
#   2. build-asan  ASan + UBSan, -Werror                    all suites
#   3. build-tsan  ThreadSanitizer, -Werror                 suite 'concurrency'
# Every stage runs even if an earlier one failed; the exit status is non-zero if any failed.
# Each stage's time is printed. Meant for a fresh Debian 12 machine and for CI (.ci/run).
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

"$ROOT/scripts/setup.sh" || exit 1

# The sanitizers of gcc 12 / LLVM 14 map their shadow memory at fixed addresses and fail
# ("unexpected memory mapping", or endless DEADLYSIGNAL) when the kernel randomises mmap
# with more bits than they expect (vm.mmap_rnd_bits = 32 on recent kernels). Running the
# sanitized tests with address randomisation off avoids that whatever the kernel's setting.
NORAND=""
if setarch "$(uname -m)" -R true 2>/dev/null; then
	NORAND="setarch $(uname -m) -R"
fi

# setup_dir DIR OPTIONS...: configure DIR, or reconfigure it if it is already a build dir
# (wiping it if reconfiguring fails, e.g. after a meson upgrade).
setup_dir() {
	dir=$1
	shift
	if [ -f "$dir/meson-private/coredata.dat" ]; then
		meson setup --reconfigure "$dir" "$@" ||
			meson setup --wipe "$dir" "$@"
	else
		rm -rf "$dir"
		meson setup "$dir" "$@"
	fi
}

FAILED=""
SUMMARY=""

# stage NAME COMMAND...: run a command, time it, remember its result.
stage() {
	name=$1
	shift
	echo
	echo "==== $name"
	t0=$(date +%s)
	"$@"
	rc=$?
	t1=$(date +%s)
	if [ $rc -eq 0 ]; then
		result="ok"
	else
		result="FAILED (exit $rc)"
		FAILED="$FAILED $name"
	fi
	line=$(printf '%-12s %5ss  %s' "$name" $((t1 - t0)) "$result")
	echo "==== $line"
	SUMMARY="$SUMMARY$line
"
}

stage_ci() {
	setup_dir build-ci --buildtype=debugoptimized -Dwerror=true &&
		meson compile -C build-ci &&
		meson test -C build-ci --print-errorlogs
}

stage_asan() {
	setup_dir build-asan --buildtype=debugoptimized -Dwerror=true \
		-Db_sanitize=address,undefined -Db_lundef=false &&
		meson compile -C build-asan &&
		$NORAND meson test -C build-asan --print-errorlogs --timeout-multiplier 3
}

stage_tsan() {
	setup_dir build-tsan --buildtype=debugoptimized -Dwerror=true \
		-Db_sanitize=thread -Db_lundef=false &&
		meson compile -C build-tsan &&
		$NORAND meson test -C build-tsan --print-errorlogs --timeout-multiplier 3 \
			--suite concurrency
}

START=$(date +%s)
stage build-ci stage_ci
stage build-asan stage_asan
stage build-tsan stage_tsan
END=$(date +%s)

echo
echo "==== summary"
printf '%s' "$SUMMARY"
printf '%-12s %5ss\n' "total" $((END - START))
if [ -n "$FAILED" ]; then
	echo "FAILED:$FAILED"
	exit 1
fi
echo "all stages passed"
