"""Fixtures of the web page's tests: a tiny network file, a test photo with one face, the CLI.

The photo is the right half of ``../shared/testdata/whole_imgs/Blake_Lively.jpg`` at 175 x 232 (a face of about
60 px, which dlib's HOG detector finds at upsample 0); the tests that need it skip without ../shared.
"""
import os.path as osp

import cv2
import pytest
import torch
from web_helpers import TINY_ARCH, load_cli


@pytest.fixture(scope='module')
def cli():
    return load_cli()


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    """A tiny randomly initialised PaniniNet in our weights format (records its arch)."""
    from panininet.archs.panini_arch import PaniniNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('weights') / 'tiny_panini.pth'
    torch.save({'params_ema': PaniniNet(**TINY_ARCH).state_dict(), 'arch': TINY_ARCH}, path)
    return str(path)


@pytest.fixture(scope='module')
def face(shared_dir):
    """(232, 175, 3) uint8 BGR photo with one face."""
    img = cv2.imread(osp.join(shared_dir, 'testdata', 'whole_imgs', 'Blake_Lively.jpg'))[:, 350:]
    return cv2.resize(img, (175, 232), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope='module', autouse=True)
def _one_thread():
    """Tiny convolutions on 2 shared cores: one torch thread is several times faster (see tests/train_helpers.py)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
