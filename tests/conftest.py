"""Shared fixtures.

``shared_dir`` is ``../shared`` beside the repository (the read-only reference data and test photos), or
``$PANINI_SHARED_DIR`` when set.
When it is absent the tests that need it are skipped, unless ``PANINI_REQUIRE_SHARED=1`` (set by ``.ci/run``),
in which case they fail: CI must never go green by skipping them.
"""
import logging
import os
import os.path as osp

import pytest
import torch

import panininet  # noqa: F401  (compat + registries before any test imports basicsr)

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


@pytest.fixture(scope='session')
def shared_dir():
    return get_shared()


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _fresh_basicsr_logger():
    """Give every test basicsr's logger as a new process has it.

    ``basicsr.utils.get_root_logger`` configures the 'basicsr' logger only on its first call; a test that calls it
    without a log file would otherwise leave it at WARNING for every later in-process ``train_pipeline``.
    """
    yield
    from basicsr.utils import logger as basicsr_logger
    log = logging.getLogger('basicsr')
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    log.setLevel(logging.NOTSET)
    basicsr_logger.initialized_logger.pop('basicsr', None)


TINY_PANINI_ARCH = dict(in_size=64, out_size=128, narrow=0.25, channel_multiplier=1, num_style_feat=64,
                        dre_num_feat=16, dre_in_size=64)


def write_tiny_panini(path):
    """A tiny randomly initialised PaniniNet (seed 0) in our weights format, recording its arch; returns ``path``."""
    from panininet.archs.panini_arch import PaniniNet

    torch.manual_seed(0)
    torch.save({'params_ema': PaniniNet(**TINY_PANINI_ARCH).state_dict(), 'arch': TINY_PANINI_ARCH}, str(path))
    return str(path)
