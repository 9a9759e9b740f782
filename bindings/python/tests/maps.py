# SPDX-License-Identifier: MIT
"""Where a buffer's memory lives: is it inside a mapping of a topic file?"""


def address(buf):
    """The address of a buffer's first byte (numpy reads it without keeping the buffer)."""
    import numpy as np

    return np.frombuffer(buf, dtype=np.uint8).__array_interface__["data"][0]


def mapped_file(addr):
    """The file mapped at addr in this process, or None (anonymous memory, heap)."""
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= addr < hi:
                return parts[5].strip() if len(parts) == 6 else None
    return None
