"""inference_panini.py end to end on a temporary folder, with a tiny randomly initialised model file."""
import hashlib
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip('dlib')

from helpers import FAST  # noqa: E402


def digest(folder):
    return {f: hashlib.sha256(open(osp.join(folder, f), 'rb').read()).hexdigest() for f in sorted(os.listdir(folder))}


@pytest.fixture(scope='module')
def photos(shared_dir, tmp_path_factory):
    """One photo per input form, each with one face (the right half of Blake_Lively.jpg), plus odd files."""
    folder = tmp_path_factory.mktemp('photos')
    img = cv2.imread(osp.join(shared_dir, 'testdata', 'whole_imgs', 'Blake_Lively.jpg'))[:, 350:]
    img = cv2.resize(img, (175, 232), interpolation=cv2.INTER_AREA)  # small and fast, face about 60 px
    cv2.imwrite(str(folder / 'color.jpg'), img)
    cv2.imwrite(str(folder / 'gray.png'), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    alpha = np.full(img.shape[:2], 200, np.uint8)
    cv2.imwrite(str(folder / 'rgba.png'), np.dstack([img, alpha]))
    cv2.imwrite(str(folder / 'deep.png'), img.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / 'noface.png'), np.full((50, 80, 3), 90, np.uint8))
    (folder / 'notes.txt').write_text('not an image')
    return str(folder)


@pytest.fixture(scope='module')
def run_all(cli, photos, tiny_model, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('results'))
    before = digest(photos)
    with pytest.warns(UserWarning, match='notes.txt: not an image'):
        rc = cli.main(['-i', photos, '-o', out, '--model_path', tiny_model, '-s', '2', *FAST])
    assert digest(photos) == before  # inputs untouched
    return rc, out


def test_layout_and_names(run_all):
    rc, out = run_all
    assert rc == 1  # notes.txt was skipped (exit status 1: finished, something skipped)
    assert sorted(os.listdir(out)) == ['cmp', 'cropped_faces', 'restored_faces', 'restored_imgs']
    assert sorted(os.listdir(osp.join(out, 'restored_imgs'))) == [
        'color.jpg', 'deep.png', 'gray.png', 'noface.png', 'rgba.png']
    faces = ['color_00.png', 'deep_00.png', 'gray_00.png', 'rgba_00.png']
    for sub in ('cropped_faces', 'restored_faces', 'cmp'):
        assert sorted(os.listdir(osp.join(out, sub))) == faces
    assert cv2.imread(osp.join(out, 'cropped_faces', 'color_00.png')).shape == (512, 512, 3)
    assert cv2.imread(osp.join(out, 'restored_faces', 'color_00.png')).shape == (128, 128, 3)
    assert cv2.imread(osp.join(out, 'cmp', 'color_00.png')).shape == (128, 256, 3)
    assert not [f for _, _, files in os.walk(out) for f in files if f.endswith('.part')]


def test_input_forms_survive(run_all):
    _, out = run_all
    read = lambda name: cv2.imread(osp.join(out, 'restored_imgs', name), cv2.IMREAD_UNCHANGED)  # noqa: E731
    assert read('color.jpg').shape == (464, 350, 3)
    assert read('gray.png').shape == (464, 350)
    rgba = read('rgba.png')
    assert rgba.shape == (464, 350, 4) and np.all(rgba[:, :, 3] == 200)
    assert read('deep.png').dtype == np.uint16
    assert read('noface.png').shape == (100, 160, 3)


def test_suffix_ext_center_face(cli, photos, tiny_model, tmp_path, capsys):
    src = tmp_path / 'in'
    src.mkdir()
    img = cv2.imread(osp.join(photos, 'color.jpg'))
    cv2.imwrite(str(src / 'two.jpg'), np.concatenate([img, img[:, ::-1]], axis=1))  # two faces
    out = tmp_path / 'out'
    rc = cli.main(['-i', str(src / 'two.jpg'), '-o', str(out), '--model_path', tiny_model, '--suffix', 'pn',
                   '--ext', 'png', '--only_center_face', '-s', '1', *FAST])
    assert rc == 0
    assert 'Done: 1 photo(s), 1 face(s) restored, 0 file(s) skipped' in capsys.readouterr().out
    assert os.listdir(out / 'restored_imgs') == ['two_pn.png']
    assert os.listdir(out / 'restored_faces') == ['two_00_pn.png']
    assert cv2.imread(str(out / 'restored_imgs' / 'two_pn.png')).shape == (232, 350, 3)
    shutil.rmtree(out)
    assert cli.main(['-i', str(src), '-o', str(out), '--model_path', tiny_model, '-s', '1', *FAST]) == 0
    assert len(os.listdir(out / 'restored_faces')) == 2


