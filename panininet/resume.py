"""Exact resume of a BasicSR training run: RNG states, a sampler that continues mid-epoch, the resume-state reader.

basicsr 1.4.2 restarts the current epoch on resume (the samples already seen in it are seen twice) and restores no
random generator. Our models write the RNG states of every rank into each ``*.state`` file
(:func:`gather_rng_states`, called by ``PaniniBaseModel.save_training_state``). On resume:

1. :meth:`ResumeHandoff.load_resume_state` (installed as ``basicsr.train.load_resume_state`` by
   :func:`panininet.platform.compat_basicsr.patch_exact_resume`) reads the state with :func:`load_resume_state` and
   keeps its position (epoch, iteration, RNG states);
2. :meth:`ResumeHandoff.arm` (called right after ``basicsr.train.create_train_val_dataloader``) hands that position
   to the train sampler, a :class:`ResumableEnlargedSampler`;
3. when the sampler is next iterated in that epoch it restores the RNG states (after the data loader drew its own
   seed, just before the first resumed sample is loaded) and skips the indices the interrupted run consumed.

With ``num_worker_per_gpu: 0`` (and no prefetcher threads) N straight iterations equal k + resume + N-k bit for
bit. With data-loader workers the order of samples is still exact, but random augmentations drawn inside the
workers are not (basicsr re-seeds each worker with the same seed every epoch).

The position travels in the :class:`ResumeHandoff` object whose bound methods are installed into basicsr (one per
:func:`panininet.platform.compat_basicsr.apply`), not in a module global.
"""
import collections
import os.path as osp
import random

import numpy as np
import torch
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.utils import check_resume, get_root_logger, scandir

from panininet.weights.checkpoint import load_checkpoint_file

# Non-tensor types a BasicSR ``.state`` file may hold (MultiStepLR milestones are a Counter; recent torch releases
# allow Counter and OrderedDict by themselves, older ones need them named)
STATE_SAFE_GLOBALS = (collections.Counter, collections.OrderedDict)


