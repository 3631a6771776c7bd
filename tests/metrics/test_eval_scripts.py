"""The evaluation and analysis scripts, end to end on ../shared/testdata/panini_examples with tiny networks."""
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO_ROOT as REPO  # noqa: E402
from helpers import load_script

from panininet.archs.panini_arch import PaniniNet

TINY = dict(in_size=32, out_size=64, num_style_feat=32, channel_multiplier=1, narrow=0.25, rrdb_channels=4,
            num_rrdbs=1, dre_in_size=32, dre_num_feat=4)


def script(name):
    module = load_script(osp.join(REPO, 'scripts', f'{name}.py'), f'_script_{name}')
    return module


@pytest.fixture(scope='module')
def examples(shared_dir):
    return osp.join(shared_dir, 'testdata', 'panini_examples')


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    net = PaniniNet(**TINY)
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny_panini.pth')
    torch.save({'params_ema': net.state_dict(), 'arch': TINY}, path)
    return path


def assert_png(path, min_side=64):
    img = cv2.imread(str(path))
    assert img is not None, f'{path} is not a readable image'
    assert min(img.shape[:2]) >= min_side
    assert img.std() > 1, f'{path} is blank'


def test_evaluate_folders_models_and_input(examples, tiny_ckpt, tmp_path):
    evaluate = script('evaluate')
    out = tmp_path / 'eval'
    result = evaluate.main([
        '--gt', osp.join(examples, 'GT'), '--lq', osp.join(examples, 'MFR'), '--results',
        f'official={osp.join(examples, "MFR_result")}', '--model', f'tiny={tiny_ckpt}', '--include-input',
        '--metrics', 'psnr,ssim,niqe', '--size', '192', '--out', str(out)
    ])
    table = (out / 'metrics.md').read_text(encoding='utf-8').splitlines()
    assert table[:2] == ['| method | n | PSNR↑ | SSIM↑ | NIQE↓ |', '|---|---|---|---|---|']
    assert [row.split(' | ')[0] for row in table[2:]] == ['| official', '| Input', '| tiny']
    saved = json.loads((out / 'metrics.json').read_text(encoding='utf-8'))
    assert saved['n'] == 3 and saved['images'] == ['00003', '00006', '00009']
    rows = result['methods']
    # the official Panini-Net restorations are far closer to the GT than a random tiny network's output
    assert rows['official']['psnr'] > rows['tiny']['psnr'] + 3
    assert rows['official']['ssim'] > rows['tiny']['ssim']
    restored = cv2.imread(str(out / 'restored' / 'tiny' / '00003.png'))
    assert restored.shape == (64, 64, 3)


def test_evaluate_offline_weights_error(examples, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    evaluate = script('evaluate')
    with pytest.raises(SystemExit, match='--lpips-trunk PATH'):
        evaluate.main(['--gt', osp.join(examples, 'GT'), '--results', f'x={osp.join(examples, "MFR_result")}',
                       '--metrics', 'psnr,lpips', '--no-download', '--out', str(tmp_path / 'o')])
    assert not (tmp_path / 'o' / 'metrics.md').exists()


def test_analyze_dafi_table4_and_fig7(examples, tiny_ckpt, tmp_path):
    analyze = script('analyze_dafi')
    out = tmp_path / 'dafi'
    payload = analyze.main(['--model', tiny_ckpt, '--hq', osp.join(examples, 'GT', '00003.jpg'), '--out', str(out),
                            '--lq-size', '128'])
    lines = (out / 'theta.md').read_text(encoding='utf-8').splitlines()
    assert lines[0] == '| r | factor | θ 4x4 | θ 8x8 | θ 16x16 | θ 32x32 (last level) |'
    assert [line.split(' | ')[0] for line in lines[2:]] == ['| 16', '| 32', '| 64', '| 128']
    thetas = np.array([payload['theta'][r] for r in ('16', '32', '64', '128')])
    assert thetas.shape == (4, 4) and ((thetas > 0) & (thetas < 1)).all()
    assert_png(out / 'theta_plot.png')
    assert_png(out / 'fig7_grid.png')


def test_eq12_13_sources_differ_and_inputs_differ_only_by_r(examples, tiny_ckpt):
    analyze = script('analyze_dafi')
    net = analyze.build_model(tiny_ckpt)
    inputs = analyze.table4_inputs(osp.join(examples, 'GT', '00009.jpg'), (16, 128), 2.0, 0.0, None, 128, 0)
    assert np.abs(inputs[16] - inputs[128]).mean() > 0.005  # r = 128 is much blurrier than r = 16
    res = analyze.dissect(net, inputs)
    for r in (16, 128):
        assert not np.array_equal(res[r]['y_ife'], res[r]['y_gpb'])
        assert not np.array_equal(res[r]['y'], res[r]['y_gpb'])


def test_edit_masks_sweep_moves_theta(examples, tmp_path):
    edit = script('edit_masks')
    out = tmp_path / 'edit'
    payload = edit.main(['--tiny', '--arch', json.dumps(TINY), '--lq', osp.join(examples, 'MFR', '00009.png'),
                         '--biases', '-2', '0', '2', '--out', str(out)])
    last = [step['theta'][-1] for step in payload['sweep']]
    assert last[0] < last[1] < last[2]
    only_first = edit.bias_vector(3.0, [0], 4)
    assert only_first == [3.0, 0.0, 0.0, 0.0]
    assert_png(out / 'mask_edit_grid.png')


def test_linear_probe_recovers_a_linear_target_and_not_noise():
    probe = script('udrl_probe')
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 10))
    w = rng.normal(size=(10, 2))
    y = np.concatenate([x @ w + 0.01 * rng.normal(size=(300, 2)), rng.normal(size=(300, 1))], axis=1)
    score, pred, _, cv = probe.linear_probe(x[:200], y[:200], x[200:], y[200:])
    assert cv[0] > 0.99 and cv[2] < 0.1
    assert score[0] > 0.99 and score[1] > 0.99
    assert score[2] < 0.1
    assert pred.shape == (100, 3)


