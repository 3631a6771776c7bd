"""Process-wide CPU memory reuse: keep freed tensor memory in the heap instead of handing it back to the kernel.

PyTorch's CPU tensors come from ``malloc``. glibc serves every request above its mmap threshold (at most 32 MiB)
with a fresh ``mmap`` and returns it with ``munmap`` when freed, so each large activation (a 32 x 1024 x 1024
float map is 128 MiB; Panini-Net makes dozens per face) is new memory the kernel must fault in and zero page by
page. On the 2-core machine of the README's "CPU efficiency against GFPGAN" that was 2.4 M page faults and 5.1 s
of kernel time per PaniniNet face as issue 15 found it, and is 0.4 M and 1.0 s with the in-place CPU forwards.
:func:`reuse_freed_memory` sets glibc's ``M_MMAP_MAX`` to 0 (large blocks come from the heap too) and
``M_TRIM_THRESHOLD`` to SIZE_MAX (freed heap memory is never trimmed; an int threshold, at most 2 GiB, is exceeded
by a batch of four faces), so the next face reuses the pages of the last one: the same effect as running under
jemalloc or tcmalloc, the allocators PyTorch's CPU tuning guide recommends, without preloading a library.

The cost: the process keeps the memory of its largest moment until it exits (resident memory does not shrink
between faces), and the setting applies to the whole process. So the library never calls it by itself: the
command-line tool does (``inference_panini.py`` on CPU, unless ``--no_memory_reuse``), and an application that
restores many faces on CPU can call it once at start-up. Outside glibc (macOS, Windows, musl) it does nothing
and returns False.
"""
import ctypes
import sys

_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_MAX = -4
_NEVER = -1  # mallopt takes an int; glibc stores the trim threshold as size_t, so -1 is SIZE_MAX: never trim
_applied = False


def _glibc():
    """The C library as a ctypes handle when it is glibc (it has ``gnu_get_libc_version``), else None."""
    if not sys.platform.startswith('linux'):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (AttributeError outside glibc)
        return libc
    except (OSError, AttributeError):
        return None


def reuse_freed_memory():
    """Make freed memory stay in the process for reuse (glibc ``mallopt``), for the whole process.

    Idempotent. Call it once, before the first large allocation if possible (blocks mapped before stay mapped
    until freed).

    Returns:
        bool: True if the setting is in effect (glibc accepted both options), False where it cannot apply.
    """
    global _applied
    if _applied:
        return True
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _applied = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _NEVER) == 1
    return _applied


def freed_memory_reused():
    """Whether :func:`reuse_freed_memory` is in effect in this process."""
    return _applied


__all__ = ['reuse_freed_memory', 'freed_memory_reused']
