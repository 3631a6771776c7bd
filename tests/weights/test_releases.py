"""Weights resolution: folders, offline messages, recorded checksums (nothing downloads here)."""
import os
import os.path as osp
import urllib.error

import pytest
import torch

from panininet.weights import releases as weights
from panininet.weights.panini_checkpoint import prepare_model_file
from panininet.weights.releases import (
    RELEASES,
    WeightsNotFoundError,
    resolve_model_path,
    verify_recorded_checksum,
    weights_root,
)


def test_weights_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    monkeypatch.delenv(weights.ENV_WEIGHTS_DIR, raising=False)
    assert weights_root() == str(tmp_path / 'home' / '.cache' / 'panininet')
    monkeypatch.setenv(weights.ENV_WEIGHTS_DIR, str(tmp_path / 'env'))
    assert weights_root() == str(tmp_path / 'env')
    assert weights_root(str(tmp_path / 'arg')) == str(tmp_path / 'arg')


@pytest.mark.parametrize('version', ['mfr', 'sr16'])
def test_missing_release_message(tmp_path, version):
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_model_path(version, weights_dir=str(tmp_path), allow_download=False)
    msg = str(info.value)
    release = RELEASES[version]
    assert release.file_name in msg
    assert release.gdrive_id in msg
    assert osp.join(str(tmp_path), release.file_name) in msg


def test_failed_download_message(monkeypatch, tmp_path):
    def offline(url, dest, **kwargs):
        raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')

    monkeypatch.setattr(weights, '_atomic_download', offline)
    with pytest.raises(WeightsNotFoundError, match='name resolution') as info:
        resolve_model_path('mfr', weights_dir=str(tmp_path), allow_download=True)
    assert 'panini_mfr_latest.pth' in str(info.value)
    assert not any(tmp_path.iterdir())


def test_download_records_checksum_then_verifies(monkeypatch, tmp_path):
    def fake(url, dest, **kwargs):
        with open(dest, 'wb') as f:
            f.write(b'weights')

    monkeypatch.setattr(weights, '_atomic_download', fake)
    path = resolve_model_path('sr16', weights_dir=str(tmp_path), allow_download=True)
    assert osp.isfile(path + '.sha256')
    assert resolve_model_path('sr16', weights_dir=str(tmp_path), allow_download=False) == path
    with open(path, 'ab') as f:  # a later truncated/replaced file is caught
        f.write(b'!')
    with pytest.raises(WeightsNotFoundError, match='checksum'):
        verify_recorded_checksum(path)


def test_drive_release_downloads_through_gdown(monkeypatch, tmp_path):
    """The authors' Drive files go to gdown by id, into a temp file that is renamed only when complete."""
    import gdown

    calls = []

    def fake_download(id=None, output=None, **kwargs):  # noqa: A002  (gdown's own argument name)
        calls.append((id, output))
        assert osp.dirname(output) == str(tmp_path) and not output.endswith('panini_mfr_latest.pth')
        with open(output, 'wb') as f:
            f.write(b'weights')
        return output

    monkeypatch.setattr(gdown, 'download', fake_download)
    path = resolve_model_path('mfr', weights_dir=str(tmp_path), allow_download=True)
    assert calls == [(RELEASES['mfr'].gdrive_id, calls[0][1])]
    assert path == str(tmp_path / 'panini_mfr_latest.pth') and open(path, 'rb').read() == b'weights'
    assert osp.isfile(path + '.sha256')


@pytest.mark.parametrize('failure', ['gdown_error', 'empty_file'])
def test_failed_drive_download_is_one_message_and_leaves_nothing(monkeypatch, tmp_path, failure):
    import gdown
    import gdown.exceptions

    def fake_download(id=None, output=None, **kwargs):  # noqa: A002
        if failure == 'gdown_error':
            raise gdown.exceptions.FileURLRetrievalError('Failed to retrieve file url: Too many users')
        open(output, 'wb').close()

    monkeypatch.setattr(gdown, 'download', fake_download)
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_model_path('sr16', weights_dir=str(tmp_path), allow_download=True)
    msg = str(info.value)
    assert 'panini_sr_latest.pth' in msg and ('Too many users' in msg or 'no file' in msg)
    assert not any(tmp_path.iterdir())


def test_explicit_model_path(tmp_path):
    with pytest.raises(WeightsNotFoundError, match='no such file'):
        resolve_model_path('mfr', model_path=str(tmp_path / 'missing.pth'))
    f = tmp_path / 'model.pth'
    torch.save({'params_ema': {'w': torch.ones(2)}, 'arch': {'in_size': 64}}, f)
    assert resolve_model_path('mfr', model_path=str(f)) == str(f)
    sd, arch = prepare_model_file(str(f), weights_dir=str(tmp_path / 'root'))
    assert torch.equal(sd['w'], torch.ones(2)) and arch == {'in_size': 64}
    assert not os.path.exists(tmp_path / 'root')  # our format is not cached again
