"""ONNX export (scripts/export_onnx.py, panininet/platform/onnx_export.py): onnxruntime (CPU) computes what PyTorch
computes.

Tiny networks (fast): the script's file for a DAFI and a Cat-Conv PaniniNet at batch 1 and 3, ``mask_bias`` acting
as in PyTorch, the metadata, the export leaving the PyTorch forward untouched, the activation-modulated conv equal
to basicsr's, bad arguments. Full size (slow, as the official-equivalence tests): the MFR network with the official
reference recipe weights on the official reference input, batch 1 and 2, max abs error <= 1e-4.
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from basicsr.archs.stylegan2_arch import ModulatedConv2d

from panininet.archs.panini_arch import PaniniNet
from panininet.platform.onnx_export import exportable, modulated_conv_activation_form, read_onnx_metadata

ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')

from helpers import REPO_ROOT as REPO  # noqa: E402
from helpers import load_script  # noqa: E402

SCRIPT = osp.join(REPO, 'scripts', 'export_onnx.py')
TOL = 1e-4
TINY = {'in_size': 32, 'out_size': 64, 'num_style_feat': 32, 'narrow': 0.125, 'channel_multiplier': 1,
        'rrdb_channels': 4, 'num_rrdbs': 1, 'rrdb_growth': 4, 'dre_num_feat': 8}


def _script():
    module = load_script(SCRIPT, 'export_onnx_script')
    return module


def _tiny_weights(tmp_path, **kw):
    """A tiny PaniniNet with non-zero noise strengths, saved in our layout (params_ema + arch)."""
    arch = dict(TINY, **kw)
    net = PaniniNet(**arch).eval()
    with torch.no_grad():
        for conv in net.gpm.style_convs:  # BasicSR starts noise strengths at 0: make the stored noise matter
            conv.weight.fill_(0.3)
    path = str(tmp_path / 'tiny.pth')
    torch.save({'params_ema': net.state_dict(), 'arch': arch}, path)
    return net, path


def _session(path):
    return ort.InferenceSession(path, providers=['CPUExecutionProvider'])


def _inputs(net, b, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, net.in_size, net.in_size, generator=g) * 2 - 1


@pytest.fixture(scope='module', params=['dafi', 'catconv'])
def exported(request, tmp_path_factory):
    """A tiny network of each fusion, its weights file, the script's ONNX file; PyTorch outputs before/after."""
    tmp_path = tmp_path_factory.mktemp(f'onnx_{request.param}')
    net, weights = _tiny_weights(tmp_path, fusion=request.param)
    out = str(tmp_path / 'tiny.onnx')
    x = _inputs(net, 2, seed=7)
    with torch.no_grad():
        before = net(x)
        code = _script().main(['-v', 'mfr', '--model_path', weights, '-o', out])
        after = net(x)
    return {'net': net, 'path': out, 'weights': weights, 'fusion': request.param, 'code': code, 'before': before,
            'after': after}


def test_tiny_export_matches_pytorch_at_any_batch(exported):
    net, fusion = exported['net'], exported['fusion']
    assert exported['code'] == 0
    session = _session(exported['path'])
    names = [i.name for i in session.get_inputs()]
    assert names == (['input', 'mask_bias'] if fusion == 'dafi' else ['input'])
    assert session.get_inputs()[0].shape == ['batch', 3, 32, 32]
    assert session.get_outputs()[0].shape == ['batch', 3, 64, 64]
    meta = read_onnx_metadata(exported['path'])
    assert (meta['family'], meta['in_size'], meta['out_size'], meta['opset']) == ('panini', '32', '64', '17')
    assert meta['fusion'] == fusion
    for b in (1, 3):
        x = _inputs(net, b, seed=b)
        feeds = {'input': x.numpy()}
        if fusion == 'dafi':
            feeds['mask_bias'] = np.zeros(net.num_levels, np.float32)
        with torch.no_grad():
            ref = net(x).numpy()
        assert np.abs(session.run(['output'], feeds)[0] - ref).max() <= TOL


@pytest.mark.parametrize('exported', ['dafi'], indirect=True)  # Cat-Conv has no masks, no mask_bias input
def test_mask_bias_input_acts_as_in_pytorch(exported):
    net = exported['net']
    session = _session(exported['path'])
    x = _inputs(net, 2)
    outs = []
    for bias in ([0, 0, 0, 0], [-3, -3, -3, -3], [2.5, 0, -1, 4]):
        bias = np.asarray(bias, np.float32)
        with torch.no_grad():
            ref = net(x, mask_bias=torch.from_numpy(bias)).numpy()
        got = session.run(['output'], {'input': x.numpy(), 'mask_bias': bias})[0]
        assert np.abs(got - ref).max() <= TOL
        outs.append(got)
    assert np.abs(outs[1] - outs[0]).max() > 0.1  # the input is not a constant of the graph
    assert np.abs(outs[2] - outs[0]).max() > 0.1


