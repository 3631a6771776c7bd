"""scripts/make_degraded_set.py: round trip on the shared GT faces, Table-4 mode, refusals, inputs untouched."""
import csv
import hashlib
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from helpers import load_script

from panininet.data.degradation_sampler import TABLE4_FIXED
from panininet.data.mfr_pair_dataset import PaniniMFRDataset


@pytest.fixture(scope='module')
def script(repo_root):
    mod = load_script(osp.join(repo_root, 'scripts', 'make_degraded_set.py'), 'make_degraded_set')
    return mod


@pytest.fixture(scope='module')
def gt_dir(shared_dir):
    return osp.join(shared_dir, 'testdata', 'panini_examples', 'GT')


def _digest(folder):
    return {n: hashlib.sha256(open(osp.join(folder, n), 'rb').read()).hexdigest() for n in sorted(os.listdir(folder))}


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _hf(img):
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return float(cv2.Laplacian(g, cv2.CV_32F).var())


def test_random_round_trip_matches_dataset(script, gt_dir, tmp_path):
    before = _digest(gt_dir)
    out = tmp_path / 'mfr'
    assert script.main(['-i', gt_dir, '-o', str(out), '--num', '2', '--seed', '5', '--hq-size', '128',
                        '--size', '64']) == 0
    rows = _read_csv(out / 'params.csv')
    meta = json.loads((out / 'params.json').read_text())
    assert len(rows) == 2 and meta['items'][0]['file'] == rows[0]['file'] and meta['seed'] == 5
    assert sorted(os.listdir(out)) == sorted([r['file'] for r in rows] + ['params.csv', 'params.json'])
    for row in rows:
        assert 0.2 <= float(row['sigma']) <= 10 and 10 <= float(row['r']) <= 200
        assert 0 <= float(row['delta']) <= 25 and 5 <= int(row['q']) <= 50
        assert cv2.imread(str(out / row['file'])).shape == (64, 64, 3)
    # the same pipeline as PaniniMFRDataset in its deterministic mode (same seed, same list order)
    meta_info = tmp_path / 'meta.txt'
    meta_info.write_text(''.join(osp.basename(r['source']) + '\n' for r in rows))
    ds = PaniniMFRDataset(dict(dataroot_gt=gt_dir, meta_info=str(meta_info), out_size=128, in_size=64, phase='val',
                               seed=5))
    for i, row in enumerate(rows):
        item = ds[i]
        assert item['params']['r'] == pytest.approx(float(row['r']))
        assert item['params']['q'] == int(row['q'])
        lq = item['lq'].numpy().transpose(1, 2, 0)[:, :, ::-1] * 255
        saved = cv2.imread(str(out / row['file'])).astype(np.float32)
        assert np.abs(lq - saved).max() <= 0.5 + 1e-3  # only the 8-bit PNG rounding differs
    assert _digest(gt_dir) == before  # inputs untouched


def test_table4_mode(script, gt_dir, tmp_path):
    out = tmp_path / 't4'
    preview = tmp_path / 'sweep.png'
    assert script.main(['-i', gt_dir, '-o', str(out), '--mode', 'table4', '--num', '1', '--hq-size', '256',
                        '--size', '128', '--preview', str(preview)]) == 0
    rows = _read_csv(out / 'params.csv')
    assert [float(r['r']) for r in rows] == [16, 32, 64, 128]
    fixed = TABLE4_FIXED
    assert {(float(r['sigma']), float(r['delta']), int(r['q'])) for r in rows} == {
        (fixed['sigma'], fixed['delta'], fixed['q'])}
    assert sorted(d for d in os.listdir(out) if osp.isdir(out / d)) == ['r016', 'r032', 'r064', 'r128']
    imgs = [cv2.imread(str(out / r['file'])) for r in rows]
    energies = [_hf(im) for im in imgs]
    assert all(a > b for a, b in zip(energies, energies[1:])), energies  # more severe with r
    assert cv2.imread(str(preview)).shape == (128, 5 * 128, 3)  # HQ + one tile per r


def test_refuses_input_folder_and_non_empty_output(script, tmp_path):
    src = tmp_path / 'hq'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), np.full((32, 32, 3), 128, np.uint8))
    before = _digest(src)
    with pytest.raises(SystemExit, match='input folder'):
        script.main(['-i', str(src), '-o', str(src)])
    with pytest.raises(SystemExit, match='input folder'):
        script.main(['-i', str(src), '-o', str(src / 'sub')])
    with pytest.raises(SystemExit, match='input folder'):
        script.main(['-i', str(src), '-o', str(tmp_path / 'o1'), '--preview', str(src / 'p.png')])
    assert _digest(src) == before and not (src / 'sub').exists()
    out = tmp_path / 'out'
    assert script.main(['-i', str(src), '-o', str(out), '--hq-size', '32', '--size', '16']) == 0
    with pytest.raises(SystemExit, match='not empty'):
        script.main(['-i', str(src), '-o', str(out)])
    assert script.main(['-i', str(src), '-o', str(out), '--overwrite', '--hq-size', '32', '--size', '16']) == 0
    assert not [n for n in os.listdir(out) if n.startswith('.tmp_')]  # atomic writes leave no temporaries
    with pytest.raises(SystemExit, match='does not exist'):
        script.main(['-i', str(tmp_path / 'nope'), '-o', str(tmp_path / 'o2')])
    with pytest.raises(SystemExit, match='--num'):
        script.main(['-i', str(src), '-o', str(tmp_path / 'o3'), '--num', '5'])


def test_mmrb_preset_records_the_blur(script, gt_dir, tmp_path):
    """Preset mmrb (MMRB eq. 17): params.csv also says which blur each image got and the motion drawn, and the
    images are PaniniMFRDataset's (deterministic, same seed, preset mmrb)."""
    out = tmp_path / 'mmrb'
    assert script.main(['-i', gt_dir, '-o', str(out), '--seed', '3', '--hq-size', '64', '--size', '64',
                        '--preset', 'mmrb']) == 0
    rows = _read_csv(out / 'params.csv')
    assert {r['blur'] for r in rows} <= {'gaussian', 'motion'} and all(1 <= float(r['length']) <= 41 for r in rows)
    assert all(0.4 <= float(r['r']) <= 8 and r['r_base'] == '1.0' for r in rows)
    ds = PaniniMFRDataset(dict(dataroot_gt=gt_dir, out_size=64, in_size=64, phase='val', seed=3,
                               degradation_preset='mmrb'))
    for i, row in enumerate(rows):
        item = ds[i]
        assert item['params']['blur'] == row['blur'] and item['params']['length'] == pytest.approx(float(row['length']))
        lq = item['lq'].numpy().transpose(1, 2, 0)[:, :, ::-1] * 255
        assert np.abs(lq - cv2.imread(str(out / row['file'])).astype(np.float32)).max() <= 0.5 + 1e-3
