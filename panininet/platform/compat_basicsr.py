"""Small named patches that make basicsr 1.4.2 (and facexlib) work on today's stack; nothing else lives here.

basicsr 1.4.2 is the only release on PyPI and it breaks on current PyTorch / torchvision / OpenCV. Each patch below
is one function, applied in this order by :func:`apply` (which ``panininet/__init__.py`` calls before anything
else). Nothing in site-packages is edited; every patch is idempotent.

1. :func:`install_functional_tensor_alias`: ``import basicsr`` fails on torchvision >= 0.17, which removed
   ``torchvision.transforms.functional_tensor`` (renamed ``_functional_tensor``); the old name becomes an alias
   *before* basicsr is imported.
2. :func:`patch_fused_act`: ``basicsr.ops.fused_act`` only has a compiled CUDA kernel (``fused_act_ext``); without
   it every StyleGAN2 forward dies with ``NameError: fused_act_ext``. The op is routed to a native PyTorch
   implementation whenever the compiled kernel is absent or the tensor is not on CUDA (plain autograd, so backward
   and double backward, R1 and path length, are exact). ``basicsr.ops.upfirdn2d`` gets the same treatment for CUDA
   tensors without a compiled kernel (on CPU basicsr already calls its native version).
3. :func:`install_fast_ops`: the native ops become the faster, equal ones of :mod:`panininet.platform.native_ops` (CPU,
  and CUDA
   without compiled kernels); ``install_fast_ops(False)`` restores basicsr's reference (benchmarks).
4. :func:`patch_jpeg_quality`: ``basicsr.data.degradations.add_jpg_compression`` passes a float quality to
   ``cv2.imencode``, which OpenCV 5 rejects; it is replaced by
   :func:`panininet.data.degradations.add_jpg_compression` (int quality), so ``random_add_jpg_compression`` (which
   looks it up at call time) is fixed too.
5. :func:`patch_init_dist`: ``basicsr.utils.options.init_dist`` calls ``torch.cuda.set_device(rank % device_count)``
   before ``init_process_group('nccl')``, a ZeroDivisionError without CUDA; :func:`init_dist` joins the process
   group with gloo there (``--launcher pytorch`` on CPU). The other half of the fix (``DistributedDataParallel``
   without ``device_ids`` on CPU) is in ``panininet/models/base_model.py``.
6. :func:`patch_exact_resume`: ``basicsr.train.load_resume_state`` calls ``torch.cuda.current_device()``
   unconditionally and unpickles with ``weights_only=False``, and basicsr's train pipeline restarts the epoch and
   restores no RNG on resume. The machinery that fixes this is :mod:`panininet.resume`; this patch installs its
   sampler and its loader into ``basicsr.train``.
7. :func:`patch_realesrgan_degradations`: two defects of the second-order degradation functions (used by the
   ``realworld`` preset, :mod:`panininet.data.realworld_degradation`): ``DiffJPEG.forward`` overwrites the caller's
   per-image quality tensor with its quantisation factors (a second call with it compresses with different
   qualities, and a recorded quality is lost), and ``generate_gaussian_noise_pt`` draws *one* gray-noise image
   for the whole batch (every gray-noise image of a batch gets the same pattern). The first gets a copy of the
   tensor; the second draws (b, 1, h, w) gray noise.
8. ``patch_vgg_weights``, ``patch_gfpgan_component_file``, ``patch_gfpgan_adam_betas``: GFP-GAN 1.3.8's
   training path (basicsr's VGG perceptual loss, GFP-GAN's dataset and optimisers), in
   :mod:`panininet.platform.compat_gfpgan`.
8. :func:`patch_fid_sqrtm`: ``basicsr.metrics.fid.calculate_fid`` calls ``scipy.linalg.sqrtm(..., disp=False)``
   and unpacks ``(sqrtm, error)``; SciPy 1.18 (what pip picks on Python >= 3.12) removed ``disp`` (``TypeError:
   sqrtm() got an unexpected keyword argument 'disp'``). basicsr's module gets a ``linalg`` of its own whose
   ``sqrtm`` still takes ``disp``; ``scipy.linalg`` itself is untouched.
"""
import importlib
import importlib.util
import logging
import sys
import types

import numpy as np
import torch

from panininet.platform import native_ops as ops

logger = logging.getLogger('panininet')

# What the StyleGAN2 ops run on after :func:`apply`: 'cuda-kernels' or 'native'.
OP_PATH = None
_APPLIED = False

