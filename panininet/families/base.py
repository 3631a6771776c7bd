"""The family interface, its registry, and what every family shares (device, precision, the fidelity weight).

A *family* is one kind of restoration network behind one call: it builds itself from a weights file, says its input
and output sizes, and restores a batch of aligned faces::

    family = build_family('mfr', 'panini_mfr.pth', device='cuda', precision='bf16')
    restored = family(faces, weight=0.5)  # (b, 3, in_size, in_size) -> (b, 3, out_size, out_size), both in [-1, 1]

The restorer, the evaluation script and the benchmarks only use this interface; everything particular to a network
(its constructor, how its weights are read, how the fidelity weight reaches it) lives in its family's class.
"""
import contextlib
import os.path as osp

import torch
from basicsr.utils import get_root_logger

from panininet.weights.releases import resolve_model_path

# network arithmetic -> autocast dtype (None: fp32, no autocast); weights stay fp32 in every mode
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
DEFAULT_SIZE = 512  # in/out size of a network that does not say its own (facexlib's aligned crops are 512)

FAMILIES = {}  # -v name -> family class, in registration order
# runtime -> family class that runs any family's exported file ('pytorch': the -v family itself, FAMILIES)
BACKENDS = {'pytorch': None}


def register_family(*names):
    """Class decorator: register a :class:`RestorationFamily` subclass under one or more ``-v`` names.

    Args:
        *names (str): The names (e.g. ``'mfr', 'sr16'``); each may be registered once.

    Returns:
        callable: The decorator (returns the class unchanged).
    """
    def decorator(cls):
        for name in names:
            if name in FAMILIES:
                raise ValueError(f'restoration family {name!r} is registered twice '
                                 f'({FAMILIES[name].__name__} and {cls.__name__}).')
            FAMILIES[name] = cls
        return cls
    return decorator


def register_backend(name):
    """Class decorator: register a :class:`RestorationFamily` subclass that runs exported files as ``backend``.

    Args:
        name (str): The backend's name (``--backend``), e.g. 'onnxruntime'.

    Returns:
        callable: The decorator (returns the class unchanged).
    """
    def decorator(cls):
        if name in BACKENDS:
            raise ValueError(f'backend {name!r} is registered twice.')
        BACKENDS[name] = cls
        return cls
    return decorator


def family_names():
    """The registered ``-v`` names, in registration order (PaniniNet's first)."""
    return tuple(FAMILIES)


def family_class(name):
    """The family class registered as ``name``.

    Raises:
        ValueError: Unknown name (the message lists the known ones).
    """
    if name not in FAMILIES:
        raise ValueError(f'Unknown version {name!r}; choose one of {family_names()}.')
    return FAMILIES[name]


def build_family(name, model_path=None, device=None, precision='fp32', weights_dir=None, allow_download=True,
                 backend='pytorch'):
    """Build the family ``name`` from a weights file.

    Args:
        name (str): A registered ``-v`` name (:func:`family_names`).
        model_path (str | None): Weights file; None: the release file of ``name`` in the weights root, downloaded
            when missing and allowed (:func:`panininet.weights.releases.resolve_model_path`). Default: None.
        device (str | torch.device | None): See :func:`select_device`. Default: None.
        precision (str): A key of :data:`PRECISIONS`. Default: 'fp32'.
        weights_dir (str | None): Weights root (downloads, converted official files). Default: None.
        allow_download (bool): Download a missing release file. Default: True.
        backend (str): A key of :data:`BACKENDS`: 'pytorch' (the family's own network), or e.g. 'onnxruntime'
            (``model_path`` is then that runtime's exported file, e.g. ``.onnx``; needed: no release file).
            Default: 'pytorch'.

    Returns:
        RestorationFamily: Ready for inference (eval mode, on ``device``).

    Raises:
        ValueError: Unknown name or precision, or a file that does not hold this family's weights.
        panininet.weights.releases.WeightsNotFoundError: No file, and none downloadable.
        ImportError: The family needs a package that is not installed (the message says which).
    """
    cls = family_class(name)
    if backend not in BACKENDS:
        raise ValueError(f'Unknown backend {backend!r}; choose one of {tuple(BACKENDS)}.')
    if BACKENDS[backend] is not None:
        if model_path is None:
            raise ValueError(f'--backend {backend} needs --model_path: the exported file (scripts/export_onnx.py).')
        if not osp.isfile(model_path):
            raise ValueError(f'--model_path {model_path}: no such file.')
        return BACKENDS[backend].from_file(name, model_path, device=device, precision=precision,
                                           weights_dir=weights_dir)
    check_precision(precision, select_device(device), warn=False)  # before a file is read or downloaded
    path = resolve_model_path(name, model_path, weights_dir, allow_download)
    return cls.from_file(name, path, device=device, precision=precision, weights_dir=weights_dir)


def random_family(name, device=None, precision='fp32', **arch):
    """The family ``name`` at its released size with random weights (speed and memory do not depend on values).

    Args:
        name (str): A registered ``-v`` name.
        device, precision: As :func:`build_family`.
        **arch: Constructor arguments that replace the released ones (e.g. ``narrow=0.25`` for a tiny network).

    Returns:
        RestorationFamily
    """
    return family_class(name).with_random_weights(name, device=device, precision=precision, **arch)