def test_aligned(cli, shared_dir, tiny_model, tmp_path):
    out = tmp_path / 'out'
    face = osp.join(shared_dir, 'testdata', 'cropped_faces', 'Julia_Roberts_crop.png')
    # no detector is needed (nor its weights: the default RetinaFace is absent from this empty weights folder)
    assert cli.main(['-i', face, '-o', str(out), '--model_path', tiny_model, '--aligned', '--device', 'cpu',
                     '--no_download', '--weights_dir', str(tmp_path / 'empty')]) == 0
    assert sorted(os.listdir(out)) == ['cmp', 'cropped_faces', 'restored_faces']
    assert os.listdir(out / 'restored_faces') == ['Julia_Roberts_crop_00.png']


@pytest.mark.parametrize('flag', [[], ['--no_memory_reuse']])
def test_cpu_runs_keep_freed_memory_unless_told(cli, shared_dir, tiny_model, tmp_path, monkeypatch, flag):
    calls = []
    monkeypatch.setattr(cli, 'reuse_freed_memory', lambda: calls.append(1) or True)
    face = osp.join(shared_dir, 'testdata', 'cropped_faces', 'Julia_Roberts_crop.png')
    assert cli.main(['-i', face, '-o', str(tmp_path / 'out'), '--model_path', tiny_model, '--aligned', '--device',
                     'cpu', '--no_download', *flag]) == 0
    assert calls == ([] if flag else [1])


def test_missing_weights_message(cli, photos, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv('PANINI_WEIGHTS_DIR', raising=False)
    rc = cli.main(['-i', photos, '-o', str(tmp_path / 'o'), '--weights_dir', str(tmp_path / 'w'), *FAST])
    err = capsys.readouterr().err
    assert rc == 2
    assert 'panini_mfr_latest.pth' in err
    assert 'https://drive.google.com/uc?export=download&id=1gGxbIi6oGScxvHjJvmlE4uGPKusq746F' in err
    assert str(tmp_path / 'w' / 'panini_mfr_latest.pth') in err
    assert 'Traceback' not in err
    assert not (tmp_path / 'o').exists()


def test_bad_weight_is_refused(cli, photos, tiny_model, tmp_path, capsys):
    rc = cli.main(['-i', osp.join(photos, 'color.jpg'), '-o', str(tmp_path / 'o'), '--model_path', tiny_model,
                   '-w', '2', *FAST])
    assert rc == 2
    assert 'weight must be in [0, 1]' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


def test_mmrb_restores_aligned_faces_and_photos(cli, shared_dir, photos, tmp_path):
    """-v mmrb with a trained-file layout ({'params_ema', 'arch'}, as training writes net_g) through the CLI."""
    from panininet.archs.mmrb_arch import MMRBNet
    from panininet.pipeline.restorer import PaniniRestorer

    torch.manual_seed(0)
    arch = dict(out_size=64, num_style_feat=8, num_mlp=2, channel_multiplier=1, narrow=1 / 32)
    net = MMRBNet(**arch)
    for name, p in net.named_parameters():
        if name.endswith('noise_weight'):
            p.data.fill_(0.5)
    model = str(tmp_path / 'net_g_mmrb.pth')
    torch.save({'params_ema': net.state_dict(), 'arch': arch}, model)
    face = osp.join(shared_dir, 'testdata', 'cropped_faces', 'Adele_crop.png')
    out = tmp_path / 'aligned'
    assert cli.main(['-i', face, '-o', str(out), '-v', 'mmrb', '--model_path', model, '--aligned', '--device', 'cpu',
                     '--no_download', '--weights_dir', str(tmp_path / 'empty')]) == 0
    restored = cv2.imread(str(out / 'restored_faces' / 'Adele_crop_00.png'))
    assert restored.shape == (64, 64, 3)
    restorer = PaniniRestorer(model_path=model, version='mmrb', detector=None, device='cpu')
    expected = restorer.restore_faces([cv2.imread(face)])[0]
    assert np.abs(restored.astype(int) - expected).max() <= 1  # the file's network, nothing else
    out = tmp_path / 'photo'
    assert cli.main(['-i', osp.join(photos, 'color.jpg'), '-o', str(out), '-v', 'mmrb', '--model_path', model,
                     '-s', '1', *FAST]) == 0
    assert len(os.listdir(out / 'restored_faces')) == 1 and os.listdir(out / 'restored_imgs') == ['color.jpg']
