"""glibc's allocator told to keep freed memory, so a CPU training step stops paying page faults.

Why: torch's CPU tensors come from `malloc`. glibc serves blocks above its mmap threshold
(128 KiB at start, raised as blocks are freed, at most 32 MiB) with a fresh `mmap` and gives
them back with `munmap` on `free`, and returns the heap's free top to the system past its trim
threshold. A conv step makes and frees dozens of activations and gradients of 1-6 MB each, so
every step faults its memory in again, page by page, and zeroes it: on a 2-core AMD EPYC VM
(torch 2.14.1, batch 128) `seed-conv`'s fp32 step took 9.5 ms, and 3.2 ms with the two
thresholds raised; `conv` medium 25 -> 13 ms, `seed-deepconv` 29.5 -> 21 ms, `seed-ae` 1.44 ->
1.31 ms. Kernels that touch fresh pages were the ones that looked slow in a profile
(`threshold_backward`, `fill_`, max-pooling's backward), not the products.

The setting is process-wide and stays once made (glibc has no way to read it back): a process
that trains on the CPU keeps up to its peak working set in its heap instead of handing it back
between steps, which is what a training process wants. It changes where memory comes from,
never what is computed. Elsewhere than glibc (musl, macOS, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30  # free heap top kept up to 1 GiB
MMAP_THRESHOLD = 1 << 25  # blocks up to 32 MiB (glibc's own ceiling) from the heap, not from mmap


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds for this process; whether the allocator took them.

    Idempotent: setting the same values again changes nothing."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    took_trim = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    took_mmap = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return bool(took_trim and took_mmap)
