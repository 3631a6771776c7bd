"""Data and weights preparation commands on tiny stand-ins in the real layouts; nothing is downloaded.

* scripts/prepare_ffhq.py: a stand-in ``ffhq-dataset-v2.json`` (the release's fields) listing tiny PNGs under the
  release's paths, fetched by a stand-in for gdown: download, flat size folders, resume, ``--check``.
* scripts/download_pretrained.py: stand-in release files through the package's downloader, names with the SHA-256
  prefix convention, ``--check``; every file the preflight points to this script for is one it knows.
* scripts/make_demo_faces.py: the demo set is complete, and a file rebuilt after a stop equals the first.
"""
import hashlib
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from helpers import load_script as load_repo_script

from panininet import preflight
from panininet.atomic import write_bytes_atomic
from panininet.weights import releases as weights_mod


def load_script(name):
    return load_repo_script(f'scripts/{name}.py')


def md5(data):
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def ffhq(tmp_path, monkeypatch):
    """A stand-in FFHQ release (3 training faces, 2 validation, 16 px) on a fake Drive; the script's fetcher."""
    mod = load_script('prepare_ffhq')
    drive, meta = {}, {}
    rng = np.random.default_rng(0)
    for i in range(5):
        data = cv2.imencode('.png', rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))[1].tobytes()
        file_id = f'id{i}'
        drive[file_id] = data
        meta[str(i)] = {'category': 'training' if i < 3 else 'validation', 'metadata': {'license': 'x'},
                        'image': {'file_url': f'https://drive.google.com/uc?id={file_id}',
                                  'file_path': f'images1024x1024/00000/{i:05d}.png', 'file_size': len(data),
                                  'file_md5': md5(data), 'pixel_size': [16, 16]}}
    json_data = json.dumps(meta).encode()
    drive['json'] = json_data
    monkeypatch.setattr(mod, 'JSON_SPEC', {'file_url': 'https://drive.google.com/uc?id=json',
                                           'file_path': 'ffhq-dataset-v2.json', 'file_size': len(json_data),
                                           'file_md5': md5(json_data)})
    calls = []

    def fake_fetch(url, dest):
        calls.append(url)
        file_id = mod.gdrive_id(url)
        if file_id in fake_fetch.fail:
            with open(dest, 'wb') as f:
                f.write(drive[file_id][:10])  # a cut-off transfer
            raise OSError('connection reset')
        with open(dest, 'wb') as f:
            f.write(fake_fetch.corrupt.get(file_id, drive[file_id]))

    fake_fetch.fail, fake_fetch.corrupt = set(), {}
    monkeypatch.setattr(mod, 'gdown_fetch', fake_fetch)
    return mod, str(tmp_path / 'ffhq'), calls, fake_fetch, drive


def listing(root):
    return sorted(osp.relpath(osp.join(r, f), root) for r, _, fs in os.walk(root) for f in fs)


def test_ffhq_download_sizes_check_and_resume(ffhq, capsys):
    mod, root, calls, fetcher, drive = ffhq
    assert mod.main(['--root', root, '--sizes', '16', '8']) == 0
    assert len(calls) == 4  # the json and the 3 training faces (not the validation split)
    assert listing(root) == ['ffhq-dataset-v2.json'] + [f'ffhq_16/{i:05d}.png' for i in range(3)] + [
        f'ffhq_8/{i:05d}.png' for i in range(3)] + [f'images1024x1024/00000/{i:05d}.png' for i in range(3)]
    with open(osp.join(root, 'ffhq_16', '00001.png'), 'rb') as f:
        assert f.read() == drive['id1']  # 16 = the release's size: the release's file itself
    assert cv2.imread(osp.join(root, 'ffhq_8', '00002.png')).shape == (8, 8, 3)
    capsys.readouterr()
    assert mod.main(['--root', root, '--sizes', '16', '8', '--check']) == 0
    assert '9 of 9 files in order (complete)' in capsys.readouterr().out
    # a second run fetches and writes nothing
    mtimes = {p: os.stat(osp.join(root, p)).st_mtime_ns for p in listing(root)}
    calls.clear()
    assert mod.main(['--root', root, '--sizes', '16', '8']) == 0
    assert calls == [] and {p: os.stat(osp.join(root, p)).st_mtime_ns for p in listing(root)} == mtimes
    # the validation split goes to its own folders
    assert mod.main(['--root', root, '--category', 'validation', '--limit', '1', '--sizes', '8']) == 0
    assert osp.isfile(osp.join(root, 'ffhq_8_validation', '00003.png'))
    assert not osp.exists(osp.join(root, 'ffhq_8_validation', '00004.png'))


