"""The training preflight (panininet/preflight.py): every shipped options file, run without its data, exits 2 naming
every missing file at once and leaves no folder behind; wrong keys and values are named with their line; the
shipped and tiny options pass once their files exist (no false alarms)."""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml
from helpers import REPO_ROOT as REPO

from panininet.preflight import check_options, load_options, world_size_from_argv

SHIPPED = sorted(glob.glob(osp.join(REPO, 'options', 'train_*.yml')))
TINY = sorted(glob.glob(osp.join(REPO, 'tests', 'models', 'options', 'train_*_tiny.yml')))


def test_the_options_are_found():
    assert len(SHIPPED) >= 7 and len(TINY) >= 5, (SHIPPED, TINY)


def needed_files(opt):
    """Every input path an options dict names (what the preflight must report when all are absent)."""
    paths = []
    for phase in opt['datasets'].values():
        paths += [phase[k] for k in ('dataroot_gt', 'dataroot_lq', 'component_path', 'meta_info') if phase.get(k)]
    for section, block in opt.items():
        if section.startswith('network_'):
            paths += [v for k, v in block.items() if k.endswith('_load_path') and v]
    paths += [v for k, v in opt['path'].items() if k.startswith('pretrain_network_') and v]
    paths += [v for block in opt['train'].values() if isinstance(block, dict)
              for k, v in block.items() if k.endswith('_load_path') and v]
    return paths


def snapshot(root):
    return {d: sorted(os.listdir(osp.join(root, d))) if osp.isdir(osp.join(root, d)) else None
            for d in ('experiments', 'tb_logger')}


# runs panininet/train.py as ``__main__`` for every shipped file in one fresh process (one import of torch and basicsr)
RUNNER = """
import contextlib, io, json, runpy, sys
out = {}
for path in sys.argv[2:]:
    err = io.StringIO()
    sys.argv = ['train.py', '-opt', path]
    with contextlib.redirect_stderr(err):
        try:
            runpy.run_path(TRAIN, run_name='__main__')
            code = 0
        except SystemExit as e:
            code = e.code
        except BaseException as e:
            code, _ = 'raised', err.write(repr(e))
    out[path] = [code, err.getvalue()]
print(json.dumps(out))
"""


