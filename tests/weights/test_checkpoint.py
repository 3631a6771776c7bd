"""Checkpoint loading: weights_only safety, our format, official format (tiny, via an inverse key map), the CLI."""
import os
import os.path as osp
import re
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from helpers import REPO_ROOT as REPO  # noqa: E402

from panininet.archs.panini_arch import PaniniNet
from panininet.weights.checkpoint import load_checkpoint_file, pick_params, strip_prefix
from panininet.weights.official import convert_generator_key, convert_official_state_dict, is_official_panini_checkpoint
from panininet.weights.panini_checkpoint import load_panini_weights

TINY = {'in_size': 64, 'out_size': 128, 'num_style_feat': 32, 'narrow': 0.125, 'channel_multiplier': 1,
        'rrdb_channels': 4, 'num_rrdbs': 2, 'rrdb_growth': 4, 'cbam_reduction': 2, 'dre_num_feat': 8}


class _RunsCode:
    """Unpickling this calls os.mkdir(marker): what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_crafted_pickle_is_refused_without_running_code(tmp_path):
    marker = str(tmp_path / 'pwned')
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': _RunsCode(marker)}, path)
    with pytest.raises(RuntimeError, match=re.escape(path)) as err:
        load_checkpoint_file(path)
    assert 'weights_only=True' in str(err.value)
    assert not osp.exists(marker)
    with pytest.raises(RuntimeError):
        load_panini_weights(path)
    assert not osp.exists(marker)


def test_missing_file_is_named(tmp_path):
    path = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(path)


def test_numpy_objects_in_meta_are_allowed(tmp_path):
    path = str(tmp_path / 'meta.pth')
    torch.save({'meta': {'seed': np.int64(7), 'lr': np.float32(0.5), 'hist': np.arange(3)}, 'x': torch.ones(2)},
               path)
    obj = load_checkpoint_file(path)
    assert int(obj['meta']['seed']) == 7 and obj['meta']['hist'].tolist() == [0, 1, 2]


def test_pick_params_prefers_ema_and_strips_module():
    a, b = torch.zeros(1), torch.ones(1)
    assert torch.equal(pick_params({'params': {'w': a}, 'params_ema': {'module.w': b}})['w'], b)
    assert torch.equal(pick_params({'params': {'w': a}})['w'], a)
    with pytest.raises(ValueError, match='params_ema'):
        pick_params({'net': 3}, 'x.pth')
    # a chosen key (BaseModel.load_network's param_key), with and without accepting a bare state dict
    assert torch.equal(pick_params({'params': {'w': a}, 'g': {'w': b}}, keys=('g',))['w'], b)
    assert torch.equal(pick_params({'module.w': a}, keys=('g',))['w'], a)
    with pytest.raises(ValueError, match="no 'g' entry"):
        pick_params({'w': a}, 'x.pth', keys=('g',), allow_bare=False)


def test_strip_prefix_keeps_or_selects():
    sd = OrderedDict([('module.a', 1), ('b', 2), ('module.c', 3)])
    assert list(strip_prefix(sd, 'module.').items()) == [('a', 1), ('b', 2), ('c', 3)]
    assert list(strip_prefix(sd, 'module.', only=True).items()) == [('a', 1), ('c', 3)]


def test_safe_globals_extend_the_allow_list_only_when_asked(tmp_path):
    from datetime import timedelta
    path = str(tmp_path / 'state.pth')
    torch.save({'elapsed': timedelta(seconds=3), 'x': torch.ones(1)}, path)
    with pytest.raises(RuntimeError, match='weights_only=True'):
        load_checkpoint_file(path)
    assert load_checkpoint_file(path, safe_globals=(timedelta, ))['elapsed'] == timedelta(seconds=3)


def test_our_format_with_arch(tmp_path):
    net = PaniniNet(**TINY)
    path = str(tmp_path / 'ours.pth')
    torch.save({'params_ema': net.state_dict(), 'arch': TINY}, path)
    sd, arch = load_panini_weights(path)
    assert arch == TINY
    PaniniNet(**arch).load_state_dict(sd, strict=True)
    torch.save({'params': net.state_dict()}, path)
    assert load_panini_weights(path)[1] is None


# inverse of panininet.weights.official.convert_generator_key, for building an official-layout file of a tiny net
_INVERSE = [
    (r'gpm\.noises\.noise(\d+)', r'generator.injected_noise_\1'),
    (r'gpm\.style_mlp\.(\d+)\.bias', r'generator.style_mapping.\1.bias'),
    (r'gpm\.style_mlp\.(\d+)\.weight', r'generator.style_mapping.\1.linear.weight_orig'),
    (r'gpm\.constant_input\.weight', 'generator.constant_input.input'),
    (r'gpm\.(style_conv1|style_convs\.\d+|to_rgb1|to_rgbs\.\d+)\.modulated_conv\.weight',
     r'generator.\1.conv.weight_orig'),
    (r'gpm\.(\S+?)\.modulated_conv\.modulation\.bias', r'generator.\1.conv.style_modulation.bias'),
    (r'gpm\.(\S+?)\.modulated_conv\.modulation\.weight', r'generator.\1.conv.style_modulation.linear.weight_orig'),
    (r'gpm\.(\S+?)\.modulated_conv\.smooth\.kernel', r'generator.\1.conv.blur.kernel'),
    (r'gpm\.(style_conv1|style_convs\.\d+)\.weight', r'generator.\1.noise_injector.weight'),
    (r'gpm\.(\S+)', r'generator.\1'),
    (r'learned_v_dr', 'choice_vector'),
    (r'dre\.(\S+)', r'deg_encoder.\1'),
    (r'ife\.cbam\.fea_preprocess\.(\S+)', r'encoder.0.1.fea_preprocess.\1'),
    (r'ife\.cbam\.channel_gate\.(\S+)', r'encoder.0.1.ChannelGate.\1'),
    (r'ife\.cbam\.spatial_gate\.(\S+)', r'encoder.0.1.SpatialGate.spatial.\1'),
    (r'ife\.(conv_first|body|conv_body)(\S*)', r'encoder.0.0.\1\2'),
    (r'dafi\.mapping\.(\S+)', r'AFS_maskGen.mapping.\1'),
    (r'ife\.h_convs\.(\S+)', r'fusion_out.\1'),
]


def _official_key(key, num_levels):
    m = re.fullmatch(r'ife\.stem\.(\d+)\.(\w+)', key)
    if m:
        return f'encoder.0.{int(m.group(1)) + 2}.{m.group(2)}'
    m = re.fullmatch(r'ife\.downs\.(\d+)\.0\.(\w+)', key)
    if m:
        return f'encoder.{int(m.group(1)) + 1}.0.{m.group(2)}'
    m = re.fullmatch(r'lce\.(conv|fc)\.(\w+)', key)
    if m:
        return f'encoder.{num_levels}.{0 if m.group(1) == "conv" else 3}.{m.group(2)}'
    for pattern, repl in _INVERSE:
        if re.fullmatch(pattern, key):
            out = re.sub(pattern, repl, key)
            return out.replace('generator.style_conv1.', 'generator.conv1.').replace('generator.style_convs.',
                                                                                      'generator.convs.')
    raise KeyError(key)


@pytest.mark.parametrize('condition', ['dre', 'learned'])
def test_tiny_official_file_round_trip(tmp_path, condition):
    net = PaniniNet(**dict(TINY, condition=condition)).eval()
    ours = net.state_dict()
    official = OrderedDict(('generator.' + _official_key(k, net.num_levels), v) for k, v in ours.items())
    for k in official:
        assert convert_generator_key(k[len('generator.'):], net.num_levels) in ours, k
    official['discriminator.conv.weight'] = torch.zeros(1)
    path = str(tmp_path / 'panini_latest.pth')
    torch.save({'meta': {'config': 'x', 'seed': None, 'iter': 5}, 'state_dict': official,
                'optimizer': {'generator': {'state': {}, 'param_groups': []}}}, path)
    assert is_official_panini_checkpoint(torch.load(path, map_location='cpu', weights_only=True))
    sd, arch = load_panini_weights(path)
    assert arch == dict(TINY, condition=condition, fusion='dafi')
    assert list(sd) == list(ours)  # same order as our state dict: a strict load needs no reordering
    net2 = PaniniNet(**arch).eval()
    net2.load_state_dict(sd, strict=True)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), net2(x))

    out_path = str(tmp_path / 'converted.pth')
    proc = subprocess.run([sys.executable, osp.join(REPO, 'scripts', 'convert_official.py'), path, out_path],
                          capture_output=True, text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    conv = torch.load(out_path, map_location='cpu', weights_only=True)
    assert conv['arch'] == arch and all(torch.equal(conv['params_ema'][k], v) for k, v in sd.items())


def test_converter_refuses_unknown_keys():
    with pytest.raises(KeyError, match='unexpected key'):
        convert_official_state_dict({'generator.encoder.0.0.conv_first.weight': torch.zeros(4, 3, 3, 3),
                                     'generator.something_else': torch.zeros(1)})


def test_cli_refuses_to_overwrite_its_input(tmp_path):
    path = str(tmp_path / 'a.pth')
    torch.save({'state_dict': {}}, path)
    proc = subprocess.run([sys.executable, osp.join(REPO, 'scripts', 'convert_official.py'), path, path],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and 'equals input' in proc.stderr


def test_mmgen_stylegan2_checkpoint_loads_into_gpm(tmp_path):
    """The official configs start the prior from an MMGen file (``generator_ema.*``): decoder_load_path takes it."""
    src = PaniniNet(**TINY)
    gpm_sd = {k: v for k, v in src.state_dict().items() if k.startswith('gpm.')}
    mmgen = {_official_key(k, src.num_levels).replace('generator.', 'generator_ema.', 1): v + 1
             for k, v in gpm_sd.items()}
    mmgen.update({'discriminator.convs.0.0.conv.weight_orig': torch.zeros(1)})
    path = str(tmp_path / 'stylegan2-ffhq-mmgen.pth')
    torch.save({'meta': {'iter': 1}, 'state_dict': mmgen}, path)
    net = PaniniNet(**dict(TINY, decoder_load_path=path))
    ours = net.state_dict()
    for k, v in gpm_sd.items():
        assert torch.equal(ours[k], v + 1), k