def test_udrl_probe_end_to_end_tiny(examples, tmp_path):
    probe = script('udrl_probe')
    out = tmp_path / 'probe'
    result = probe.main(['--images', osp.join(examples, 'GT'), '--out', str(out), '--bank', '6', '--iters', '2',
                         '--batch', '4', '--crop', '32', '--dre-size', '64', '--num-feat', '4', '--queue', '16',
                         '--probe-train', '20', '--probe-test', '8', '--probe-crops', '1'])
    lines = (out / 'probe.md').read_text(encoding='utf-8').splitlines()
    assert lines[0] == ('| DRE | probe scored on | R² log_r | R² delta | R² q | R² sigma | R² log_blur | '
                        'ridge alpha |')
    assert [line.split(' | ')[:2] for line in lines[2:]] == [
        ['| UDRL-trained DRE', 'held-out images'], ['| UDRL-trained DRE', 'training images (5-fold CV)'],
        ['| random DRE (control)', 'held-out images'], ['| random DRE (control)', 'training images (5-fold CV)']]
    assert result['iters_done'] == 2 and result['heldout_images'] == ['GT/00003']
    assert_png(out / 'probe_scatter.png')
    # the demonstration DRE loads into a PaniniNet through analyze_dafi's --dre
    analyze = script('analyze_dafi')
    net = analyze.build_model(tiny=True, arch_json=json.dumps(TINY), dre_path=str(out / 'dre_udrl_demo.pth'))
    saved = torch.load(out / 'dre_udrl_demo.pth', map_location='cpu', weights_only=True)['params']
    assert torch.equal(net.dre.E[0].weight, saved['E.0.weight'])


def test_evaluate_mmrb_row(examples, tmp_path):
    """A trained MMRB-Net file (params_ema + arch, as training writes it) as a table row (--version mmrb)."""
    from panininet.archs.mmrb_arch import MMRBNet

    torch.manual_seed(0)
    arch = dict(out_size=64, num_style_feat=8, num_mlp=2, channel_multiplier=1, narrow=1 / 32)
    weights = str(tmp_path / 'net_g_mmrb.pth')
    torch.save({'params_ema': MMRBNet(**arch).state_dict(), 'arch': arch}, weights)
    evaluate = script('evaluate')
    result = evaluate.main(['--gt', osp.join(examples, 'GT'), '--lq', osp.join(examples, 'MFR'), '--version', 'mmrb',
                            '--model', f'MMRB={weights}', '--metrics', 'psnr,ssim', '--size', '64',
                            '--out', str(tmp_path / 'eval')])
    assert list(result['methods']) == ['MMRB'] and result['n'] == 3
    assert cv2.imread(str(tmp_path / 'eval' / 'restored' / 'MMRB' / '00003.png')).shape == (64, 64, 3)


