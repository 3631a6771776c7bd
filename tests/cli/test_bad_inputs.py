"""What the CLI does with every bad input a user brings (issue: "every bad input gets a clear message").

Usage problems (flags, -o, weights files) end the run before anything is written: exit status 2 and one line on
stderr that names the problem and what to do. Problems of single inputs are skipped with a warning and counted in
the summary; the exit status is 1 when something was skipped and photos were restored, 2 when nothing was. No case
may end in a traceback (an exception escaping ``main`` fails the test).
"""
import os
import os.path as osp
import shutil
import warnings

import cv2
import numpy as np
import pytest
import torch
from helpers import FAST, TINY_ARCH

from panininet.archs.panini_arch import PaniniNet

pytest.importorskip('dlib')


@pytest.fixture(scope='module')
def face(shared_dir):
    img = cv2.imread(osp.join(shared_dir, 'testdata', 'whole_imgs', 'Blake_Lively.jpg'))[:, 350:]
    return cv2.resize(img, (175, 232), interpolation=cv2.INTER_AREA)  # one face of about 60 px


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """Good and bad weights files: the good one, and one for each way a weights file can be unusable."""
    folder = tmp_path_factory.mktemp('weights')
    torch.manual_seed(0)
    good = folder / 'tiny.pth'
    torch.save({'params_ema': PaniniNet(**TINY_ARCH).state_dict(), 'arch': TINY_ARCH}, good)
    data = good.read_bytes()
    (folder / 'truncated.pth').write_bytes(data[:len(data) // 2])
    (folder / 'text.pth').write_text('this is not a checkpoint\n')
    ok, jpg = cv2.imencode('.jpg', np.full((8, 8, 3), 99, np.uint8))
    (folder / 'photo.jpg').write_bytes(jpg.tobytes())  # a photo given as --model_path
    other = dict(TINY_ARCH, narrow=0.5)
    torch.save({'params_ema': PaniniNet(**other).state_dict(), 'arch': TINY_ARCH}, folder / 'shapes.pth')
    torch.save({'params_ema': PaniniNet(**TINY_ARCH).state_dict(), 'arch': TINY_ARCH, 'extra': Unpicklable()},
               folder / 'unsafe.pth')
    return folder


class Unpicklable:
    """An object torch.load(weights_only=True) refuses to rebuild (it could run code)."""


def run(cli, capsys, argv):
    """main(argv) -> (exit status, stdout, stderr with the warnings the CLI prints appended)."""
    with warnings.catch_warnings(record=True) as caught:
        rc = cli.main(argv)
    out, err = capsys.readouterr()
    err += ''.join(f'{w.category.__name__}: {w.message}\n' for w in caught)
    assert 'Traceback' not in out + err
    return rc, out, err


def error_line(err):
    lines = [line for line in err.splitlines() if line.startswith('Error: ')]
    assert len(lines) == 1, err
    return lines[0]


USAGE_CASES = {
    # case: (extra argv, weights file name or None for the good one, words the message must contain)
    '-s 0': (['-s', '0'], None, ['-s 0', '> 0']),
    '-s -2': (['-s', '-2'], None, ['-s -2', '> 0']),
    '-w 1.5': (['-w', '1.5'], None, ['[0, 1]']),
    '--batch_size 0': (['--batch_size', '0'], None, ['--batch_size 0']),
    '--bg_tile -1': (['--bg_tile', '-1'], None, ['--bg_tile -1']),
    '--dlib_upsample -1': (['--dlib_upsample', '-1'], None, ['--dlib_upsample -1']),
    '--max_output_pixels 0': (['--max_output_pixels', '0'], None, ['--max_output_pixels']),
    'truncated weights': ([], 'truncated.pth', ['truncated.pth', 'not a readable PyTorch checkpoint']),
    'weights not a checkpoint': ([], 'text.pth', ['text.pth', 'not a readable PyTorch checkpoint']),
    'weights that are a photo': ([], 'photo.jpg', ['photo.jpg', 'not a readable PyTorch checkpoint']),
    'weights of other shapes': ([], 'shapes.pth', ['shapes.pth', 'does not hold -v mfr weights']),
    'weights refused by the safe loader': ([], 'unsafe.pth', ['unsafe.pth', 'weights_only', 'GLOBAL']),
    'missing weights file': ([], 'absent.pth', ['absent.pth']),
}


@pytest.mark.parametrize('case', sorted(USAGE_CASES))
def test_usage_problems_are_one_line_and_exit_2(cli, capsys, tmp_path, face, weights, case):
    argv, wfile, words = USAGE_CASES[case]
    cv2.imwrite(str(tmp_path / 'in.png'), face)
    out = tmp_path / 'out'
    rc, _, err = run(cli, capsys, ['-i', str(tmp_path / 'in.png'), '-o', str(out), '--model_path',
                                   str(weights / (wfile or 'tiny.pth')), *FAST, *argv])
    assert rc == 2
    line = error_line(err)
    for word in words:
        assert word in line, line
    assert not out.exists() or not any(p.is_file() for p in out.rglob('*'))  # nothing written


@pytest.mark.parametrize('case', ['existing file', 'parent is a file', 'read-only file system', 'missing input'])
def test_bad_output_or_input_paths(cli, capsys, tmp_path, face, weights, case):
    cv2.imwrite(str(tmp_path / 'in.png'), face)
    (tmp_path / 'afile').write_text('x')
    src, dest = str(tmp_path / 'in.png'), {'existing file': tmp_path / 'afile',
                                           'parent is a file': tmp_path / 'afile' / 'sub',
                                           'read-only file system': '/proc/panini_results',
                                           'missing input': tmp_path / 'out'}[case]
    if case == 'missing input':
        src = str(tmp_path / 'nowhere')
    rc, _, err = run(cli, capsys, ['-i', src, '-o', str(dest), '--model_path', str(weights / 'tiny.pth'), *FAST])
    assert rc == 2
    line = error_line(err)
    assert ('nowhere' in line) if case == 'missing input' else ('-o' in line and 'folder' in line), line
    assert (tmp_path / 'afile').read_text() == 'x'


def test_a_folder_of_odd_files(cli, capsys, monkeypatch, tmp_path, face, weights):
    """Every odd file is either restored or skipped with a warning; the good ones are all restored."""
    src = tmp_path / 'in put ñ'  # spaces and non-ASCII in the folder and file names
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), face)
    cv2.imwrite(str(src / 'a.jpg'), face)  # same stem as a.png
    ok, buf = cv2.imencode('.png', face)
    (src / 'visage été.png').write_bytes(buf.tobytes())
    (src / 'empty.png').write_bytes(b'')
    (src / 'truncated.png').write_bytes(buf.tobytes()[:200])
    (src / 'random.jpg').write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    cv2.imwrite(str(src / 'one_pixel.png'), face[:1, :1])
    cv2.imwrite(str(src / 'deep16.tif'), face.astype(np.uint16) * 257)
    cv2.imwrite(str(src / 'float32.tif'), face.astype(np.float32) / 255.0)
    (src / 'scene.exr').write_bytes(b'\x76\x2f\x31\x01' + bytes(200))  # OpenEXR magic: refused with the reason
    os.symlink(src / 'a.png', src / 'link.png')
    os.symlink(src / 'gone.png', src / 'broken_link.png')
    cv2.imwrite(str(src / 'locked.png'), face)
    (src / 'notes.txt').write_text('not an image')
    out = src / 'results'  # the output folder inside the input folder

    real_read = cli.read_image

    def read(path):  # root reads every file whatever its mode: emulate a file the user may not read
        if osp.basename(path) == 'locked.png':
            raise PermissionError(13, 'Permission denied', path)
        return real_read(path)

    monkeypatch.setattr(cli, 'read_image', read)
    rc, out_text, err = run(cli, capsys, ['-i', str(src), '-o', str(out), '--model_path', str(weights / 'tiny.pth'),
                                          *FAST])
    assert rc == 1  # finished, something skipped
    skipped = {'empty.png', 'truncated.png', 'random.jpg', 'broken_link.png', 'locked.png', 'notes.txt', 'scene.exr'}
    for name in skipped:
        assert f'{name}: ' in err, name
    assert f'{len(skipped)} file(s) skipped' in out_text
    assert 'Permission denied' in err and 'an empty file' in err and 'cannot decode' in err
    imgs = sorted(os.listdir(out / 'restored_imgs'))
    assert imgs == ['a_jpg.jpg', 'a_png.png', 'deep16.tif', 'float32.tif', 'link.png', 'one_pixel.png',
                    'visage été.png']
    faces = sorted(os.listdir(out / 'restored_faces'))
    assert {'a_png_00.png', 'a_jpg_00.png', 'link_00.png', 'visage été_00.png', 'deep16_00.png'} <= set(faces)
    assert cv2.imread(str(out / 'restored_imgs' / 'one_pixel.png')).shape[:2] == (2, 2)
    assert cv2.imread(str(out / 'restored_imgs' / 'deep16.tif'), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert cv2.imread(str(out / 'restored_imgs' / 'float32.tif'), cv2.IMREAD_UNCHANGED).dtype == np.float32
    # a second run over the same folder does not read its own results folder and writes the same names
    shutil.rmtree(out / 'cmp')
    rc2, _, _ = run(cli, capsys, ['-i', str(src), '-o', str(out), '--model_path', str(weights / 'tiny.pth'), *FAST])
    assert rc2 == 1 and sorted(os.listdir(out / 'restored_imgs')) == imgs


def test_huge_upscale_is_bounded(cli, capsys, tmp_path, face, weights):
    cv2.imwrite(str(tmp_path / 'in.png'), face)
    rc, out, err = run(cli, capsys, ['-i', str(tmp_path / 'in.png'), '-o', str(tmp_path / 'out'), '-s', '1000',
                                     '--model_path', str(weights / 'tiny.pth'), *FAST])
    assert rc == 2  # nothing restored
    assert '175000 x 232000' in err and '--max_output_pixels' in err and 'lower -s' in err
    assert '1 file(s) skipped' in out
    rc, _, err = run(cli, capsys, ['-i', str(tmp_path / 'in.png'), '-o', str(tmp_path / 'out'), '-s', '3',
                                   '--max_output_pixels', '1e5', '--model_path', str(weights / 'tiny.pth'), *FAST])
    assert rc == 2 and 'over --max_output_pixels 100000' in err


def test_one_failing_photo_does_not_stop_the_run(cli, capsys, monkeypatch, tmp_path, face, weights):
    for name in ('a.png', 'b.png', 'c.png'):
        cv2.imwrite(str(tmp_path / name), face if name != 'b.png' else face[::-1].copy())
    real = cli.PaniniRestorer.enhance_batch

    def flaky(self, imgs, **kwargs):
        if any(np.array_equal(img, face[::-1]) for img in imgs):
            raise MemoryError('simulated: b.png does not fit')
        return real(self, imgs, **kwargs)

    monkeypatch.setattr(cli.PaniniRestorer, 'enhance_batch', flaky)
    src = tmp_path
    rc, out, err = run(cli, capsys, ['-i', str(src), '-o', str(tmp_path / 'out'), '--model_path',
                                     str(weights / 'tiny.pth'), *FAST, '--batch_size', '3'])
    assert rc == 1
    assert 'b.png: restoring failed (MemoryError: simulated: b.png does not fit); skipped.' in err
    assert sorted(os.listdir(tmp_path / 'out' / 'restored_imgs')) == ['a.png', 'c.png']
    assert '2 photo(s)' in out and '1 file(s) skipped' in out