def test_export_leaves_the_pytorch_forward_unchanged(exported):
    assert torch.equal(exported['before'], exported['after'])
    assert all('forward' not in vars(m) for m in exported['net'].modules())


def test_onnxruntime_family_equals_the_pytorch_family(exported):
    """--backend onnxruntime: sizes read off the model, the weight reaching mask_bias through the same mapping."""
    from panininet.families import build_family
    onnx_family = build_family('mfr', exported['path'], 'cpu', backend='onnxruntime')
    torch_family = build_family('mfr', exported['weights'], 'cpu')
    assert (onnx_family.in_size, onnx_family.out_size) == (32, 64)
    assert onnx_family.supports_weight == torch_family.supports_weight == (exported['fusion'] == 'dafi')
    faces = _inputs(exported['net'], 2, seed=3)
    weights = (None, 0.5, 0.1, 0.9) if onnx_family.supports_weight else (None, 0.5)
    outs = {}
    for weight in weights:
        outs[weight] = onnx_family(faces, weight)
        assert outs[weight].shape == (2, 3, 64, 64)
        assert (outs[weight] - torch_family(faces, weight)).abs().max() <= TOL
    if onnx_family.supports_weight:
        assert (outs[0.1] - outs[0.5]).abs().max() > 0.1 and (outs[0.9] - outs[0.5]).abs().max() > 0.1
    else:
        with pytest.raises(ValueError, match='no mask_bias input'):
            onnx_family(faces, 0.1)


@pytest.mark.parametrize('exported', ['dafi'], indirect=True)
def test_onnxruntime_backend_refusals(exported, tmp_path):
    from panininet.families import build_family
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'not a model')
    cases = [({'model_path': None}, 'needs --model_path'),
             ({'model_path': str(tmp_path / 'absent.onnx')}, 'no such file'),
             ({'model_path': exported['weights']}, 'takes an .onnx file'),
             ({'model_path': str(garbage)}, 'onnxruntime cannot load it'),
             ({'model_path': exported['path'], 'precision': 'bf16'}, 'fp32 model'),
             ({'model_path': exported['path'], 'backend': 'tensorrt'}, 'Unknown backend')]
    for kwargs, message in cases:
        kwargs = dict({'device': 'cpu', 'backend': 'onnxruntime'}, **kwargs)
        with pytest.raises(ValueError, match=message):
            build_family('mfr', **kwargs)


@pytest.mark.parametrize('exported', ['dafi'], indirect=True)
def test_cli_backend_onnxruntime_restores_as_pytorch(exported, shared_dir, tmp_path):
    """inference_panini.py --aligned with the .onnx file and with its .pth: the same restored face (uint8 +-1)."""
    import cv2

    cli = load_script(osp.join(REPO, 'inference_panini.py'), 'inference_panini')
    face = osp.join(shared_dir, 'testdata', 'cropped_faces', 'Julia_Roberts_crop.png')
    common = ['-i', face, '--aligned', '--device', 'cpu', '--no_download', '-w', '0.3']
    assert cli.main([*common, '-o', str(tmp_path / 'ort'), '--backend', 'onnxruntime', '--model_path',
                     exported['path']]) == 0
    assert cli.main([*common, '-o', str(tmp_path / 'pt'), '--model_path', exported['weights']]) == 0
    name = osp.join('restored_faces', 'Julia_Roberts_crop_00.png')
    a, b = (cv2.imread(str(tmp_path / d / name)).astype(int) for d in ('ort', 'pt'))
    assert a.shape == b.shape and np.abs(a - b).max() <= 1