@pytest.mark.skipif(importlib.util.find_spec('gfpgan') is None, reason='the gfpgan package is not installed')
def test_evaluate_gfpgan_row(examples, tmp_path):
    """GFPGAN's released architecture (random weights from a local file) restores the same LQ set as a table row."""
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    net = GFPGANv1Clean(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                        fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    weights = str(tmp_path / 'GFPGANv1.3.pth')
    torch.save({'params_ema': net.state_dict()}, weights)
    evaluate = script('evaluate')
    result = evaluate.main(['--gt', osp.join(examples, 'GT'), '--lq', osp.join(examples, 'MFR'),
                            '--gfpgan', f'1.3={weights}', '--metrics', 'psnr,ssim', '--size', '256',
                            '--out', str(tmp_path / 'eval')])
    assert list(result['methods']) == ['GFPGAN v1.3'] and result['n'] == 3
    assert cv2.imread(str(tmp_path / 'eval' / 'restored' / 'GFPGAN_v1.3' / '00003.png')).shape == (512, 512, 3)


def test_udrl_probe_holds_out_whole_groups(shared_dir):
    """Every clean test-data face, 3 content views each: a person's GT and restorations fall on one side."""
    probe = script('udrl_probe')
    folders = probe.clean_face_folders(osp.join(shared_dir, 'testdata'))
    images, groups = probe.load_hq_images(folders, False, size=64, views=3)
    assert len(images) == 10 * 3 and len(set(groups.values())) == 5
    assert groups['MFR_result/00003#2'] == groups['GT/00003'] == '00003'
    train, test = probe.split_names(list(images), 4, groups)
    assert {groups[n] for n in test} == {'00003'}
    assert not {groups[n] for n in train} & {groups[n] for n in test}
    assert not np.array_equal(images['GT/00002'], images['GT/00002#1'])  # views are other crops


@pytest.mark.parametrize('vary', ['log_r', 'delta', 'q', 'sigma'])
def test_udrl_probe_one_factor_sampler(vary):
    probe = script('udrl_probe')
    sampler = probe.make_sampler(vary)
    rng = np.random.default_rng(0)
    targets = np.array([probe.targets_of(sampler.sample(rng))[:4] for _ in range(30)])
    moving = [t for t, col in zip(probe.TARGETS, targets.T) if np.ptp(col) > 0]
    assert moving == [vary]


def test_udrl_probe_log_blur_target():
    probe = script('udrl_probe')
    # sigma 0 and factor 2 (r = 20): sqrt(0 + 4 / 4) = 1 px
    assert probe.targets_of(dict(r=20.0, r_base=10.0, delta=0.0, q=30, sigma=0.0))[4] == pytest.approx(0.0)
    # sigma 3, factor 8: sqrt(9 + 16) = 5 px
    assert probe.targets_of(dict(r=80.0, r_base=10.0, delta=0.0, q=30, sigma=3.0))[4] == pytest.approx(np.log(5))


def test_udrl_probe_supervised_cache_and_experiments_table(examples, shared_dir, tmp_path):
    """The supervised bound with one varying factor, twice through the bank cache (same figures), then the table."""
    probe = script('udrl_probe')
    common = ['--images', osp.join(examples, 'GT'), '--objective', 'supervised', '--vary', 'delta', '--bank', '6',
              '--iters', '3', '--batch', '4', '--crop', '32', '--dre-size', '64', '--num-feat', '4',
              '--probe-train', '20', '--probe-test', '8', '--probe-crops', '1', '--no-control',
              '--cache', str(tmp_path / 'cache')]
    first = probe.main(common + ['--out', str(tmp_path / 'runs' / 'base_supervised')])
    assert len(list((tmp_path / 'cache').glob('*.npz'))) == 2  # bank and probe set
    second = probe.main(common + ['--out', str(tmp_path / 'again')])
    assert json.dumps(first['scores_r2']) == json.dumps(second['scores_r2'])  # NaN-safe comparison
    assert first['bank_cpu_s'] > second['bank_cpu_s']
    scores = first['scores_r2']['supervised DRE (bound)']
    assert np.isfinite(scores['delta']) and all(np.isnan(scores[t]) for t in ('log_r', 'q', 'sigma'))
    experiments = script('udrl_experiments')
    rows = experiments.main(['--testdata', osp.join(shared_dir, 'testdata'), '--out', str(tmp_path / 'runs'),
                             '--table-only'])
    assert [r['run'] for r in rows] == ['base_supervised'] and rows[0]['iters'] == 3
    table = (tmp_path / 'runs' / 'results.md').read_text(encoding='utf-8').splitlines()
    assert table[2].startswith('| base_supervised | supervised, vary delta,') and ' — / ' in table[2]


@pytest.mark.parametrize(('script', 'argv', 'message'), [
    ('udrl_probe', ['--images', '/nonexistent/faces'], 'does not exist'),
    ('udrl_probe', ['--testdata', '/nonexistent'], 'give the test-data folder'),
    ('udrl_probe', ['--images', 'GT', '--crop', '300'], 'larger than --dre-size'),
    ('udrl_experiments', ['--testdata', '/nonexistent'], 'is not a folder'),
    ('udrl_experiments', ['--testdata', '.', '--runs', 'no_such_run'], 'Unknown run'),
])
def test_udrl_scripts_refuse_bad_input_in_one_line(examples, tmp_path, capsys, script, argv, message):
    argv = [osp.join(examples, 'GT') if a == 'GT' else a for a in argv]
    with pytest.raises(SystemExit) as err:
        load_script(f'scripts/{script}.py', f'_script_{script}').main(argv + ['--out', str(tmp_path / 'out')])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
