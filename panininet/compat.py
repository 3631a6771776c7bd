"""Everything panininet does to make basicsr 1.4.2 (and facexlib) work on today's stack, in one place.

basicsr 1.4.2 is the only release on PyPI and it breaks on current PyTorch / torchvision / OpenCV:

1. ``import basicsr`` fails on torchvision >= 0.17, which removed
   ``torchvision.transforms.functional_tensor`` (renamed ``_functional_tensor``).
   :func:`install_functional_tensor_alias` registers the old name as an alias *before* basicsr is imported.
2. ``basicsr.ops.fused_act`` only has a compiled CUDA kernel (``fused_act_ext``); without it every
   StyleGAN2 forward dies with ``NameError: fused_act_ext``. :func:`patch_fused_act` routes the op to a
   native PyTorch implementation whenever the compiled kernel is absent or the tensor is not on CUDA.
   The native op is plain autograd, so backward and double backward (R1, path length) are exact.
   ``basicsr.ops.upfirdn2d`` gets the same treatment for CUDA tensors without a compiled kernel
   (on CPU basicsr already calls its native version).
3. ``basicsr.data.degradations.add_jpg_compression`` passes a float quality to ``cv2.imencode``; OpenCV 5
   rejects it. :func:`add_jpg_compression` rounds the quality to int and replaces basicsr's function, so
   ``random_add_jpg_compression`` (which looks it up at call time) is fixed too.
4. ``basicsr.train.load_resume_state`` calls ``torch.cuda.current_device()`` unconditionally (crashes on a
   CPU-only machine) and unpickles the state with ``weights_only=False``. :func:`load_resume_state`
   replaces it: it maps to the current CUDA device when there is one, else the CPU, and loads with
   ``weights_only=True`` plus an allow-list of the few non-tensor types a BasicSR training state holds.

All patches are applied by :func:`apply`, which ``panininet/__init__.py`` calls before anything else.
Nothing in site-packages is edited. Each patch is idempotent.
"""
import collections
import importlib
import importlib.util
import logging
import os.path as osp
import sys
import types

import torch
from torch.nn import functional as F

logger = logging.getLogger('panininet')

# What the StyleGAN2 ops run on after :func:`apply`: 'cuda-kernels' or 'native'.
OP_PATH = None
_APPLIED = False


# ---------------------------------------------------------------------------------------------------------------------
# 1. torchvision.transforms.functional_tensor
# ---------------------------------------------------------------------------------------------------------------------
def install_functional_tensor_alias():
    """Make ``torchvision.transforms.functional_tensor`` importable on torchvision >= 0.17."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401  (old torchvision: nothing to do)
        return
    except ImportError:
        pass
    from torchvision.transforms import _functional_tensor
    alias = types.ModuleType(name, 'Alias of torchvision.transforms._functional_tensor installed by panininet.compat')
    alias.__dict__.update({k: v for k, v in vars(_functional_tensor).items() if not k.startswith('__')})
    sys.modules[name] = alias


# ---------------------------------------------------------------------------------------------------------------------
# 2. fused bias + leaky ReLU, upfirdn2d
# ---------------------------------------------------------------------------------------------------------------------
def fused_leaky_relu_native(input, bias, negative_slope=0.2, scale=2**0.5):
    """Native ``scale * leaky_relu(input + bias, negative_slope)``; bias broadcast over dim 1.

    Args:
        input (Tensor): Shape (b, c, ...) or (b, c).
        bias (Tensor): Shape (c,).
        negative_slope (float): Leaky ReLU slope. Default: 0.2.
        scale (float): Output gain. Default: sqrt(2).

    Returns:
        Tensor: Same shape as ``input``.
    """
    if bias is not None and bias.numel() > 0:
        rest = [1] * (input.ndim - bias.ndim - 1)
        input = input + bias.view(1, bias.shape[0], *rest)
    return F.leaky_relu(input, negative_slope=negative_slope) * scale


class _FusedLeakyReLUDispatch:
    """Stands in for basicsr's ``FusedLeakyReLUFunction``: compiled kernel on CUDA when built, else native."""

    compiled = None  # basicsr's original autograd Function, when its extension is importable
    native = None  # a faster equal op (``panininet.ops.install``), else ``fused_leaky_relu_native``

    @classmethod
    def apply(cls, input, bias, negative_slope, scale):
        if cls.compiled is not None and input.is_cuda:
            return cls.compiled.apply(input, bias, negative_slope, scale)
        return (cls.native or fused_leaky_relu_native)(input, bias, negative_slope, scale)


