"""Helpers shared by the tests: the repository root, loading a script as a module, PSNR, GFP-GAN's landmark file, and
the in-process training runner (``models/test_train_*.py``)."""
import importlib.util
import logging
import os
import os.path as osp
import re
import socket
import sys
from unittest import mock

import numpy as np
import pytest
import torch
import yaml
from basicsr.train import train_pipeline

from panininet.archs.panini_arch import PaniniNet
from panininet.resume import torch_load_state

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# $PANINI_SHARED_DIR points elsewhere (e.g. a copy carried to a GPU machine: benchmarks/gpu_check.py --shared)
SHARED_DIR = os.environ.get('PANINI_SHARED_DIR') or osp.join(osp.dirname(REPO_ROOT), 'shared')


def _require_shared():
    return os.environ.get('PANINI_REQUIRE_SHARED', '') not in ('', '0')


def get_shared(*parts):
    """Path of a file or folder under ../shared, skipping (or failing under PANINI_REQUIRE_SHARED=1) if absent."""
    path = osp.join(SHARED_DIR, *parts)
    if not osp.exists(path):
        msg = f'{path} is absent (the ../shared folder beside the repository)'
        if _require_shared():
            pytest.fail(f'{msg} and PANINI_REQUIRE_SHARED=1')
        pytest.skip(msg)
    return path


# a PaniniNet small enough for 2 shared cores (64 -> 128, narrow 0.25)
TINY_ARCH = dict(in_size=64, out_size=128, narrow=0.25, channel_multiplier=1, num_style_feat=64, dre_num_feat=16,
                 dre_in_size=64)
# the CLI's fastest offline settings: dlib's HOG detector at its native scale, CPU, nothing downloaded
FAST = ['--detector', 'dlib', '--dlib_upsample', '0', '--device', 'cpu', '--no_download']


def write_tiny_model(folder):
    """A tiny randomly initialised PaniniNet (:data:`TINY_ARCH`, seed 0) in our weights format; returns its path."""
    torch.manual_seed(0)
    path = osp.join(str(folder), 'tiny_panini.pth')
    torch.save({'params_ema': PaniniNet(**TINY_ARCH).state_dict(), 'arch': TINY_ARCH}, path)
    return path


def load_script(relpath, name=None):
    """A script of the repository (``'inference_panini.py'``, ``'scripts/evaluate.py'``) imported as a module."""
    name = name or osp.splitext(osp.basename(relpath))[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO_ROOT, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def psnr(a, b, sel=None):
    """PSNR in dB of two uint8 images (optionally over the pixels ``sel`` selects); identical images give 100."""
    d = (a.astype(np.float64) - b.astype(np.float64))[sel if sel is not None else slice(None)]
    return 10 * np.log10(255.0**2 / max(np.mean(d**2), 1e-10))


@pytest.fixture(scope='module')
def one_thread():
    """Tiny convolutions: on 2 shared cores, thread synchronisation costs more than it saves (about 6x here)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_training(root, opt_path, *args):
    """``train_pipeline(root)`` in this process, as ``panininet/train.py -opt opt_path *args``; returns log lines."""
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger('basicsr').addHandler(handler)
    try:
        with mock.patch.object(sys, 'argv', ['train.py', '-opt', opt_path, *args]):
            train_pipeline(root)
    finally:
        logging.getLogger('basicsr').removeHandler(handler)
    return lines


def logged(lines, name):
    """Values of ``name: <float>`` in the per-iteration log lines."""
    return [float(v) for line in lines for v in re.findall(rf'(?<!\w){re.escape(name)}: ([-+0-9.e]+|nan|inf)', line)]


def free_port():
    """A free local TCP port (as a string) for MASTER_PORT."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


# FFHQ-aligned template boxes (x, y, half length) at 512 px (GFP-GAN tests scale them to their face size)
TEMPLATE_512 = {'left_eye': (188., 245., 24.), 'right_eye': (325., 245., 24.), 'mouth': (256., 370., 45.)}


def write_component_file(path, num, size=64):
    """A landmarks file as GFP-GAN's scripts/parse_landmark.py writes it: lists of numpy float64 scalars."""
    rng = np.random.default_rng(0)
    comp = {}
    for i in range(num):
        comp[f'{i:08d}'] = {part: [np.float64(v * size / 512 + rng.uniform(-1, 1)) for v in box[:2]]
                            + [np.float64(box[2] * size / 512)] for part, box in TEMPLATE_512.items()}
    torch.save(comp, path)
    return comp


def save_options(root, name, opt):
    """Write the options dict ``opt`` as ``<root>/<name>.yml``; returns the path."""
    path = osp.join(root, f'{name}.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f)
    return path


def exp_dir(root, name):
    """The experiment folder BasicSR writes for the options named ``name`` under ``root``."""
    return osp.join(root, 'experiments', name)


def load(path):
    """A checkpoint or training state written by a test run, through the package's weights-only reader."""
    return torch_load_state(path)


def set_option(opt, dotted, value):
    """``opt['a']['b'] = value`` for ``dotted = 'a.b'`` (test writers pass ``a__b=value``); None removes the key."""
    keys = dotted.split('.')
    for k in keys[:-1]:
        opt = opt[k]
    if value is None:
        opt.pop(keys[-1], None)
    else:
        opt[keys[-1]] = value
