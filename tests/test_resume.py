"""Exact resume (panininet.resume): the resume-state reader, RNG states, the sampler and the handoff between them."""
import random
from collections import Counter

import numpy as np
import pytest
import torch

from panininet import resume


def _write_state(path, it, epoch=0, rng=None):
    sched = torch.optim.lr_scheduler.MultiStepLR(torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=1.), [2, 4])
    assert isinstance(sched.state_dict()['milestones'], Counter)  # what needs the allow-list
    state = {'epoch': epoch, 'iter': it, 'optimizers': [], 'schedulers': [sched.state_dict()]}
    if rng is not None:
        state['rng'] = rng
    torch.save(state, path)


def test_load_resume_state_on_cpu(tmp_path, monkeypatch):
    import basicsr.train as train_mod
    assert train_mod.load_resume_state.__module__ == 'panininet.resume'  # what train_pipeline calls
    states = tmp_path / 'experiments' / 'exp' / 'training_states'
    states.mkdir(parents=True)
    _write_state(states / '3.state', 3)
    _write_state(states / '12.state', 12)
    # basicsr's own function asks CUDA for a device, which fails on this machine
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: (_ for _ in ()).throw(RuntimeError('no CUDA')))
    opt = {'auto_resume': True, 'name': 'exp', 'root_path': str(tmp_path), 'num_gpu': 0,
           'path': {'experiments_root': str(tmp_path / 'experiments' / 'exp')}}
    state = train_mod.load_resume_state(opt)
    assert state['iter'] == 12
    assert opt['path']['resume_state'].endswith('12.state')


def test_load_resume_state_missing_file_names_it(tmp_path):
    opt = {'auto_resume': False, 'name': 'exp', 'num_gpu': 0, 'path': {'resume_state': str(tmp_path / 'nope.state')}}
    with pytest.raises(FileNotFoundError, match='nope.state'):
        resume.load_resume_state(opt)


def test_rng_states_round_trip():
    states = resume.get_rng_states()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    resume.set_rng_states(states)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]
    assert len(resume.gather_rng_states()) == 1  # one process, no process group


class _Loader:
    batch_size = 2


def test_handoff_arms_the_sampler_of_the_same_run(tmp_path):
    """load_resume_state keeps the position; arm() makes the sampler skip the consumed batches and restore the RNG."""
    sampler = resume.ResumableEnlargedSampler(list(range(10)), num_replicas=1, rank=0, ratio=1)
    sampler.set_epoch(1)
    straight = list(sampler)
    rng = resume.get_rng_states()
    after_save = torch.rand(2)
    # 5 batches of 2 per epoch: iteration 7 of epoch 1 means 2 batches of epoch 1 are done
    _write_state(tmp_path / '7.state', 7, epoch=1, rng=[rng])
    handoff = resume.ResumeHandoff()
    opt = {'auto_resume': False, 'num_gpu': 0, 'path': {'resume_state': str(tmp_path / '7.state')}, 'rank': 0}
    assert handoff.load_resume_state(opt)['iter'] == 7
    fresh = resume.ResumableEnlargedSampler(list(range(10)), num_replicas=1, rank=0, ratio=1)
    torch.rand(7)  # the random streams moved on since the save
    handoff.arm(_Loader(), fresh, opt)
    assert handoff.pending is None  # handed over once
    fresh.set_epoch(1)
    assert list(fresh) == straight[4:]
    assert torch.equal(torch.rand(2), after_save)
    assert list(fresh) == straight  # armed for one pass only


def test_handoff_without_resume_leaves_the_sampler_alone():
    handoff = resume.ResumeHandoff()
    assert handoff.load_resume_state({'auto_resume': False, 'path': {}}) is None
    sampler = resume.ResumableEnlargedSampler(list(range(4)), num_replicas=1, rank=0, ratio=1)
    handoff.arm(_Loader(), sampler, {})
    assert list(sampler) == list(resume.ResumableEnlargedSampler(list(range(4)), 1, 0, 1))