def test_mmrb_export_through_the_script_and_the_onnxruntime_family(tmp_path, capsys):
    """-v mmrb: input only (no fidelity knob, no random noise); the onnxruntime family equals the PyTorch one."""
    from panininet.archs.mmrb_arch import MMRBNet
    from panininet.families import build_family
    arch = {'out_size': 32, 'num_style_feat': 8, 'num_mlp': 2, 'channel_multiplier': 1, 'narrow': 1 / 32}
    net = MMRBNet(**arch)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith('noise_weight'):  # open the concatenated noise branches
                p.fill_(0.5)
    weights, out = str(tmp_path / 'mmrb.pth'), str(tmp_path / 'mmrb.onnx')
    torch.save({'params_ema': net.state_dict(), 'arch': arch}, weights)
    assert _script().main(['-v', 'mmrb', '--model_path', weights, '-o', out, '--check']) == 0
    diff = float(capsys.readouterr().out.strip().splitlines()[-1].rsplit(' ', 1)[1])
    assert diff <= TOL
    onnx_family = build_family('mmrb', out, 'cpu', backend='onnxruntime')
    assert (onnx_family.in_size, onnx_family.out_size, onnx_family.supports_weight) == (32, 32, False)
    faces = torch.rand(3, 3, 32, 32) * 2 - 1
    ref = build_family('mmrb', weights, 'cpu')(faces)
    assert (onnx_family(faces) - ref).abs().max() <= TOL


@pytest.mark.parametrize(('sample_mode', 'demodulate'), [(None, True), ('upsample', True), ('downsample', True),
                                                         (None, False)])
def test_activation_form_equals_basicsr_modulated_conv(sample_mode, demodulate):
    conv = ModulatedConv2d(8, 6, 3, num_style_feat=16, demodulate=demodulate, sample_mode=sample_mode)
    x, style = torch.randn(3, 8, 12, 12), torch.randn(3, 16)
    with torch.no_grad():
        ref = conv(x, style)
        with exportable(conv):
            got = conv(x, style)
        direct = modulated_conv_activation_form(conv, x, style)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
    assert torch.equal(got, direct)
    assert torch.equal(conv(x, style), ref)  # basicsr's forward is back


@pytest.mark.parametrize(('args', 'message'), [
    (['--model_path', '{missing}', '-o', '{out}'], 'no such file'),
    (['--model_path', '{weights}', '-o', '{dir}/model.pth'], 'must end in .onnx'),
    (['-v', 'nope', '--model_path', '{weights}', '-o', '{out}'], 'unknown -v'),
    (['--model_path', '{weights}', '-o', '{out}', '--opset', '9'], 'use 14 or later'),
    (['--model_path', '{garbage}', '-o', '{out}'], 'cannot build'),
])
def test_bad_arguments_one_line_exit_2(tmp_path, capsys, args, message):
    weights = tmp_path / 'w.pth'
    torch.save({'params_ema': {}}, weights)
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    fill = {'missing': str(tmp_path / 'none.pth'), 'out': str(tmp_path / 'o.onnx'), 'dir': str(tmp_path),
            'weights': str(weights), 'garbage': str(garbage)}
    assert _script().main([a.format(**fill) for a in args]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and message in lines[0], err
    assert not (tmp_path / 'o.onnx').exists()


@pytest.mark.slow
def test_full_size_mfr_recipe_on_official_input(shared_dir, tmp_path):
    """One export of the 512 -> 1024 network with the recipe weights, two onnxruntime runs (batch 1 and 2)."""
    from official_recipe import make_recipe_state_dict

    from panininet.platform.onnx_export import export_onnx
    from panininet.weights.official import convert_official_state_dict
    ref = osp.join(shared_dir, 'official_reference')
    with open(osp.join(ref, 'manifest_panini_mfr.json')) as f:
        state_dict, arch_opt = convert_official_state_dict(make_recipe_state_dict(json.load(f)))
    net = PaniniNet(**arch_opt).eval()
    net.load_state_dict(state_dict, strict=True)
    del state_dict
    x = torch.from_numpy(np.load(osp.join(ref, 'mfr_input.npy')))
    x2 = torch.cat([x, x.flip(-1)])  # a second, different face
    path = str(tmp_path / 'mfr.onnx')
    export_onnx(net, path)
    session = _session(path)
    bias = np.zeros(net.num_levels, np.float32)
    with torch.no_grad():
        want = net(x2).numpy()  # one PyTorch forward; face 0 of it is the batch-1 reference too
    errors = {}
    for b in (1, 2):
        got = session.run(['output'], {'input': x2[:b].numpy(), 'mask_bias': bias})[0]
        errors[b] = float(np.abs(got - want[:b]).max())
    crop = np.load(osp.join(ref, 'mfr_output_crop_fp32.npy'))
    errors['official_crop'] = float(np.abs(got[:1, :, 384:640, 384:640] - crop).max())
    print(f'\nONNX vs PyTorch max abs error: batch 1 {errors[1]:.2e}, batch 2 {errors[2]:.2e}; '
          f'vs the official crop {errors["official_crop"]:.2e}')
    assert max(errors.values()) <= TOL, errors
