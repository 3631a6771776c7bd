"""Helpers shared by the in-process training tests (``test_train_*.py``)."""
import logging
import re
import sys
from unittest import mock

import pytest
import torch
from basicsr.train import train_pipeline


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
