"""Shared fixtures.

``shared_dir`` is ``../shared`` beside the repository (the read-only reference data and test photos), or
``$PANINI_SHARED_DIR`` when set.
When it is absent the tests that need it are skipped, unless ``PANINI_REQUIRE_SHARED=1`` (set by ``.ci/run``),
in which case they fail: CI must never go green by skipping them.
"""
import logging

import pytest
import torch

import panininet  # noqa: F401  (compat + registries before any test imports basicsr)

# isort: off
from helpers import REPO_ROOT, SHARED_DIR, get_shared, load_script, write_tiny_model  # noqa: E402, F401  (after panininet: helpers imports basicsr)
# isort: on
@pytest.fixture(scope='session')
def shared_dir():
    return get_shared()


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope='module')
def cli():
    """``inference_panini.py`` imported as a module (call its ``main(argv)``)."""
    return load_script('inference_panini.py')


@pytest.fixture(scope='session')
def tiny_model(tmp_path_factory):
    """Path of a tiny PaniniNet weights file (:func:`helpers.write_tiny_model`), written once per run."""
    return write_tiny_model(tmp_path_factory.mktemp('weights'))


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
