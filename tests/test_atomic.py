"""Atomic writes: a failed write leaves the old file and no temporary behind."""
import os

import pytest

from panininet.atomic import atomic_path, new_file_mode, torch_save_atomic, write_text_atomic


def test_replaces_in_one_step_with_ordinary_permissions(tmp_path):
    dest = tmp_path / 'sub' / 'table.md'
    write_text_atomic(str(dest), 'old')
    write_text_atomic(str(dest), 'new')
    assert dest.read_text() == 'new'
    assert os.stat(dest).st_mode & 0o777 == new_file_mode()
    assert os.listdir(dest.parent) == ['table.md']


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    dest = tmp_path / 'net_g_3.pth'
    write_text_atomic(str(dest), 'complete')

    def write_half_then_die():
        with atomic_path(str(dest)) as tmp:
            assert tmp.endswith('.pth') and os.path.dirname(tmp) == str(tmp_path)
            with open(tmp, 'w') as f:
                f.write('half')
            raise RuntimeError('interrupted')

    with pytest.raises(RuntimeError, match='interrupted'):
        write_half_then_die()
    assert dest.read_text() == 'complete'
    assert os.listdir(tmp_path) == ['net_g_3.pth']


def test_torch_save_atomic_round_trip(tmp_path):
    import torch
    dest = tmp_path / 'x.pth'
    torch_save_atomic({'params': {'w': torch.ones(2)}}, str(dest))
    assert torch.load(dest, map_location='cpu', weights_only=True)['params']['w'].sum() == 2
