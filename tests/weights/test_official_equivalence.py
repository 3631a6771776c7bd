"""Our PaniniNet computes what the official Panini-Net computes (../shared/official_reference).

The reference weights are re-created from the manifests by the recipe of the reference README (section 4,
``tests/weights/official_recipe.py``), checked key by key against ``recipe_check_*.json``, written as an
official MMEditing checkpoint file, loaded with ``weights_only=True`` through our loader (which converts it), and
run in ``eval()`` on the recorded input. Outputs, masks, w+, v_DR and the running RGB skips must match the
official run to 1e-4 (fp32; fp32 run-to-run noise of the official code is ~1e-6).
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from official_recipe import make_recipe_state_dict
from panini_kwargs import architecture

from panininet.archs.panini_arch import PaniniNet
from panininet.families.variants import variant_kwargs
from panininet.platform.native_ops import plain_ops
from panininet.weights.official import convert_official_state_dict
from panininet.weights.panini_checkpoint import load_panini_weights

pytestmark = pytest.mark.slow

TOL = 1e-4  # max abs error, fp32 (reference README section 5)
TOL_FP16 = 2e-3  # against the float16 full output (half an fp16 ulp is <= 9.8e-4)


def _ref(shared_dir, name):
    return osp.join(shared_dir, 'official_reference', name)


def _recipe(shared_dir, tag):
    with open(_ref(shared_dir, f'manifest_panini_{tag}.json')) as f:
        manifest = json.load(f)
    return manifest, make_recipe_state_dict(manifest)


def _recipe_mismatches(shared_dir, tag, recipe):
    """Keys whose recipe tensor differs from recipe_check_<tag>.json (sum, abs_sum, first 4, last, shape)."""
    with open(_ref(shared_dir, f'recipe_check_{tag}.json')) as f:
        check = json.load(f)['keys']
    bad = [] if list(recipe) == list(check) else ['<key order>']
    for key, value in recipe.items():
        c = check[key]
        flat = value.flatten()
        total, abs_total = float(value.sum(dtype=torch.float64)), float(value.abs().sum(dtype=torch.float64))
        ok = (list(value.shape) == c['shape'] and total == pytest.approx(c['sum'], rel=1e-9, abs=1e-9)
              and abs_total == pytest.approx(c['abs_sum'], rel=1e-9, abs=1e-9)
              and flat[:4].tolist() == c['first'] and float(flat[-1]) == c['last'])
        if not ok:
            bad.append(key)
    return bad


def _run(net, x):
    """Forward with hooks that capture the running RGB skip and the fused StyleGAN features."""
    captured = {}
    gpm = net.gpm
    hooks = [gpm.to_rgb1.register_forward_hook(lambda m, i, o: captured.__setitem__('skip_r4', o))]
    for k, to_rgb in enumerate(gpm.to_rgbs):
        res = 8 * 2**k
        hooks.append(to_rgb.register_forward_hook(lambda m, i, o, r=res: captured.__setitem__(f'skip_r{r}', o)))
    for k in range(net.num_levels):
        res = 4 * 2**k
        hooks.append(gpm.style_convs[2 * k].register_forward_pre_hook(
            lambda m, args, r=res: captured.__setitem__(f'fused_r{r}', args[0])))
    try:
        with torch.no_grad():
            y, extras = net(x, return_extras=True)
    finally:
        for h in hooks:
            h.remove()
    return y, extras, captured


def _max_err(ours, ref):
    return float((ours.detach().float() - torch.from_numpy(np.asarray(ref)).float().reshape(ours.shape)).abs().max())


def _compare(shared_dir, tag, y, extras, captured):
    errs = {
        'output_crop': _max_err(y[:, :, 384:640, 384:640], np.load(_ref(shared_dir, f'{tag}_output_crop_fp32.npy'))),
        'mask1': _max_err(extras['masks'], np.load(_ref(shared_dir, f'{tag}_afs_mask1.npy'))),
        'mask2': _max_err(1 - extras['masks'], np.load(_ref(shared_dir, f'{tag}_afs_mask2.npy'))),
        'latent': _max_err(extras['latent'], np.load(_ref(shared_dir, f'{tag}_latent.npy'))),
        'v_dr': _max_err(extras['v_dr'], np.load(_ref(shared_dir, f'{tag}_deg_style.npy'))),
    }
    inter = np.load(_ref(shared_dir, f'{tag}_intermediates.npz'))
    for r in (4, 8, 16, 32, 64, 128, 256):
        errs[f'skip_r{r}'] = _max_err(captured[f'skip_r{r}'], inter[f'skip_r{r}'])
    for r in (4, 8, 16):
        errs[f'fused_r{r}'] = _max_err(captured[f'fused_r{r}'], inter[f'fused_r{r}'])
    print(f'\n{tag} max abs errors: ' + ', '.join(f'{k} {v:.2e}' for k, v in errs.items()))
    bad = {k: v for k, v in errs.items() if not v <= TOL}
    assert not bad, f'{tag}: errors above {TOL}: {bad}'
    fp16_err = _max_err(y, np.load(_ref(shared_dir, f'{tag}_output_fp16.npy')))
    assert fp16_err <= TOL_FP16, f'{tag}: full output vs fp16 reference {fp16_err}'


def _forward_reference(shared_dir, tag, manifest, mismatches, sd, arch_opt):
    """Build PaniniNet from converted weights, run the reference input of ``tag`` and collect what the tests compare."""
    net = PaniniNet(**arch_opt).eval()
    net.load_state_dict(sd, strict=True)
    x = torch.from_numpy(np.load(_ref(shared_dir, f'{tag}_input.npy')))
    y, extras, captured = _run(net, x)
    return {'manifest': manifest, 'recipe_mismatches': mismatches, 'arch_opt': arch_opt, 'net': net, 'y': y,
            'extras': extras, 'captured': captured}


@pytest.fixture(scope='module')
def mfr_run(shared_dir, tmp_path_factory):
    """MFR: recipe -> official-format file (meta with non-tensor objects) -> our loader -> forward."""
    manifest, recipe = _recipe(shared_dir, 'mfr')
    mismatches = _recipe_mismatches(shared_dir, 'mfr', recipe)
    path = str(tmp_path_factory.mktemp('official') / 'panini_mfr_recipe.pth')
    meta = {'mmedit_version': '0.14.0', 'config': 'model = dict(type="GLEAN")', 'exp_name': 'panini_mfr',
            'mmedit Version': '0.14.0', 'seed': np.int64(0), 'env_info': 'sys.platform: linux', 'epoch': 1,
            'iter': 800000, 'mmcv_version': '1.4.0', 'time': 'Mon Nov 22 00:00:00 2021'}
    optimizer = {'generator': {'state': {}, 'param_groups': [{'lr': 1e-7, 'betas': (0.9, 0.99), 'eps': 1e-8,
                                                              'weight_decay': 0, 'amsgrad': False,
                                                              'params': list(range(273))}]}}
    torch.save({'meta': meta, 'state_dict': recipe, 'optimizer': optimizer}, path)
    del recipe
    return _forward_reference(shared_dir, 'mfr', manifest, mismatches, *load_panini_weights(path))


@pytest.fixture(scope='module')
def sr_run(shared_dir):
    """SR: recipe -> converter (in memory) -> forward."""
    manifest, recipe = _recipe(shared_dir, 'sr')
    mismatches = _recipe_mismatches(shared_dir, 'sr', recipe)
    return _forward_reference(shared_dir, 'sr', manifest, mismatches, *convert_official_state_dict(recipe))


@pytest.mark.parametrize('tag', ['mfr', 'sr'])
def test_recipe_matches_check_sums(request, tag):
    assert request.getfixturevalue(f'{tag}_run')['recipe_mismatches'] == []


def test_mfr_arch_opt_is_paper_default(mfr_run):
    assert architecture(mfr_run['arch_opt']) == architecture(variant_kwargs('mfr'))
    default = PaniniNet()
    assert {k: v.shape for k, v in default.state_dict().items()} == \
        {k: v.shape for k, v in mfr_run['net'].state_dict().items()}


def test_sr_arch_opt(sr_run):
    assert architecture(sr_run['arch_opt']) == architecture(variant_kwargs('sr16'))


@pytest.mark.parametrize('tag', ['mfr', 'sr'])
def test_parameter_count_equals_official(request, tag):
    run = request.getfixturevalue(f'{tag}_run')
    gen = run['manifest']['counts']
    ours_params = sum(p.numel() for p in run['net'].parameters())
    ours_entries = len(run['net'].state_dict())
    assert ours_params == gen['generator_parameter_numel']
    assert ours_entries == gen['generator_entries']


def test_mfr_forward_equals_official(shared_dir, mfr_run):
    _compare(shared_dir, 'mfr', mfr_run['y'], mfr_run['extras'], mfr_run['captured'])
    ref_rep = np.load(_ref(shared_dir, 'mfr_deg_rep.npy'))
    assert _max_err(mfr_run['extras']['v_dr'], ref_rep) <= TOL


def test_sr_forward_equals_official(shared_dir, sr_run):
    _compare(shared_dir, 'sr', sr_run['y'], sr_run['extras'], sr_run['captured'])


@pytest.mark.parametrize('tag', ['mfr', 'sr'])
def test_cpu_fast_forwards_stay_within_2e5_of_the_plain_ops(request, shared_dir, tag):
    """The accumulating dense blocks and the channels_last GPM against BasicSR's forwards.

    2e-5: the CPU modulated convs fold the equalised-lr gain and the bias into the conv and pick, per layer, whether
    to modulate the weight or the activations (measured 1.03e-5 on MFR), a float-rounding difference only.

    The fixtures' forward ran with the CPU fast forwards (no autograd, CPU, fp32); ``plain_ops`` runs the same
    network with BasicSR's dense blocks, style convs and ToRGBs, on the official input with the recipe weights.
    """
    run = request.getfixturevalue(f'{tag}_run')
    x = torch.from_numpy(np.load(_ref(shared_dir, f'{tag}_input.npy')))
    with torch.no_grad(), plain_ops():
        plain = run['net'](x)
    diff = (run['y'] - plain).abs()
    print(f'\n{tag}: max |fast - plain| {float(diff.max()):.2e}, mean {float(diff.mean()):.2e}')
    assert 0 < float(diff.max()) <= 2e-5


def test_official_moco_file_gives_the_reference_dre(shared_dir, mfr_run, tmp_path):
    """A MoCo file in the official layout (queue first, 'module.' prefixes) -> dre_load_path -> same DRE."""
    ref_dre = {k[len('dre.'):]: v for k, v in mfr_run['net'].state_dict().items() if k.startswith('dre.')}
    state = {'module.queue': torch.randn(256, 8192), 'module.queue_ptr': torch.zeros(1, dtype=torch.long)}
    state.update({f'module.encoder_q.{k}': v for k, v in ref_dre.items()})
    state.update({f'module.encoder_k.{k}': torch.zeros_like(v) for k, v in ref_dre.items()})
    path = str(tmp_path / 'moco_checkpoint_0199.pth.tar')
    torch.save({'epoch': 200, 'arch': 'resnet50', 'state_dict': state, 'optimizer': {'state': {}}}, path)
    net = PaniniNet(in_size=64, out_size=128, num_style_feat=32, narrow=0.125, dre_load_path=path)
    for k, v in net.dre.state_dict().items():
        assert torch.equal(v, ref_dre[k]), k