def test_ffhq_interrupted_and_corrupt_downloads(ffhq, capsys):
    mod, root, calls, fetcher, drive = ffhq
    fetcher.fail = {'id1'}
    assert mod.main(['--root', root, '--sizes', '16']) == 2
    assert 'connection reset' in capsys.readouterr().err
    images = osp.join(root, 'images1024x1024', '00000')
    assert sorted(os.listdir(images)) == ['00000.png']  # no half file of the cut-off transfer
    fetcher.fail = set()
    fetcher.corrupt = {'id2': drive['id2'][:-1] + b'x'}  # right size, wrong MD5
    assert mod.main(['--root', root, '--sizes', '16']) == 2
    assert 'MD5 differs' in capsys.readouterr().err and not osp.exists(osp.join(images, '00002.png'))
    fetcher.corrupt = {}
    calls.clear()
    assert mod.main(['--root', root, '--sizes', '16']) == 0
    assert calls == ['https://drive.google.com/uc?id=id2']  # the one still missing (00001 came with the 2nd run)
    # a file damaged on disk (and its hard link in ffhq_16): --check names both, a run fetches and links it again
    with open(osp.join(images, '00000.png'), 'r+b') as f:
        f.truncate(20)
    capsys.readouterr()
    assert mod.main(['--root', root, '--sizes', '16', '--check']) == 1
    out = capsys.readouterr().out
    assert '00000/00000.png: size or MD5 differs' in out and 'ffhq_16/00000.png: not a 16 x 16 image' in out
    assert '4 of 6 files' in out
    assert mod.main(['--root', root, '--sizes', '16']) == 0
    assert mod.main(['--root', root, '--sizes', '16', '--check']) == 0


def test_ffhq_check_without_download_and_bad_arguments(ffhq, capsys):
    mod, root, calls, _, _ = ffhq
    assert mod.main(['--root', root, '--check']) == 1 and calls == []
    assert 'missing' in capsys.readouterr().out and not osp.exists(root)
    assert mod.main(['--root', root, '--sizes', '100']) == 2
    assert capsys.readouterr().err.startswith('Error: --sizes')


@pytest.fixture
def pretrained(tmp_path, monkeypatch):
    mod = load_script('download_pretrained')
    content = b'stand-in weights'
    name = f'tiny_official-{hashlib.sha256(content).hexdigest()[:8]}.pth'
    served = {}

    def fake_download(release, dest, opener=None, timeout=60):
        served.setdefault('calls', []).append(release.file_name)
        if release.file_name in served.get('offline', ()):
            raise OSError('Name or service not known')
        write_bytes_atomic(dest, served.get(release.file_name, content))

    monkeypatch.setattr(weights_mod, '_atomic_download', fake_download)
    monkeypatch.setitem(mod.GROUPS, 'tiny', [weights_mod.Release(name, 'https://example.invalid/' + name),
                                             weights_mod.Release('plain.pth', 'https://example.invalid/plain.pth')])
    return mod, str(tmp_path / 'pretrained'), name, served


def test_pretrained_download_check_and_hash_names(pretrained, capsys):
    mod, folder, name, served = pretrained
    assert mod.main(['tiny', '--dir', folder]) == 0
    assert sorted(os.listdir(folder)) == sorted([name, name + '.sha256', 'plain.pth', 'plain.pth.sha256'])
    assert mod.main(['tiny', '--dir', folder]) == 0 and len(served['calls']) == 2  # nothing fetched again
    capsys.readouterr()
    assert mod.main(['tiny', '--dir', folder, '--check']) == 0
    out = capsys.readouterr().out
    assert 'matches the SHA-256 prefix in its name' in out and 'recorded in plain.pth.sha256' in out
    with open(osp.join(folder, 'plain.pth'), 'ab') as f:
        f.write(b'!')
    assert mod.main(['tiny', '--dir', folder, '--check']) == 1
    assert 'plain.pth: differs' in capsys.readouterr().out


def test_pretrained_wrong_download_is_not_kept(pretrained, capsys):
    mod, folder, name, served = pretrained
    served[name] = b'something else'
    assert mod.main(['tiny', '--dir', folder]) == 1
    assert 'the download was removed' in capsys.readouterr().out
    assert not osp.exists(osp.join(folder, name))
    assert mod.main(['nonsense', '--dir', folder]) == 2
    served['offline'] = {name}
    capsys.readouterr()
    assert mod.main(['tiny', '--dir', folder]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'Error: {name}: It could not be downloaded: Name or service not known')
    assert 'https://example.invalid/' in err and len(err.splitlines()) == 1


def test_every_file_the_preflight_sends_to_the_script_is_one_it_gets():
    mod = load_script('download_pretrained')
    known = {r.file_name: group for group, releases in mod.GROUPS.items() for r in releases}
    for file_name, how in preflight.SOURCES.items():
        if how.startswith('python scripts/download_pretrained.py'):
            group = how.split()[2]
            assert known.get(file_name) == group, (file_name, how)
    # the options' names for the StyleGAN2 prior are BasicSR's release names
    assert {'stylegan2_ffhq_config_f_1024_official-3ab41b38.pth',
            'stylegan2_ffhq_config_f_1024_discriminator_official-a386354a.pth'} <= set(known)


def test_demo_faces_complete_and_resumable(tmp_path, capsys):
    mod = load_script('make_demo_faces')
    out = str(tmp_path / 'demo')
    args = ['--output', out, '--size', '16', '--num_train', '3', '--num_val', '2']
    assert mod.main(args + ['--check']) == 1
    assert mod.main(args) == 0
    assert mod.main(args + ['--check']) == 0
    first = cv2.imread(osp.join(out, 'train', '0001.png'))
    assert first.shape == (16, 16, 3) and first.std() > 10  # a face, not a flat patch
    os.remove(osp.join(out, 'train', '0001.png'))
    capsys.readouterr()
    assert mod.main(args) == 0 and '1 files written, 5 already there' in capsys.readouterr().out
    assert np.array_equal(cv2.imread(osp.join(out, 'train', '0001.png')), first)
    assert not np.array_equal(cv2.imread(osp.join(out, 'train', '0000.png')), first)  # augmented, not copies
