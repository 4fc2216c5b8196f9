"""Big blocks go back to the system as soon as they are freed: a fixed mmap threshold for glibc's malloc.

glibc serves a request of at least its mmap threshold with a mapping of its own, unmapped at free(); but the
threshold starts at 128 KiB and rises to the size of the largest such block freed, after which blocks of
that size come from the heaps and stay there when freed (a heap gives memory back only from its top).
Each password check (scrypt, appliance/web/auth.py) takes 16 MB: a few wrong logins on threads of their own
left the runtime 32 MB larger for good, and a hostile client decides how many come. A fixed threshold
(mallopt M_MMAP_THRESHOLD also turns the rising off) keeps every block from BIG_BLOCK up in mappings of its
own. Below it nothing changes: frames (640x480x3 is 0.9 MB) and the store's buffers are smaller. Setting
the threshold also fixes glibc's trim threshold (the free space at a heap's top it keeps rather than give
back), which would otherwise stay at 128 KiB: it is set to what glibc's own rising would have made it,
twice the threshold, so buffers freed and taken again each frame are not given back in between.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
BIG_BLOCK = 4 * 1024 * 1024


def return_big_blocks(threshold: int = BIG_BLOCK) -> bool:
    """Set glibc's mmap threshold to `threshold` (and its trim threshold to twice that) for this process;
    False where the C library is not glibc (musl maps big blocks on its own) or refuses."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        log.debug("no glibc mallopt (%s): big blocks left to the C library", name)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_TRIM_THRESHOLD, 2 * threshold))