class _UpFirDn2dDispatch:
    """Stands in for basicsr's ``UpFirDn2d`` (CUDA path): compiled kernel when built, else native."""

    compiled = None
    native = None  # set to basicsr's ``upfirdn2d_native`` (or a faster equal op) by ``patch_fused_act``

    @classmethod
    def apply(cls, input, kernel, up, down, pad):
        if cls.compiled is not None and input.is_cuda:
            return cls.compiled.apply(input, kernel, up, down, pad)
        return cls.native(input, kernel, up[0], up[1], down[0], down[1], pad[0], pad[1], pad[2], pad[3])


def patch_fused_act():
    """Route basicsr's fused_leaky_relu / upfirdn2d to native PyTorch where no compiled kernel exists.

    basicsr's ``fused_leaky_relu`` and ``upfirdn2d`` look up ``FusedLeakyReLUFunction`` / ``UpFirDn2d`` in
    their module globals at call time, so replacing those globals fixes every caller, including classes that
    imported the functions by name (``basicsr.archs.stylegan2_arch``, GFPGAN's archs).

    Returns:
        str: 'cuda-kernels' if the compiled extensions are importable, else 'native'.
    """
    # the packages re-export functions under the submodules' names, so fetch the modules themselves
    fa_mod = importlib.import_module('basicsr.ops.fused_act.fused_act')
    up_mod = importlib.import_module('basicsr.ops.upfirdn2d.upfirdn2d')

    if fa_mod.FusedLeakyReLUFunction is not _FusedLeakyReLUDispatch:
        _FusedLeakyReLUDispatch.compiled = fa_mod.FusedLeakyReLUFunction if hasattr(fa_mod, 'fused_act_ext') else None
        fa_mod.FusedLeakyReLUFunction = _FusedLeakyReLUDispatch
    if up_mod.UpFirDn2d is not _UpFirDn2dDispatch:
        _UpFirDn2dDispatch.compiled = up_mod.UpFirDn2d if hasattr(up_mod, 'upfirdn2d_ext') else None
        _UpFirDn2dDispatch.native = up_mod.upfirdn2d_native
        up_mod.UpFirDn2d = _UpFirDn2dDispatch
    both = _FusedLeakyReLUDispatch.compiled is not None and _UpFirDn2dDispatch.compiled is not None
    return 'cuda-kernels' if both else 'native'


