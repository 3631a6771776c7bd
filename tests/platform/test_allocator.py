"""panininet.platform.allocator: freed tensor memory is kept and reused (glibc), checked in a fresh process."""
import subprocess
import sys
import textwrap

import pytest

from panininet.platform.allocator import _glibc

SCRIPT = textwrap.dedent('''
    import resource, sys, torch
    from panininet.platform.allocator import freed_memory_reused, reuse_freed_memory
    if sys.argv[1] == 'reuse':
        assert reuse_freed_memory() and reuse_freed_memory() and freed_memory_reused()
    def faults_of_a_fresh_256_mib_tensor():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = torch.ones(64 * 2**20)  # written once: every page is touched
        after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        del t
        return after - before
    faults_of_a_fresh_256_mib_tensor()
    print(min(faults_of_a_fresh_256_mib_tensor() for _ in range(3)))
''')


def _faults(mode):
    proc = subprocess.run([sys.executable, '-c', SCRIPT, mode], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1])


@pytest.mark.skipif(_glibc() is None, reason='needs glibc (mallopt)')
def test_a_freed_block_is_reused_without_page_faults():
    default, reused = _faults('default'), _faults('reuse')
    # glibc default: the 256 MiB are mapped anew each time (65536 faults of 4 KiB pages, ~128 with huge pages)
    assert default >= 100
    assert reused * 20 < default


def test_outside_glibc_it_does_nothing(monkeypatch):
    import panininet.platform.allocator as allocator
    monkeypatch.setattr(allocator, '_glibc', lambda: None)
    monkeypatch.setattr(allocator, '_applied', False)
    assert allocator.reuse_freed_memory() is False and not allocator.freed_memory_reused()