@pytest.fixture(scope='module')
def shipped_runs(tmp_path_factory):
    """{options path: (exit status, stderr, working directory)} of train.py without data, and the repo before/after."""
    cwd = tmp_path_factory.mktemp('preflight_cwd')
    env = dict(os.environ, PANINI_WEIGHTS_DIR=str(cwd / 'weights'), PYTHONPATH=REPO)
    before = snapshot(REPO)
    code = RUNNER.replace('TRAIN', repr(osp.join(REPO, 'panininet', 'train.py')))
    res = subprocess.run([sys.executable, '-c', code, '--', *SHIPPED], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = json.loads(res.stdout.strip().splitlines()[-1])
    return runs, cwd, before, snapshot(REPO)


def test_shipped_options_leave_nothing_behind(shipped_runs):
    runs, cwd, before, after = shipped_runs
    assert after == before  # no experiments/<name>, tb_logger/<name>, nor *_archived_* renames
    assert os.listdir(cwd) == []  # nor in the working directory (the weights root is not created either)


@pytest.mark.parametrize('opt_path', SHIPPED, ids=osp.basename)
def test_shipped_options_without_data_exit_2_naming_everything(opt_path, shipped_runs):
    runs, cwd, _, _ = shipped_runs
    with open(opt_path) as f:
        opt = yaml.safe_load(f)
    code, stderr = runs[opt_path]
    assert code == 2, stderr[-3000:]
    assert 'Traceback' not in stderr
    if 'comes from GFP-GAN' in stderr:  # without the [gfpgan] extra: the one line train.py prints first
        return
    assert stderr.startswith('Error: ')
    missing = needed_files(opt)
    assert missing
    for path in missing:
        assert path in stderr, (path, stderr)
    if opt['train'].get('perceptual_opt', {}).get('type') == 'PerceptualLoss':  # basicsr's: VGG in the weights root
        assert str(cwd / 'weights' / 'vgg19-dcbb9e9d.pth') in stderr
    # one message: a count and one entry per problem, each with its line in the file
    entries = [line for line in stderr.splitlines() if line.startswith('  - ')]
    assert f'{len(entries)} problems' in stderr.splitlines()[0]
    assert all('(line ' in e for e in entries)


def make_present(problems, images=32):
    """Create every missing file / folder a preflight reported (folders get ``images`` small images)."""
    img = np.full((16, 16, 3), 127, np.uint8)
    for p in problems:
        assert p.missing, p.format()
        if p.text.startswith('folder'):
            os.makedirs(p.missing, exist_ok=True)
            for i in range(images):
                cv2.imwrite(osp.join(p.missing, f'{i:05d}.png'), img)
        else:
            os.makedirs(osp.dirname(p.missing), exist_ok=True)
            open(p.missing, 'wb').close()


@pytest.mark.parametrize('opt_path', SHIPPED + TINY, ids=osp.basename)
def test_options_pass_once_their_files_exist(opt_path, tmp_path, monkeypatch):
    """No false alarms: every key of the shipped and tiny options is taken, every value accepted."""
    monkeypatch.setenv('PANINI_WEIGHTS_DIR', str(tmp_path / 'weights'))
    with open(opt_path) as f:
        text = f.read()
    # the tiny options' TEST paths (filled in by their tests): a folder for dataroots, a file for the rest
    text = re.sub(r'(dataroot_\w+): TEST', r'\1: faces', text).replace('TEST', 'weights/file.pth')
    path = tmp_path / 'options.yml'
    path.write_text(text)
    root, cwd = tmp_path / 'root', tmp_path / 'cwd'
    root.mkdir(), cwd.mkdir()
    problems = check_options(str(path), str(root), cwd=str(cwd))
    make_present(problems)
    assert check_options(str(path), str(root), cwd=str(cwd)) == []


def tiny_mfr(tmp_path, edit):
    """The tiny MFR options with every file present, then ``edit(text) -> text``; returns (path, text)."""
    faces = tmp_path / 'faces'
    faces.mkdir()
    for i in range(4):
        cv2.imwrite(str(faces / f'{i}.png'), np.zeros((8, 8, 3), np.uint8))
    weights = tmp_path / 'w.pth'
    weights.touch()
    with open(osp.join(REPO, 'tests', 'models', 'options', 'train_panini_mfr_tiny.yml')) as f:
        text = f.read().replace('dataroot_gt: TEST', f'dataroot_gt: {faces}').replace('TEST', str(weights))
    text = edit(text)
    path = tmp_path / 'opt.yml'
    path.write_text(text)
    return str(path), text


def line_of(text, needle):
    return next(i + 1 for i, line in enumerate(text.splitlines()) if needle in line)


@pytest.mark.parametrize(('edit', 'key', 'needle', 'words'), [
    (lambda t: t.replace('  narrow: 0.0625\n  rrdb', '  narow: 0.0625\n  rrdb'), 'network_g.narow', 'narow:',
     ['PaniniNet takes no argument', 'narrow']),
    (lambda t: t.replace('use_hflip: true', 'use_hflp: true'), 'datasets.train.use_hflp', 'use_hflp',
     ['PaniniMFRDataset reads no option']),
    (lambda t: t.replace('loss_weight: 1.0', 'loss_weigth: 1.0'), 'train.pixel_opt.loss_weigth', 'loss_weigth',
     ['L1Loss takes no argument']),
    (lambda t: t.replace('lr: !!float 1e-3', 'lr: 1e-3'), 'train.optim_g.lr', 'lr: 1e-3',
     ["'1e-3' (str)", '!!float 1e-3']),
    (lambda t: t.replace('lr: !!float 1e-4', 'lr: -1.0e-4'), 'train.optim_d.lr', 'lr: -1.0e-4',
     ['must be a positive number']),
    (lambda t: t.replace('batch_size_per_gpu: 2', 'batch_size_per_gpu: 8'), 'datasets.train.batch_size_per_gpu',
     'batch_size_per_gpu: 8', ['4 images', 'no full batch']),
    (lambda t: t.replace('type: PaniniNet', 'type: PaniniNett'), 'network_g.type', 'PaniniNett',
     ["'PaniniNett' is not registered"]),
])
def test_wrong_keys_and_values_named_with_their_line(tmp_path, edit, key, needle, words):
    path, text = tiny_mfr(tmp_path, edit)
    problems = check_options(path, str(tmp_path), cwd=str(tmp_path))
    assert [p.key for p in problems] == [key], [p.format() for p in problems]
    assert problems[0].line == line_of(text, needle)
    shown = problems[0].format()
    assert all(w in shown for w in words), shown


def test_stddev_group_and_moco_queue_against_the_processes(tmp_path):
    path, _ = tiny_mfr(tmp_path, lambda t: t.replace('batch_size_per_gpu: 2', 'batch_size_per_gpu: 3')
                       .replace('narrow: 0.0625\n\npath', 'narrow: 0.0625\n  stddev_group: 2\n\npath'))
    problems = check_options(path, str(tmp_path), cwd=str(tmp_path))
    assert [p.key for p in problems] == ['datasets.train.batch_size_per_gpu'], [p.format() for p in problems]
    assert 'minibatch-stddev' in problems[0].text
    # MoCo: the queue takes the batch of every process
    faces = tmp_path / 'faces'
    with open(osp.join(REPO, 'tests', 'models', 'options', 'train_udrl_dre_tiny.yml')) as f:
        opt = yaml.safe_load(f.read().replace('TEST', str(faces)))
    opt['network_g']['K'] = 24
    opt['datasets']['train']['batch_size_per_gpu'] = 4
    udrl = tmp_path / 'udrl.yml'
    udrl.write_text(yaml.safe_dump(opt))
    problems = check_options(str(udrl), str(tmp_path), cwd=str(tmp_path), world_size=4)
    assert 'network_g.K' in [p.key for p in problems], [p.format() for p in problems]
    assert 'network_g.K' not in [p.key for p in check_options(str(udrl), str(tmp_path), cwd=str(tmp_path),
                                                               world_size=3)]


def test_world_size_from_the_launcher():
    assert world_size_from_argv(['-opt', 'x.yml'], {'WORLD_SIZE': '4'}) == 1
    assert world_size_from_argv(['-opt', 'x.yml', '--launcher', 'pytorch'], {'WORLD_SIZE': '4'}) == 4


def test_bad_yaml_is_one_line_with_its_line(tmp_path):
    bad = tmp_path / 'bad.yml'
    bad.write_text('name: x\ntrain:\n  lr: [1, 2\n')
    from panininet.preflight import PreflightError
    with pytest.raises(PreflightError, match=r'^Error: .*bad.yml \(line \d\) is not valid YAML'):
        load_options(str(bad))