# Names that moved out of this module in the redesign, importable from here as before (see ``__getattr__``)
_MOVED = {
    'fused_leaky_relu_native': 'panininet.platform.native_ops',
    'add_jpg_compression': 'panininet.data.degradations',
    'load_resume_state': 'panininet.resume',
    'torch_load_state': 'panininet.resume',
    'get_rng_states': 'panininet.resume',
    'set_rng_states': 'panininet.resume',
    'gather_rng_states': 'panininet.resume',
    'ResumableEnlargedSampler': 'panininet.resume',
}


def __getattr__(name):
    """Aliases of the names listed in ``_MOVED`` (imported on first use: basicsr must be patched first)."""
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


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
    alias = types.ModuleType(name, 'Alias of torchvision.transforms._functional_tensor installed by '
                                   'panininet.platform.compat_basicsr')
    alias.__dict__.update({k: v for k, v in vars(_functional_tensor).items() if not k.startswith('__')})
    sys.modules[name] = alias


# ---------------------------------------------------------------------------------------------------------------------
# 2. fused bias + leaky ReLU, upfirdn2d: compiled kernel where built, else native
# ---------------------------------------------------------------------------------------------------------------------
class _FusedLeakyReLUDispatch:
    """Stands in for basicsr's ``FusedLeakyReLUFunction``: compiled kernel on CUDA when built, else native."""

    compiled = None  # basicsr's original autograd Function, when its extension is importable
    native = None  # the op :func:`install_fast_ops` chose; None: ``ops.fused_leaky_relu_native``

    @classmethod
    def apply(cls, input, bias, negative_slope, scale):
        if cls.compiled is not None and input.is_cuda:
            return cls.compiled.apply(input, bias, negative_slope, scale)
        return (cls.native or ops.fused_leaky_relu_native)(input, bias, negative_slope, scale)


class _UpFirDn2dDispatch:
    """Stands in for basicsr's ``UpFirDn2d`` (CUDA path): compiled kernel when built, else native."""

    compiled = None
    reference = None  # basicsr's own ``upfirdn2d_native`` (rosinality's reference algorithm)
    native = None  # the op :func:`install_fast_ops` chose (``reference`` until then)

    @classmethod
    def apply(cls, input, kernel, up, down, pad):
        if cls.compiled is not None and input.is_cuda:
            return cls.compiled.apply(input, kernel, up, down, pad)
        return cls.native(input, kernel, up[0], up[1], down[0], down[1], pad[0], pad[1], pad[2], pad[3])


def _upfirdn2d_module():
    # the packages re-export functions under the submodules' names, so fetch the modules themselves
    return importlib.import_module('basicsr.ops.upfirdn2d.upfirdn2d')


def patch_fused_act():
    """Route basicsr's fused_leaky_relu / upfirdn2d to native PyTorch where no compiled kernel exists.

    basicsr's ``fused_leaky_relu`` and ``upfirdn2d`` look up ``FusedLeakyReLUFunction`` / ``UpFirDn2d`` in
    their module globals at call time, so replacing those globals fixes every caller, including classes that
    imported the functions by name (``basicsr.archs.stylegan2_arch``, GFPGAN's archs). A dispatcher installed by an
    earlier :func:`apply` (before a ``reload`` of this module) hands over what it found.

    Returns:
        str: 'cuda-kernels' if the compiled extensions are importable, else 'native'.
    """
    fa_mod = importlib.import_module('basicsr.ops.fused_act.fused_act')
    up_mod = _upfirdn2d_module()
    for mod, attr, ext, dispatch in ((fa_mod, 'FusedLeakyReLUFunction', 'fused_act_ext', _FusedLeakyReLUDispatch),
                                     (up_mod, 'UpFirDn2d', 'upfirdn2d_ext', _UpFirDn2dDispatch)):
        current = getattr(mod, attr)
        if current is dispatch:
            continue
        if getattr(current, '_panininet_dispatch', False):  # ours, from before a reload: take over its findings
            for slot in ('compiled', 'reference', 'native'):
                if hasattr(dispatch, slot):
                    setattr(dispatch, slot, getattr(current, slot, None))
        else:
            dispatch.compiled = current if hasattr(mod, ext) else None
        dispatch._panininet_dispatch = True
        setattr(mod, attr, dispatch)
    if _UpFirDn2dDispatch.reference is None:
        _UpFirDn2dDispatch.reference = up_mod.upfirdn2d_native
    if _UpFirDn2dDispatch.native is None:
        _UpFirDn2dDispatch.native = _UpFirDn2dDispatch.reference
    both = _FusedLeakyReLUDispatch.compiled is not None and _UpFirDn2dDispatch.compiled is not None
    return 'cuda-kernels' if both else 'native'


# ---------------------------------------------------------------------------------------------------------------------
# 3. the fast native ops of panininet.platform.native_ops
# ---------------------------------------------------------------------------------------------------------------------
def reference_upfirdn2d():
    """basicsr's original ``upfirdn2d_native`` (rosinality's reference algorithm), whatever is installed.

    Returns:
        callable: ``f(input, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1)``.
    """
    return _UpFirDn2dDispatch.reference or _upfirdn2d_module().upfirdn2d_native