def get_rng_states():
    """RNG states of this process: torch (CPU and every CUDA device), numpy and Python ``random``.

    Stored only as tensors, ints, floats, tuples and lists, so a weights-only load (:mod:`panininet.weights.checkpoint`)
    reads them.

    Returns:
        dict: Keys 'torch', 'cuda', 'numpy', 'python'.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        'torch': torch.get_rng_state(),
        'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        'numpy': (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        'python': random.getstate(),
    }


def set_rng_states(states):
    """Restore what :func:`get_rng_states` returned.

    Args:
        states (dict): RNG states of one process.
    """
    torch.set_rng_state(states['torch'].cpu())
    if states['cuda'] and torch.cuda.is_available() and len(states['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in states['cuda']])
    name, keys, pos, has_gauss, cached = states['numpy']
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    python = states['python']
    random.setstate((python[0], tuple(python[1]), python[2]))


def gather_rng_states():
    """RNG states of every rank, gathered on all ranks (a collective call under torch.distributed).

    Returns:
        list[dict]: One :func:`get_rng_states` dict per rank, indexed by rank.
    """
    import torch.distributed as dist
    states = get_rng_states()
    if not (dist.is_available() and dist.is_initialized()):
        return [states]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, states)
    return gathered


class ResumableEnlargedSampler(EnlargedSampler):
    """basicsr's ``EnlargedSampler`` that can resume in the middle of an epoch.

    :meth:`resume` arms it: the next time it is iterated in epoch ``epoch`` it restores ``rng_states`` (right before
    the first resumed sample is loaded, i.e. after the data loader drew its own seed) and starts after the
    ``num_done`` indices of that epoch the interrupted run already consumed. Later epochs are unchanged.
    """

    _resume = None

    def resume(self, epoch, num_done, rng_states=None):
        """Arm the sampler for a resumed run.

        Args:
            epoch (int): Epoch of the saved state.
            num_done (int): Indices of that epoch already consumed by this rank.
            rng_states (dict | None): This rank's RNG states at the time of saving.
        """
        self._resume = (int(epoch), int(num_done), rng_states)

    def __iter__(self):
        indices = list(super().__iter__())
        if self._resume is not None and self._resume[0] == self.epoch:
            _, num_done, rng_states = self._resume
            self._resume = None
            if rng_states is not None:
                set_rng_states(rng_states)
            indices = indices[num_done:]
        return iter(indices)


def torch_load_state(path, map_location='cpu'):
    """Read a training state through :func:`panininet.weights.checkpoint.load_checkpoint_file` (``weights_only=True``).

    Args:
        path (str): A ``*.state`` file written by BasicSR's ``save_training_state``.
        map_location: Passed to ``torch.load``. Default: 'cpu'.

    Returns:
        dict: The state.
    """
    return load_checkpoint_file(path, map_location=map_location, safe_globals=STATE_SAFE_GLOBALS)


def find_resume_state(opt):
    """The ``*.state`` file a run resumes from, or None (and ``opt['path']['resume_state']`` set when found).

    With ``auto_resume``: the newest ``experiments/<name>/training_states/*.state`` under ``opt['root_path']``
    (else under ``opt['path']['experiments_root']``); otherwise ``opt['path']['resume_state']``.

    Args:
        opt (dict): Parsed BasicSR options.

    Returns:
        str | None: Path (not checked for existence).
    """
    if opt['auto_resume']:
        state_path = osp.join(opt.get('root_path', '.'), 'experiments', opt['name'], 'training_states')
        if not osp.isdir(state_path):  # basicsr resolves experiments under root_path via opt['path']
            state_path = osp.join(opt['path'].get('experiments_root', ''), 'training_states')
        if osp.isdir(state_path):
            states = list(scandir(state_path, suffix='state', recursive=False, full_path=False))
            if len(states) != 0:
                states = [float(v.split('.state')[0]) for v in states]
                opt['path']['resume_state'] = osp.join(state_path, f'{max(states):.0f}.state')
                return opt['path']['resume_state']
        return None
    return opt['path'].get('resume_state') or None


def load_resume_state(opt):
    """Drop-in for ``basicsr.train.load_resume_state`` that works without CUDA and loads with ``weights_only``.

    basicsr's own calls ``torch.cuda.current_device()`` unconditionally (crashes on a CPU-only machine) and unpickles
    with ``weights_only=False``. This one maps to the current CUDA device when there is one (and ``num_gpu`` is not
    0), else the CPU. Which file: :func:`find_resume_state`.

    Args:
        opt (dict): Parsed BasicSR options.

    Returns:
        dict | None: The resume state, tensors on the current CUDA device or the CPU.

    Raises:
        FileNotFoundError: The named resume state does not exist (the message names the option).
    """
    resume_state_path = find_resume_state(opt)
    if resume_state_path is None:
        return None
    if not osp.isfile(resume_state_path):
        raise FileNotFoundError(f'Resume state {resume_state_path!r} (path.resume_state) does not exist. '
                                'Fix the path in the options file or drop it to start from scratch.')
    if torch.cuda.is_available() and opt.get('num_gpu', 0) != 0:
        map_location = torch.device('cuda', torch.cuda.current_device())
    else:
        map_location = 'cpu'
    resume_state = torch_load_state(resume_state_path, map_location=map_location)
    check_resume(opt, resume_state['iter'])
    return resume_state


class ResumeHandoff:
    """Carries a resume state's position from ``load_resume_state`` to the train sampler of the same run.

    basicsr's ``train_pipeline`` loads the resume state before it builds the data loaders, and neither call sees
    the other's result; this object is the link. Its :meth:`load_resume_state` and :meth:`arm` are installed into
    ``basicsr.train`` by :func:`panininet.platform.compat_basicsr.patch_exact_resume`.

    Attributes:
        pending (dict | None): ``{'epoch', 'iter', 'rng'}`` of the last state read and not yet handed over.
    """

    def __init__(self):
        self.pending = None

    def load_resume_state(self, opt):
        """:func:`load_resume_state`, also keeping epoch, iteration and RNG states for :meth:`arm`."""
        state = load_resume_state(opt)
        self.pending = None if state is None else {'epoch': state['epoch'], 'iter': state['iter'],
                                                   'rng': state.get('rng')}
        return state

    def arm(self, train_loader, train_sampler, opt):
        """Point the train sampler at the pending position (and this rank's RNG states), if any.

        Args:
            train_loader (DataLoader): The training loader (gives the batch size).
            train_sampler (ResumableEnlargedSampler): Its sampler; other samplers are left alone.
            opt (dict): Parsed BasicSR options (gives the rank).
        """
        if self.pending is None or not hasattr(train_sampler, 'resume'):
            return
        resume, self.pending = self.pending, None
        logger = get_root_logger()
        rank = opt.get('rank', 0)
        rng = None
        if resume['rng'] is None:
            logger.warning('Resume state has no RNG states (not written by a panininet model): random streams '
                           'restart from the seed, so the resumed run is not identical to an uninterrupted one.')
        elif rank < len(resume['rng']):
            rng = resume['rng'][rank]
        else:
            logger.warning(f'Resume state holds RNG states for {len(resume["rng"])} ranks, this is rank {rank}: '
                           'its random streams restart from the seed.')
        iters_per_epoch = len(train_sampler) // train_loader.batch_size
        num_batches = resume['iter'] - resume['epoch'] * iters_per_epoch
        if not 0 <= num_batches <= iters_per_epoch:
            logger.warning(f'Cannot place iteration {resume["iter"]} in epoch {resume["epoch"]} with '
                           f'{iters_per_epoch} iterations per epoch (batch size or dataset changed?): the epoch '
                           'restarts from its start.')
            num_batches = 0
        train_sampler.resume(resume['epoch'], num_batches * train_loader.batch_size, rng)
        logger.info(f'Resume: epoch {resume["epoch"]} continues after its first {num_batches} batches.')


__all__ = ['get_rng_states', 'set_rng_states', 'gather_rng_states', 'ResumableEnlargedSampler', 'torch_load_state',
           'find_resume_state', 'load_resume_state', 'ResumeHandoff', 'STATE_SAFE_GLOBALS']
