"""The demo's whole model life on CPU, as docs/training_quickstart.md runs it: the face set from
scripts/make_demo_faces.py, options/train_panini_mfr_demo.yml through the preflight and BasicSR's engine (stopped
at half-way, then ``--auto_resume``), validation, checkpoints, the progress line and plot, and a photo restored
with the trained ``net_g_latest.pth`` through inference_panini.py.

Everything runs under a temporary root and working directory; the options file is the shipped one (the first half
stops it at ``total_iter`` 100, as an interrupted run).
"""
import os
import os.path as osp

import pytest
import torch
import yaml
from helpers import REPO_ROOT as REPO
from helpers import exp_dir, load, load_script, logged, one_thread, run_training, save_options  # noqa: F401

from panininet.preflight import check_training_options

pytestmark = pytest.mark.usefixtures('one_thread')
DEMO = osp.join(REPO, 'options', 'train_panini_mfr_demo.yml')


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo_root'))
    cwd = os.getcwd()
    os.chdir(root)  # dataset paths are relative to the working directory, as for a user at the repository root
    try:
        faces = load_script('scripts/make_demo_faces.py')
        assert faces.main([]) == 0 and faces.main(['--check']) == 0
        with open(DEMO) as f:
            opt = yaml.safe_load(f)
        total = opt['train']['total_iter']
        check_training_options(['-opt', DEMO], root)  # raises if the demo would not start
        first = run_training(root, save_options(root, 'demo_first_half', dict(
            opt, train=dict(opt['train'], total_iter=total // 2))))
        second = run_training(root, DEMO, '--auto_resume')
    finally:
        os.chdir(cwd)
    return dict(root=root, opt=opt, first=first, second=second, total=total)


def test_demo_trains_validates_and_saves(demo_run):
    opt, d = demo_run['opt'], exp_dir(demo_run['root'], demo_run['opt']['name'])
    models = os.listdir(osp.join(d, 'models'))
    total = demo_run['total']
    for f in (f'net_g_{total // 2}.pth', f'net_g_{total}.pth', 'net_g_latest.pth', 'progress.png'):
        assert f in models, models
    psnr = logged(demo_run['first'] + demo_run['second'], '# psnr')
    assert len(psnr) >= total // opt['val']['val_freq']
    assert psnr[-1] > psnr[0] + 1, psnr  # it learns: validation PSNR rises over the run (17.3 -> 18.9 dB here)
    assert os.listdir(osp.join(d, 'visualization'))


def test_demo_resumes_where_it_stopped(demo_run):
    half = demo_run['total'] // 2
    assert any('Resuming training from epoch: ' in line and f'iter: {half}.' in line for line in demo_run['second'])
    pix = logged(demo_run['second'], 'l_g_pix')
    assert len(pix) == half // demo_run['opt']['logger']['print_freq']  # only the second half was trained again
    # the progress history continues across the resume: every logged iteration once, in order
    state = load(osp.join(exp_dir(demo_run['root'], demo_run['opt']['name']), 'training_states',
                          f'{demo_run["total"]}.state'))
    iters = [row[0] for row in state['progress']['losses']['l_g_pix']]
    freq = demo_run['opt']['logger']['print_freq']
    assert iters == list(range(freq, demo_run['total'] + 1, freq))


def test_demo_reports_progress(demo_run):
    lines = [line for line in demo_run['first'] + demo_run['second'] if line.startswith('Progress: iter ')]
    assert any(' left (' in line and 's/iter' in line for line in lines), lines
    assert any('progress.png' in line for line in lines)
    assert lines[-1].startswith(f'Progress: iter {demo_run["total"]}/{demo_run["total"]} (100%)')


def test_demo_model_restores_a_photo(demo_run, tmp_path):
    cli = load_script('inference_panini.py')
    root = demo_run['root']
    model = osp.join(exp_dir(root, demo_run['opt']['name']), 'models', 'net_g_latest.pth')
    out = tmp_path / 'results'
    try:
        import dlib  # noqa: F401  (the [offline] extra: no detector download)
        args = ['-i', osp.join(root, 'datasets', 'demo_faces', 'photo_degraded.png'), '--detector', 'dlib']
    except ImportError:
        args = ['-i', osp.join(root, 'datasets', 'demo_faces', 'val', '0000.png'), '--aligned']
    assert cli.main(['-v', 'mfr', '--model_path', model, '-o', str(out), '--device', 'cpu', '--no_download',
                     *args]) == 0
    restored = os.listdir(out / 'restored_faces')
    assert len(restored) == 1
    # the file holds what training saved: its EMA generator with the demo's architecture
    g = load(model)
    assert g['arch']['in_size'] == 32 and g['arch']['out_size'] == 64
    assert torch.isfinite(torch.cat([v.flatten().float() for v in g['params_ema'].values()])).all()