def install_fast_ops(fast=True):
    """Make basicsr's native StyleGAN2 ops :func:`panininet.platform.native_ops.upfirdn2d_fast` /
    ``fused_leaky_relu_fast`` or not.

    basicsr's ``upfirdn2d()`` calls its module global ``upfirdn2d_native`` on CPU, and :class:`_UpFirDn2dDispatch`
    on CUDA when the kernels were not compiled; both are set here, as is :class:`_FusedLeakyReLUDispatch`'s native
    op. The compiled CUDA kernels are not affected. :func:`apply` calls it with ``fast=True``; benchmarks call it
    with ``fast=False`` to measure the reference. Idempotent. Needs :func:`patch_fused_act` first.

    Args:
        fast (bool): Install the fast ops (True) or restore basicsr's reference (False). Default: True.

    Returns:
        callable: The upfirdn2d op now installed.
    """
    op = ops.upfirdn2d_fast if fast else reference_upfirdn2d()
    _upfirdn2d_module().upfirdn2d_native = op
    _UpFirDn2dDispatch.native = op
    _FusedLeakyReLUDispatch.native = ops.fused_leaky_relu_fast if fast else None
    return op


def fast_ops_installed():
    """Whether the fast ops are installed (see :func:`install_fast_ops`)."""
    return _upfirdn2d_module().upfirdn2d_native is ops.upfirdn2d_fast


# ---------------------------------------------------------------------------------------------------------------------
# 4. JPEG with a float quality
# ---------------------------------------------------------------------------------------------------------------------
def patch_jpeg_quality():
    """Replace ``basicsr.data.degradations.add_jpg_compression`` by our int-quality version."""
    import basicsr.data.degradations as basicsr_degradations

    from panininet.data.degradations import add_jpg_compression
    basicsr_degradations.add_jpg_compression = add_jpg_compression


# ---------------------------------------------------------------------------------------------------------------------
# 5. torch.distributed without CUDA
# ---------------------------------------------------------------------------------------------------------------------
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


def patch_init_dist():
    """Install :func:`init_dist` where ``basicsr.utils.options.parse_options`` looks it up."""
    import basicsr.utils.options as options_mod
    options_mod.init_dist = init_dist


# ---------------------------------------------------------------------------------------------------------------------
# 6. CPU-safe, weights-only, exact resume (the machinery is panininet.resume)
# ---------------------------------------------------------------------------------------------------------------------
def patch_exact_resume():
    """Install :mod:`panininet.resume` into ``basicsr.train`` (the names ``train_pipeline`` looks up at call time).

    ``EnlargedSampler`` -> :class:`panininet.resume.ResumableEnlargedSampler`; ``load_resume_state`` and
    ``create_train_val_dataloader`` -> the two ends of one fresh :class:`panininet.resume.ResumeHandoff`, which
    carries the resume position from the first call to the sampler built by the second.

    Returns:
        ResumeHandoff: The handoff now installed.
    """
    import basicsr.train as train_mod

    from panininet import resume
    train_mod.EnlargedSampler = resume.ResumableEnlargedSampler
    handoff = resume.ResumeHandoff()
    original = getattr(train_mod.create_train_val_dataloader, '_panininet_original',
                       train_mod.create_train_val_dataloader)

    def create_train_val_dataloader(opt, logger):
        result = original(opt, logger)
        handoff.arm(result[0], result[1], opt)
        return result

    create_train_val_dataloader._panininet_original = original
    train_mod.create_train_val_dataloader = create_train_val_dataloader
    train_mod.load_resume_state = handoff.load_resume_state
    return handoff


# ---------------------------------------------------------------------------------------------------------------------
# 7. Real-ESRGAN's degradation functions in basicsr
# ---------------------------------------------------------------------------------------------------------------------
def generate_gaussian_noise_pt(img, sigma=10, gray_noise=0):
    """``basicsr.data.degradations.generate_gaussian_noise_pt`` with one gray-noise image per batch item.

    Args:
        img (Tensor): (b, c, h, w) in [0, 1].
        sigma (float | Tensor): Noise std on the 0..255 scale; a tensor has one value per image, shape (b,).
        gray_noise (float | Tensor): 0/1 (or a (b,) tensor of them): gray (channel-shared) noise.

    Returns:
        Tensor: (b, c, h, w) noise (the gray noise drawn before the colour noise, as basicsr does).
    """
    b, _, h, w = img.size()
    if not isinstance(sigma, (float, int)):
        sigma = sigma.view(b, 1, 1, 1)
    if isinstance(gray_noise, (float, int)):
        cal_gray_noise = gray_noise > 0
    else:
        gray_noise = gray_noise.view(b, 1, 1, 1)
        cal_gray_noise = torch.sum(gray_noise) > 0
    if cal_gray_noise:
        noise_gray = torch.randn(b, 1, h, w, dtype=img.dtype, device=img.device) * sigma / 255.
    noise = torch.randn(*img.size(), dtype=img.dtype, device=img.device) * sigma / 255.
    if cal_gray_noise:
        noise = noise * (1 - gray_noise) + noise_gray * gray_noise
    return noise


