# SPDX-License-Identifier: MIT
"""Print where the extension module goes: install_dir.py PREFIX MESON_DEFAULT.

Meson's default if this interpreter reads it, or it reads nothing under PREFIX; otherwise
the first *-packages directory of sys.path under PREFIX, preferring one not under
PREFIX/local (Debian's /usr/local is a prefix of its own).
"""
import sys

prefix, default = sys.argv[1].rstrip("/"), sys.argv[2]
dirs = [d for d in sys.path if d.startswith(prefix + "/") and d.endswith("-packages")]
plain = [d for d in dirs if not d[len(prefix):].startswith("/local/")]
print(default if default in dirs or not dirs else (plain or dirs)[0])