# ---------------------------------------------------------------------------------------------------------------------
# 3. JPEG with a float quality
# ---------------------------------------------------------------------------------------------------------------------
def add_jpg_compression(img, quality=90):
    """JPEG-compress an image, as ``basicsr.data.degradations.add_jpg_compression`` but OpenCV-5 safe.

    Args:
        img (ndarray): float32 image in [0, 1], shape (h, w, c) BGR or (h, w).
        quality (float | int): JPEG quality 0..100; rounded to the nearest int (OpenCV 5 needs an int).

    Returns:
        ndarray: float32 image in [0, 1], same shape as ``img``.
    """
    import cv2
    import numpy as np
    img = np.clip(img, 0, 1)
    quality = int(round(float(quality)))
    if not 0 <= quality <= 100:
        raise ValueError(f'JPEG quality must be in [0, 100], got {quality}.')
    # OpenCV would convert float input to 8 bit itself (saturate + round half to even) with a warning; same values
    img_u8 = np.clip(img * 255., 0, 255).round().astype(np.uint8)
    ok, encimg = cv2.imencode('.jpg', img_u8, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise RuntimeError('cv2.imencode failed to JPEG-encode the image.')
    return np.float32(cv2.imdecode(encimg, cv2.IMREAD_UNCHANGED)) / 255.


def patch_degradations():
    import basicsr.data.degradations as deg
    deg.add_jpg_compression = add_jpg_compression


# ---------------------------------------------------------------------------------------------------------------------
# 4. Resume state loading
# ---------------------------------------------------------------------------------------------------------------------
def _safe_resume_globals():
    """Non-tensor types a BasicSR ``.state`` file may hold (MultiStepLR milestones are a Counter)."""
    return [collections.Counter, collections.defaultdict, collections.OrderedDict]


def torch_load_state(path, map_location='cpu'):
    """``torch.load`` a training state with ``weights_only=True`` and the allow-list above.

    Args:
        path (str): A ``*.state`` file written by BasicSR's ``save_training_state``.
        map_location: Passed to ``torch.load``. Default: 'cpu'.

    Returns:
        dict: The state.
    """
    with torch.serialization.safe_globals(_safe_resume_globals()):
        return torch.load(path, map_location=map_location, weights_only=True)


def load_resume_state(opt):
    """Drop-in for ``basicsr.train.load_resume_state`` that works without CUDA.

    Picks the newest ``experiments/<name>/training_states/*.state`` under ``opt['root_path']`` when
    ``auto_resume`` is set, else ``opt['path']['resume_state']``.

    Args:
        opt (dict): Parsed BasicSR options.

    Returns:
        dict | None: The resume state, tensors on the current CUDA device or the CPU.
    """
    from basicsr.utils import check_resume, scandir
    resume_state_path = None
    if opt['auto_resume']:
        state_path = osp.join(opt.get('root_path', '.'), 'experiments', opt['name'], 'training_states')
        if not osp.isdir(state_path):  # basicsr resolves experiments under root_path via opt['path']
            state_path = osp.join(opt['path'].get('experiments_root', ''), 'training_states')
        if osp.isdir(state_path):
            states = list(scandir(state_path, suffix='state', recursive=False, full_path=False))
            if len(states) != 0:
                states = [float(v.split('.state')[0]) for v in states]
                resume_state_path = osp.join(state_path, f'{max(states):.0f}.state')
                opt['path']['resume_state'] = resume_state_path
    elif opt['path'].get('resume_state'):
        resume_state_path = opt['path']['resume_state']

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


def patch_train():
    import basicsr.train as train_mod
    train_mod.load_resume_state = load_resume_state


# =====================================================================================================================
# 5. Training engine: distributed training on CPU (gloo) and exact resume.  [section owned by the training task]
#
# basicsr's ``train_pipeline`` is used unchanged; these patches replace four names it looks up at call time:
#
# * ``basicsr.utils.options.init_dist``: basicsr calls ``torch.cuda.set_device(rank % device_count)`` before
#   ``init_process_group('nccl')``, a ZeroDivisionError on a machine without CUDA. :func:`init_dist` keeps that path
#   when CUDA exists and otherwise joins the process group with the gloo backend (``--launcher pytorch`` on CPU).
#   The other half of the fix (``DistributedDataParallel`` without ``device_ids`` on CPU) is in the model base class
#   ``panininet/models/base_model.py``.
# * ``basicsr.train.EnlargedSampler`` -> :class:`ResumableEnlargedSampler`, and ``basicsr.train.load_resume_state`` /
#   ``create_train_val_dataloader`` wrappers: basicsr restarts the current epoch on resume (the same samples are
#   seen twice) and does not restore any random generator. A ``*.state`` written by our models holds the RNG states
#   of every rank (:func:`get_rng_states`); on resume the sampler skips the batches the interrupted run already
#   consumed in that epoch and, just before the first resumed batch is loaded, restores the RNG states. With
#   ``num_worker_per_gpu: 0`` (and no prefetcher threads) N straight iterations equal k + resume + N-k bit for bit.
#   With data-loader workers the order of samples is still exact, but random augmentations drawn inside the
#   workers are not (basicsr re-seeds each worker with the same seed every epoch).
# =====================================================================================================================
_PENDING_RESUME = {}  # filled by the load_resume_state wrapper, consumed by create_train_val_dataloader


def init_dist(launcher, backend='nccl', **kwargs):
    """Drop-in for ``basicsr.utils.dist_util.init_dist`` that also works without CUDA.

    With CUDA it defers to basicsr (``torch.cuda.set_device`` + nccl by default). Without CUDA (or with
    ``backend='gloo'``) it initialises the default process group with gloo from the torchrun environment
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). Only ``launcher='pytorch'`` runs on CPU.

    Args:
        launcher (str): 'pytorch' or 'slurm'.
        backend (str): Backend used when CUDA is available. Default: 'nccl'.
        **kwargs: Passed to ``init_process_group`` (pytorch) or basicsr's slurm initialiser.
    """
    import torch.distributed as dist
    from basicsr.utils import dist_util
    if torch.cuda.is_available() and backend != 'gloo':
        return dist_util.init_dist(launcher, backend, **kwargs)
    if launcher != 'pytorch':
        raise ValueError(f'Launcher {launcher!r} needs CUDA here; on CPU use torchrun with --launcher pytorch.')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', **kwargs)


def get_rng_states():
    """RNG states of this process: torch (CPU and every CUDA device), numpy and Python ``random``.

    Stored only as tensors, ints, floats, tuples and lists, so ``torch.load(weights_only=True)`` reads them.

    Returns:
        dict: Keys 'torch', 'cuda', 'numpy', 'python'.
    """
    import random

    import numpy as np
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
    import random

    import numpy as np
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


# basicsr's EnlargedSampler made resumable; built by patch_train_engine (basicsr cannot be imported earlier)
ResumableEnlargedSampler = None


def _make_sampler_class():
    """Build :class:`ResumableEnlargedSampler` on top of basicsr's ``EnlargedSampler`` (imported lazily)."""
    from basicsr.data.data_sampler import EnlargedSampler

    class ResumableEnlargedSampler(EnlargedSampler):
        """basicsr's ``EnlargedSampler`` that can resume in the middle of an epoch.

        :meth:`resume` arms it: the next time it is iterated in epoch ``epoch`` it restores ``rng_states`` (right
        before the first resumed sample is loaded, i.e. after the data loader drew its own seed) and starts after
        the ``num_done`` indices of that epoch the interrupted run already consumed. Later epochs are unchanged.
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

    ResumableEnlargedSampler.__module__ = __name__
    ResumableEnlargedSampler.__qualname__ = 'ResumableEnlargedSampler'
    return ResumableEnlargedSampler


def _load_resume_state_and_remember(opt):
    """``load_resume_state`` above, also remembering epoch, iteration and RNG states for the train sampler."""
    state = load_resume_state(opt)
    _PENDING_RESUME.clear()
    if state is not None:
        _PENDING_RESUME.update(epoch=state['epoch'], iter=state['iter'], rng=state.get('rng'))
    return state


def _arm_sampler(train_loader, train_sampler, opt):
    """Point the train sampler at the position (and RNG states) of the pending resume state, if any."""
    from basicsr.utils import get_root_logger
    if not _PENDING_RESUME or not hasattr(train_sampler, 'resume'):
        return
    resume = dict(_PENDING_RESUME)
    _PENDING_RESUME.clear()
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
        logger.warning(f'Cannot place iteration {resume["iter"]} in epoch {resume["epoch"]} with {iters_per_epoch} '
                       'iterations per epoch (batch size or dataset changed?): the epoch restarts from its start.')
        num_batches = 0
    train_sampler.resume(resume['epoch'], num_batches * train_loader.batch_size, rng)
    logger.info(f'Resume: epoch {resume["epoch"]} continues after its first {num_batches} batches.')


def patch_train_engine():
    """Install :func:`init_dist`, :class:`ResumableEnlargedSampler` and the resume wrappers into basicsr."""
    global ResumableEnlargedSampler
    import basicsr.train as train_mod
    import basicsr.utils.options as options_mod
    options_mod.init_dist = init_dist
    if not getattr(train_mod.EnlargedSampler, '_panininet_resumable', False):
        ResumableEnlargedSampler = _make_sampler_class()
        ResumableEnlargedSampler._panininet_resumable = True
        train_mod.EnlargedSampler = ResumableEnlargedSampler
    if getattr(train_mod.create_train_val_dataloader, '_panininet_original', None) is None:
        original = train_mod.create_train_val_dataloader

        def create_train_val_dataloader(opt, logger):
            result = original(opt, logger)
            _arm_sampler(result[0], result[1], opt)
            return result

        create_train_val_dataloader._panininet_original = original
        train_mod.create_train_val_dataloader = create_train_val_dataloader
    train_mod.load_resume_state = _load_resume_state_and_remember
# =====================================================================================================================
# end of section 5
# =====================================================================================================================


# ---------------------------------------------------------------------------------------------------------------------
def apply():
    """Apply every patch above once. Called by ``panininet/__init__.py`` before anything else.

    Returns:
        str: The active StyleGAN2 op path, 'cuda-kernels' or 'native'.
    """
    global OP_PATH, _APPLIED
    if _APPLIED:
        return OP_PATH
    install_functional_tensor_alias()
    import basicsr  # noqa: F401  (imports archs, data, models, ... once the alias exists)
    OP_PATH = patch_fused_act()
    from panininet import ops
    ops.install(fast=True)
    patch_degradations()
    patch_train()
    patch_train_engine()
    patch_vgg_weights()
    patch_gfpgan_component_file()
    patch_gfpgan_adam_betas()
    _APPLIED = True
    if OP_PATH == 'cuda-kernels':
        logger.info('panininet: StyleGAN2 ops use the compiled basicsr CUDA kernels on GPU (native on CPU).')
    else:
        logger.info('panininet: StyleGAN2 ops use the native PyTorch path (no compiled basicsr kernels; '
                    'set BASICSR_EXT=True when building basicsr for the CUDA kernels).')
    return OP_PATH


__all__ = ['apply', 'OP_PATH', 'fused_leaky_relu_native', 'add_jpg_compression', 'load_resume_state',
           'torch_load_state', 'install_functional_tensor_alias']


# =====================================================================================================================
# 6. GFP-GAN 1.3.8's training code on today's stack.  [section owned by the GFP-GAN training task]
#
# gfpgan is optional (the ``[gfpgan]`` extra): without it these patches do nothing. ``import gfpgan`` needs the
# torchvision alias of patch 1 (basicsr's import), so import it after panininet; if gfpgan was imported first
# (an older torchvision), the patches below still reach its classes, which are patched in place.
#
# * :func:`patch_gfpgan_component_file`: ``FFHQDegradationDataset`` reads ``component_path`` with a bare
#   ``torch.load``. GFP-GAN's ``FFHQ_eye_mouth_landmarks_512.pth`` holds numpy float64 scalars, which PyTorch >= 2.6
#   (``weights_only=True`` by default) refuses: ``_pickle.UnpicklingError: Weights only load failed ...
#   Unsupported global: GLOBAL numpy._core.multiarray.scalar``. The file is read through
#   ``panininet.checkpoint.load_checkpoint_file`` instead (numpy scalars allowed, nothing callable), into a
#   :class:`panininet.data.data_util.ComponentLocations`, whose look-ups return fresh arrays: GFP-GAN's
#   ``get_component_coordinates`` edits the entry of a flipped image in place, which corrupted its stored boxes.
# * :func:`patch_vgg_weights`: basicsr's ``VGGFeatureExtractor`` (GFP-GAN's perceptual and style loss) reads
#   ``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` relative to the working directory, for every VGG type, and
#   otherwise downloads torchvision's weights (offline: ``urllib.error.URLError``). It now reads the torchvision
#   file of its VGG type from the weights root (``$PANINI_WEIGHTS_DIR``, else ``~/.cache/panininet``) and refuses
#   with a message naming the file and its URL when it is missing; nothing is downloaded.
# * :func:`patch_gfpgan_adam_betas`: ``GFPGANModel.setup_optimizers`` gives the generator's Adam
#   ``betas=(0**1, 0.99**1) == (0, 0.99)``, an int and a float, which today's ``torch.optim.Adam`` refuses:
#   ``ValueError: betas must be either both floats or both Tensors``. Its ``get_optimizer`` now passes floats.
# =====================================================================================================================
def _gfpgan_installed():
    return importlib.util.find_spec('gfpgan') is not None


def patch_gfpgan_component_file():
    """Make GFP-GAN's ``FFHQDegradationDataset`` read its component-landmarks file safely (see section 6).

    Returns:
        bool: False when gfpgan is not installed (nothing patched).
    """
    if not _gfpgan_installed():
        return False
    from gfpgan.data.ffhq_degradation_dataset import FFHQDegradationDataset
    if getattr(FFHQDegradationDataset.__init__, '_panininet_original', None) is not None:
        return True
    original = FFHQDegradationDataset.__init__

    def __init__(self, opt):
        original(self, dict(opt, crop_components=False))  # everything but the bare torch.load
        self.opt = opt
        self.crop_components = opt.get('crop_components', False)
        if self.crop_components:
            from panininet.data.data_util import ComponentLocations
            self.components_list = ComponentLocations.from_options(opt, len(self.paths))

    __init__._panininet_original = original
    __init__.__doc__ = original.__doc__
    FFHQDegradationDataset.__init__ = __init__
    return True


def patch_gfpgan_adam_betas():
    """Give ``torch.optim`` float betas from ``GFPGANModel``'s optimisers (see section 6).

    Returns:
        bool: False when gfpgan is not installed (nothing patched).
    """
    if not _gfpgan_installed():
        return False
    from gfpgan.models.gfpgan_model import GFPGANModel
    if 'get_optimizer' in vars(GFPGANModel):
        return True

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        if 'betas' in kwargs:
            kwargs['betas'] = tuple(float(b) for b in kwargs['betas'])
        return super(GFPGANModel, self).get_optimizer(optim_type, params, lr, **kwargs)

    GFPGANModel.get_optimizer = get_optimizer
    return True


class _TorchvisionVGGFromWeightsRoot:
    """Stands in for ``torchvision.models.vgg`` inside ``basicsr.archs.vgg_arch``: ``vgg19(pretrained=True)``
    builds torchvision's VGG ``features`` and loads them from the weights root, never downloading."""

    def __getattr__(self, vgg_type):
        if not vgg_type.startswith('vgg'):
            raise AttributeError(vgg_type)
        return lambda pretrained=False, **kwargs: vgg_from_weights_root(vgg_type, pretrained)


def vgg_from_weights_root(vgg_type, pretrained=True):
    """torchvision's VGG ``features`` (the only part basicsr uses), loaded from the weights root.

    Args:
        vgg_type (str): 'vgg11', 'vgg13', 'vgg16', 'vgg19' or a '_bn' variant.
        pretrained (bool): Load the ImageNet weights (torchvision's file name, e.g. ``vgg19-dcbb9e9d.pth``, in
            ``$PANINI_WEIGHTS_DIR``, else ``~/.cache/panininet``; its ``features.*`` entries). Default: True.

    Returns:
        nn.Module: With a ``features`` attribute (torchvision's layers, same indices).
    """
    from torch import nn
    from torchvision.models import vgg as tv_vgg

    from panininet.checkpoint import load_checkpoint_file
    from panininet.weights import ENV_WEIGHTS_DIR, weights_root
    cfg = {'vgg11': 'A', 'vgg13': 'B', 'vgg16': 'D', 'vgg19': 'E'}[vgg_type.replace('_bn', '')]
    net = nn.Module()
    net.features = tv_vgg.make_layers(tv_vgg.cfgs[cfg], batch_norm=vgg_type.endswith('_bn'))
    if not pretrained:
        return net
    url = getattr(tv_vgg, f'{vgg_type.upper()}_Weights').IMAGENET1K_V1.url
    path = osp.join(weights_root(), osp.basename(url))
    if not osp.isfile(path):
        raise FileNotFoundError(f'The perceptual loss needs torchvision {vgg_type} weights, not found at {path}. '
                                f'Download {url} into ${ENV_WEIGHTS_DIR} (else ~/.cache/panininet); nothing is '
                                'downloaded during training.')
    state = load_checkpoint_file(path)
    features = {k[len('features.'):]: v for k, v in state.items() if k.startswith('features.')}
    try:
        net.features.load_state_dict(features, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f'{path}: not torchvision {vgg_type} weights ({str(err).splitlines()[0]}).') from None
    return net


def patch_vgg_weights():
    """Point basicsr's ``VGGFeatureExtractor`` at :func:`vgg_from_weights_root` (see section 6)."""
    import basicsr.archs.vgg_arch as vgg_arch
    vgg_arch.VGG_PRETRAIN_PATH = ''  # never the working directory's experiments/pretrained_models
    vgg_arch.vgg = _TorchvisionVGGFromWeightsRoot()
# =====================================================================================================================
# end of section 6
# =====================================================================================================================
