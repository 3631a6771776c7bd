"""Eye/mouth regions: GFP-GAN's component-landmarks format, the dlib 68-point script, template boxes, the dataset."""
import os.path as osp

import numpy as np
import pytest
import torch
from helpers import REPO_ROOT as REPO  # noqa: E402
from helpers import load_script

from panininet.data import face_components as FC
from panininet.data.mfr_pair_dataset import PaniniMFRDataset

SCRIPT = osp.join(REPO, 'scripts', 'make_component_landmarks.py')


def run_script(*args):
    """``scripts/make_component_landmarks.py`` in this process (a subprocess pays the imports again)."""
    module = load_script(SCRIPT, 'make_component_landmarks')
    try:
        return module.main(list(args))
    except SystemExit as e:
        return e.code


@pytest.fixture(scope='module')
def computed(tmp_path_factory):
    """The script run on the three aligned GFP-GAN crops of ../shared/testdata (dlib 68 points)."""
    from helpers import get_shared
    faces = get_shared('testdata', 'cropped_faces')
    out = str(tmp_path_factory.mktemp('components') / 'components.pth')
    assert run_script('-i', faces, '-o', out, '--upsample', '0') == 0
    return faces, out


def test_script_writes_gfpgan_format_near_the_template(computed, capsys):
    faces, out = computed
    raw = torch.load(out, map_location='cpu', weights_only=False)  # the file exactly as GFP-GAN's loader sees it
    assert sorted(raw) == ['00000000', '00000001', '00000002']
    for entry in raw.values():
        assert sorted(entry) == ['left_eye', 'mouth', 'right_eye']
        for values in entry.values():
            assert isinstance(values, list) and len(values) == 3 and all(type(v) is np.float64 for v in values)
            # GFP-GAN's get_component_coordinates: ``mean - half_len + 1`` on the list slice (numpy broadcasting)
            mean, half = values[0:2], values[2]
            loc = np.hstack((mean - half + 1, mean + half))
            assert loc.shape == (4,) and half >= 16
    table = FC.load_component_landmarks(out)  # our safe reader (weights_only + numpy scalars)
    for entry in table.values():
        for part in FC.COMPONENTS:
            ref = np.array(FC.TEMPLATE_COMPONENTS_512[part])
            assert np.abs(entry[part][:2] - ref[:2]).max() < 12, (part, entry[part])
            assert abs(entry[part][2] - ref[2]) < 12, (part, entry[part])
        assert entry['left_eye'][0] < 256 < entry['right_eye'][0] and entry['mouth'][1] > entry['left_eye'][1]


def test_script_bad_input_one_line_exit_2(tmp_path, capsys):
    for args in (['-i', str(tmp_path / 'none'), '-o', str(tmp_path / 'x.pth')],
                 ['-i', str(tmp_path), '-o', str(tmp_path / 'x.pth')]):  # empty folder
        capsys.readouterr()
        assert run_script(*args) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: ') and err.count('\n') == 1
        assert not osp.exists(tmp_path / 'x.pth')


def test_landmarks68_entry_and_validation(tmp_path):
    pts = np.zeros((68, 2))
    pts[36:42] = [[100, 200], [110, 195], [120, 195], [130, 200], [120, 204], [110, 204]]
    pts[42:48] = pts[36:42] + [100, 0]
    pts[48:68] = np.stack([np.linspace(180, 300, 20), np.full(20, 350)], 1)
    entry = FC.components_from_landmarks68(pts)
    assert np.allclose(entry['left_eye'], [115, 199.666667, 16])  # half side 15 -> GFP-GAN's minimum 16
    assert np.allclose(entry['mouth'], [240, 350, 60])
    path = str(tmp_path / 'c.pth')
    FC.save_component_landmarks({'00000000': entry}, path)
    assert np.allclose(FC.load_component_landmarks(path)['00000000']['right_eye'], [215, 199.666667, 16])
    torch.save({'0': entry}, tmp_path / 'badkey.pth')
    with pytest.raises(ValueError, match='8-digit'):
        FC.load_component_landmarks(str(tmp_path / 'badkey.pth'))
    torch.save({'00000000': {'left_eye': [1, 2, 3], 'right_eye': [1, 2, 3]}}, tmp_path / 'nomouth.pth')
    with pytest.raises(ValueError, match='mouth'):
        FC.load_component_landmarks(str(tmp_path / 'nomouth.pth'))
    with pytest.raises(FileNotFoundError, match='make_component_landmarks'):
        FC.load_component_landmarks(str(tmp_path / 'absent.pth'))


@pytest.mark.parametrize('with_file', [False, True], ids=['template', 'file'])
def test_dataset_yields_boxes_that_follow_the_flip(computed, with_file):
    """Each box is centred on its entry's (x, y) with side ~2 half_len (GFP-GAN's convention is a pixel off either
    way), scaled to out_size; a flipped pair gets the other eye's entry, mirrored."""
    faces, path = computed
    opt = dict(dataroot_gt=faces, io_backend={'type': 'disk'}, out_size=128, in_size=128, mean=0.5, std=0.5,
               phase='train', use_hflip=True, degradation_preset='mmrb', crop_components=True,
               component_path=path if with_file else None, eye_enlarge_ratio=1.4)
    ds = PaniniMFRDataset(opt)
    entry = FC.load_component_landmarks(path)['00000001'] if with_file else FC.template_entry()
    seen = set()
    for _ in range(8):
        item = ds[1]
        flip = bool(item['params']['hflip'])
        seen.add(flip)
        for part in FC.COMPONENTS:
            box = item[f'loc_{part}']
            assert box.dtype == torch.float32 and box.shape == (4,)
            source = {'left_eye': 'right_eye', 'right_eye': 'left_eye'}.get(part, part) if flip else part
            x, y, h = (float(v) / 4 for v in entry[source])  # 512 -> 128
            x = 128 - x if flip else x
            h = h * 1.4 if 'eye' in part else h
            cx, cy, side = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2, float(box[2] - box[0])
            assert abs(cx - x) <= 1 and abs(cy - y) <= 1 and abs(side - 2 * h) <= 1, (part, flip, box, x, y, h)
            assert 0 <= float(box[0]) < float(box[2]) <= 128
    assert seen == {True, False}


def test_dataset_component_file_must_cover_every_image(computed, tmp_path):
    faces, path = computed
    short = str(tmp_path / 'short.pth')
    FC.save_component_landmarks({'00000000': FC.template_entry()}, short)
    with pytest.raises(ValueError, match='1 entries for 3 images'):
        PaniniMFRDataset(dict(dataroot_gt=faces, out_size=64, in_size=64, crop_components=True,
                              component_path=short))