def patch_realesrgan_degradations():
    """Install :func:`generate_gaussian_noise_pt` into basicsr and make ``DiffJPEG.forward`` copy its quality."""
    import basicsr.data.degradations as basicsr_degradations
    from basicsr.utils.diffjpeg import DiffJPEG

    basicsr_degradations.generate_gaussian_noise_pt = generate_gaussian_noise_pt
    forward = getattr(DiffJPEG.forward, '_panininet_original', DiffJPEG.forward)

    def diffjpeg_forward(self, x, quality):
        return forward(self, x, quality.clone() if isinstance(quality, torch.Tensor) else quality)

    diffjpeg_forward._panininet_original = forward
    DiffJPEG.forward = diffjpeg_forward


# 8. scipy.linalg.sqrtm(..., disp=False) in basicsr's FID (SciPy >= 1.18 has no ``disp``)
# ---------------------------------------------------------------------------------------------------------------------
def sqrtm(A, disp=True, blocksize=None):
    """``scipy.linalg.sqrtm`` with the ``disp`` argument SciPy < 1.18 had, on any SciPy.

    Args:
        A (np.ndarray): Square matrix, shape (n, n).
        disp (bool): False: also return the error estimate, as SciPy < 1.18 did. Default: True.
        blocksize (int | None): Ignored (SciPy 1.16 deprecated it as unused, 1.18 removed it).

    Returns:
        np.ndarray | tuple: The square root, shape (n, n); with ``disp=False`` the pair (square root, error
        estimate ``||X @ X - A||_F ** 2 / ||A||_F``, SciPy's formula).
    """
    import scipy.linalg
    root = scipy.linalg.sqrtm(A)
    if disp:
        return root
    error = np.linalg.norm(root @ root - A, 'fro') ** 2 / np.linalg.norm(A, 'fro')
    return root, error


class _LinalgWithSqrtmDisp(types.ModuleType):
    """``scipy.linalg`` as seen by basicsr's FID module: every name is SciPy's, except :func:`sqrtm`."""

    def __init__(self):
        super().__init__('scipy.linalg', 'scipy.linalg with sqrtm(disp=...), for basicsr.metrics.fid')
        self.sqrtm = sqrtm

    def __getattr__(self, name):
        import scipy.linalg
        return getattr(scipy.linalg, name)


def patch_fid_sqrtm():
    """Give ``basicsr.metrics.fid`` (which calls ``linalg.sqrtm(..., disp=False)``) a ``linalg`` with :func:`sqrtm`."""
    fid_mod = importlib.import_module('basicsr.metrics.fid')
    if not isinstance(fid_mod.linalg, _LinalgWithSqrtmDisp):
        fid_mod.linalg = _LinalgWithSqrtmDisp()


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
    install_fast_ops(fast=True)
    patch_jpeg_quality()
    patch_realesrgan_degradations()
    patch_init_dist()
    patch_exact_resume()
    patch_fid_sqrtm()
    from panininet.platform import compat_gfpgan  # 9: GFP-GAN's training path (does nothing without gfpgan)

    compat_gfpgan.patch_vgg_weights()
    compat_gfpgan.patch_gfpgan_component_file()
    compat_gfpgan.patch_gfpgan_adam_betas()
    _APPLIED = True
    if OP_PATH == 'cuda-kernels':
        logger.info('panininet: StyleGAN2 ops use the compiled basicsr CUDA kernels on GPU (native on CPU).')
    else:
        logger.info('panininet: StyleGAN2 ops use the native PyTorch path (no compiled basicsr kernels; '
                    'set BASICSR_EXT=True when building basicsr for the CUDA kernels).')
    return OP_PATH


__all__ = ['apply', 'OP_PATH', 'install_functional_tensor_alias', 'patch_fused_act', 'install_fast_ops',
           'fast_ops_installed', 'reference_upfirdn2d', 'patch_jpeg_quality', 'init_dist', 'patch_init_dist',
           'patch_exact_resume', 'patch_realesrgan_degradations', 'generate_gaussian_noise_pt', 'sqrtm',
           'patch_fid_sqrtm']
