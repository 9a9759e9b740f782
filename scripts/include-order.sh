#!/bin/sh
# SPDX-License-Identifier: MIT
#
# scripts/include-order.sh DIR PREFIX MODULE...: fail when a file of DIR includes a module
# of DIR that is not below it. MODULEs are DIR's modules lowest first (a module is
# MODULE.c and MODULE.h); a module may include "PREFIX/X.h" only for an X listed before
# it, or itself. A file of DIR that is no listed module fails too, so that a new file
# takes its place in the order. Run by the build (daemon/meson.build): an include that
# would make a cycle fails `meson compile`.
set -u
dir=$1
prefix=$2
shift 2
order=" $* "
bad=0
for f in "$dir"/*.c "$dir"/*.h; do
	[ -e "$f" ] || continue
	base=$(basename "$f")
	mod=${base%.*}
	case $order in
	*" $mod "*) ;;
	*)
		echo "$f: not a module of the include order in $0's caller; add it where it belongs" >&2
		bad=1
		continue
		;;
	esac
	# The modules listed before mod, and mod itself.
	allowed=" ${order%%" $mod "*} $mod "
	for inc in $(sed -n "s|^[[:space:]]*#[[:space:]]*include[[:space:]]*\"$prefix/\([a-z_0-9]*\)\.h\".*|\1|p" "$f"); do
		case $allowed in
		*" $inc "*) ;;
		*)
			echo "$f: includes $prefix/$inc.h, which is not below $mod (order:$order)" >&2
			bad=1
			;;
		esac
	done
done
exit $bad
