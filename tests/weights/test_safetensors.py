"""safetensors in and out: the one reader, the writer, the converters, training's networks, ``-v mfr --model_path``."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from panininet.atomic import save_checkpoint_file
from panininet.weights.checkpoint import (
    CheckpointError,
    is_safetensors_file,
    load_checkpoint_file,
    pick_params,
)
from panininet.weights.panini_checkpoint import load_panini_weights

safetensors_torch = pytest.importorskip('safetensors.torch')


def _state(seed, n=3):
    g = torch.Generator().manual_seed(seed)
    return {f'layer{i}.weight': torch.randn(2, 3, generator=g) for i in range(n)}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_checkpoint_round_trip_and_what_other_loaders_see(tmp_path):
    arch = {'type': 'PaniniNet', 'in_size': 64, 'narrow': 0.25, 'fusion': 'dafi'}
    ckpt = {'params': _state(0), 'params_ema': _state(1), 'arch': arch, 'iter': 6}
    path = str(tmp_path / 'net_g_6.safetensors')
    save_checkpoint_file(ckpt, path)
    assert is_safetensors_file(path)
    back = load_checkpoint_file(path)
    assert set(back) == set(ckpt) and back['arch'] == arch and back['iter'] == 6
    assert _equal(back['params'], ckpt['params']) and _equal(back['params_ema'], ckpt['params_ema'])
    # a plain safetensors loader (ComfyUI, spandrel) finds the EMA network under its own key names
    plain = safetensors_torch.load_file(path)
    assert _equal({k: v for k, v in plain.items() if not k.startswith('params.')}, ckpt['params_ema'])
    with safetensors_torch.safe_open(path, 'pt') as f:
        assert json.loads(f.metadata()['panininet'])['extra']['arch'] == arch


def test_foreign_bare_file_and_a_misnamed_one(tmp_path):
    sd = _state(2)
    path = str(tmp_path / 'from_a_hub.pth')  # safetensors bytes under a .pth name: recognised by content
    safetensors_torch.save_file(sd, path)
    obj = load_checkpoint_file(path)
    assert _equal(obj, sd) and _equal(pick_params(obj, path), sd)
    torch_file = str(tmp_path / 'torch.pth')
    torch.save({'params': sd}, torch_file)
    assert not is_safetensors_file(torch_file)


def test_bare_state_dict_writes_a_plain_file_and_shared_tensors_are_stored(tmp_path):
    w = torch.randn(4, 4)
    sd = {'a': w, 'b': w, 'c': w[1]}  # tied weights and a view (safetensors refuses shared memory)
    path = str(tmp_path / 'tied.safetensors')
    save_checkpoint_file(sd, path)
    back = load_checkpoint_file(path)
    assert _equal(back, {k: v.contiguous() for k, v in sd.items()})
    with safetensors_torch.safe_open(path, 'pt') as f:
        assert 'panininet' not in (f.metadata() or {})


def test_what_safetensors_cannot_hold_is_refused_and_broken_files_named(tmp_path):
    with pytest.raises(ValueError, match='JSON metadata only'):
        save_checkpoint_file({'params': _state(0), 'seed': np.int64(3)}, str(tmp_path / 'x.safetensors'))
    assert not osp.exists(tmp_path / 'x.safetensors')
    path = str(tmp_path / 'cut.safetensors')
    save_checkpoint_file({'params': _state(0)}, path)
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) - 20])
    with pytest.raises(CheckpointError, match='not a readable safetensors'):
        load_checkpoint_file(path)


def test_panini_weights_and_the_converter_write_safetensors(tmp_path):
    from collections import OrderedDict

    from helpers import load_script
    from test_checkpoint import TINY, _official_key

    from panininet.archs.panini_arch import PaniniNet

    net = PaniniNet(**TINY)
    official = OrderedDict(('generator.' + _official_key(k, net.num_levels), v) for k, v in net.state_dict().items())
    src = str(tmp_path / 'panini_mfr_latest.pth')
    torch.save({'meta': {}, 'state_dict': official}, src)
    conv = load_script('scripts/convert_official.py')
    dst = str(tmp_path / 'panini_mfr.st')
    assert conv.main([src, dst, '--format', 'safetensors']) == 0
    assert is_safetensors_file(dst)
    sd, arch = load_panini_weights(dst)
    assert _equal(sd, net.state_dict()) and {k: arch[k] for k in TINY} == TINY


def test_saved_networks_in_safetensors_and_resume_finds_them(tmp_path):
    from panininet.models.base_model import PaniniBaseModel
    from panininet.resume import use_safetensors_networks

    model = PaniniBaseModel.__new__(PaniniBaseModel)
    model.opt = {'rank': 0, 'dist': False, 'num_gpu': 0, 'path': {'models': str(tmp_path)},
                 'logger': {'save_checkpoint_format': 'safetensors'}}
    net = torch.nn.Conv2d(3, 4, 3)
    model.save_network([net, net], 'net_g', 6, ['params', 'params_ema'], extra={'arch': {'type': 'X'}})
    path = tmp_path / 'net_g_6.safetensors'
    assert path.is_file() and not (tmp_path / 'net_g_6.pth').exists()
    back = load_checkpoint_file(str(path))
    assert back['arch'] == {'type': 'X'} and _equal(back['params'], net.state_dict())
    opt = {'path': {'pretrain_network_g': str(tmp_path / 'net_g_6.pth'),
                    'pretrain_network_d': str(tmp_path / 'net_d_6.pth')}}
    use_safetensors_networks(opt)  # what basicsr's check_resume set, then ours
    assert opt['path']['pretrain_network_g'] == str(path)
    assert opt['path']['pretrain_network_d'].endswith('net_d_6.pth')  # no twin: left for load_network to report
    other = PaniniBaseModel.__new__(PaniniBaseModel)
    other.opt = {'root_path': str(tmp_path)}
    fresh = torch.nn.Conv2d(3, 4, 3)
    other.load_network(fresh, str(path), param_key='params_ema')
    assert _equal(fresh.state_dict(), net.state_dict())


def test_cli_model_path_safetensors_works_like_pth(cli, tiny_model, tmp_path, shared_dir):
    pytest.importorskip('dlib')
    from helpers import FAST

    pth = tiny_model
    st = str(tmp_path / 'tiny_panini.safetensors')
    save_checkpoint_file(torch.load(pth, weights_only=True), st)
    face = cv2.imread(osp.join(shared_dir, 'testdata', 'cropped_faces', 'Julia_Roberts_crop.png'))
    inputs = tmp_path / 'in'
    inputs.mkdir()
    cv2.imwrite(str(inputs / 'face.png'), cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA))
    outs = {}
    for name, model in (('pth', pth), ('st', st)):
        out = tmp_path / f'out_{name}'
        assert cli.main(['-i', str(inputs), '-o', str(out), '-v', 'mfr', '--model_path', model, '--aligned',
                         *FAST]) == 0
        outs[name] = cv2.imread(str(out / 'restored_faces' / 'face_00.png'))
    np.testing.assert_array_equal(outs['pth'], outs['st'])