def select_device(device=None):
    """``None``/'auto' -> cuda, else mps, else cpu; anything else is passed to ``torch.device``."""
    if device is None or device == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda')
        if getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available():
            return torch.device('mps')
        return torch.device('cpu')
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError('--device cuda was asked for but CUDA is not available; use --device cpu or auto.')
    return device


def check_precision(precision, device, warn=True):
    """Refuse a precision the device cannot run, and warn when it would be slow.

    Args:
        precision (str): A key of :data:`PRECISIONS`.
        device (torch.device): Where the network runs.
        warn (bool): Log the warning for bf16 on a CPU without native bf16. Default: True.

    Raises:
        ValueError: Unknown precision, or fp16 on the CPU.
    """
    if precision not in PRECISIONS:
        raise ValueError(f'Unknown precision {precision!r}; choose one of {tuple(PRECISIONS)}.')
    if precision == 'fp16' and device.type == 'cpu':
        raise ValueError('fp16 (--fp16) needs a GPU; on the CPU use bf16 (--bf16) or fp32.')
    bf16_native = getattr(getattr(torch.ops, 'mkldnn', None), '_is_mkldnn_bf16_supported', lambda: True)
    if warn and precision == 'bf16' and device.type == 'cpu' and not bf16_native():
        # measured on an AVX2 CPU: a 3x3 conv runs ~100x slower in bf16 than in fp32
        get_root_logger().warning('bf16 on this CPU (no AVX512-BF16/AMX) is far slower than fp32; '
                                  'drop --bf16 unless the CPU has native bf16.')


def autocast(device, precision):
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32)."""
    dtype = PRECISIONS[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def validate_weight(weight):
    """The user's fidelity weight as a float in [0, 1], or None.

    Raises:
        ValueError: ``weight`` outside [0, 1].
    """
    if weight is None:
        return None
    weight = float(weight)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f'weight must be in [0, 1] (1 keeps the most of the input, 0 the most of the prior), '
                         f'got {weight}.')
    return weight


def load_state_dict_strict(net, state_dict, path, name):
    """``net.load_state_dict(state_dict, strict=True)``, refusing a file of another network in one line.

    Raises:
        ValueError: Missing, unexpected or mis-shaped entries (the message names the file and the family).
    """
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        detail = ' '.join(str(err).split('\n', 2)[1:2]).strip()[:300]
        raise ValueError(f'{path} does not hold -v {name} weights ({detail}); give the file of that model, '
                         'or the -v that matches the file.') from None


class RestorationFamily:
    """One restoration network behind the family interface.

    Subclasses implement :meth:`from_file`, :meth:`with_random_weights` and :meth:`forward`, set ``in_size`` and
    ``out_size`` and say whether the fidelity weight acts (``supports_weight``); this base moves the network to its
    device, checks the precision and runs :meth:`forward` under the precision's autocast.

    Args:
        net (torch.nn.Module): The network (moved to ``device``, eval mode).
        device (str | torch.device | None): See :func:`select_device`. Default: None.
        precision (str): A key of :data:`PRECISIONS`. Default: 'fp32'.

    Attributes:
        in_size (int): Side of the faces the call takes.
        out_size (int): Side of the faces it returns.
        supports_weight (bool): Whether ``weight`` changes the output.
    """
    supports_weight = False

    def __init__(self, net, device=None, precision='fp32'):
        self.device = select_device(device)
        check_precision(precision, self.device)
        self.precision = precision
        self.net = net.to(self.device).eval()
        self.in_size = int(getattr(net, 'in_size', DEFAULT_SIZE))
        self.out_size = int(getattr(net, 'out_size', DEFAULT_SIZE))

    @classmethod
    def from_file(cls, name, path, device=None, precision='fp32', weights_dir=None):
        """Build the family from a weights file (what :func:`build_family` calls).

        Args:
            name (str): The ``-v`` name it is built as (one class may serve several).
            path (str): Existing weights file.
            device, precision: As the constructor.
            weights_dir (str | None): Weights root (e.g. for a cache of converted files). Default: None.
        """
        raise NotImplementedError

    @classmethod
    def with_random_weights(cls, name, device=None, precision='fp32', **arch):
        """The network of ``name`` at its released size (``arch`` overrides) with random weights."""
        raise NotImplementedError

    def check_weight(self, weight):
        """Refuse a weight outside [0, 1] (and, in a subclass, one the network cannot honour)."""
        validate_weight(weight)

    def forward(self, faces, weight):
        """The network call: (b, 3, in_size, in_size) RGB in [-1, 1] -> (b, 3, out_size, out_size)."""
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, faces, weight=None):
        """Restore a batch of aligned faces.

        Args:
            faces (Tensor): (b, 3, in_size, in_size) float RGB in [-1, 1] on the family's device.
            weight (float | None): Fidelity in [0, 1] (1 keeps the most of the input); None: the network as
                trained. Default: None.

        Returns:
            Tensor: (b, 3, out_size, out_size) float32 RGB, in [-1, 1] up to the network's overshoot.
        """
        self.check_weight(weight)
        with autocast(self.device, self.precision):
            return self.forward(faces, weight).float()
