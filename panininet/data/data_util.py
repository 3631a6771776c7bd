"""Helpers shared by the panininet datasets: HQ path lists, image reading with clear errors, RNG, tensors.

Not a ``*_dataset.py`` file, so it registers nothing.
"""
import os
import os.path as osp

import cv2
import numpy as np
import torch
from basicsr.data.data_util import paths_from_folder
from basicsr.utils import FileClient

from panininet.data.degradations import resize, seeded_rng
from panininet.image_io import IMAGE_EXTENSIONS, is_image_file

IMG_EXTENSIONS = IMAGE_EXTENSIONS  # the one list (panininet.image_io); this name kept for older imports


def hq_paths(opt, key='dataroot_gt'):
    """List the HQ images of a dataset, as GFPGAN's ``FFHQDegradationDataset`` does.

    Args:
        opt (dict): Dataset options. Reads ``opt[key]`` (folder, or ``*.lmdb`` folder when
            ``io_backend.type == 'lmdb'``) and optional ``meta_info`` (text file: one path relative to the
            dataroot per line, first column).
        key (str): Option holding the dataroot. Default: 'dataroot_gt'.

    Returns:
        list[str]: Full paths (disk) or lmdb keys, sorted as listed.

    Raises:
        ValueError: the option is missing.
        FileNotFoundError: dataroot / lmdb / meta_info missing (the message names the path).
        RuntimeError: no images found.
    """
    root = opt.get(key)
    if not root:
        raise ValueError(f'Dataset option {key!r} is missing: set it to the folder of HQ images.')
    root = str(root)
    backend = opt.get('io_backend', {}).get('type', 'disk')
    if backend == 'lmdb':
        if not root.endswith('.lmdb'):
            raise ValueError(f'{key}={root!r}: the lmdb backend needs a folder ending in .lmdb '
                             '(made with basicsr.utils.lmdb_util.make_lmdb_from_imgs).')
        meta = osp.join(root, 'meta_info.txt')
        if not osp.isdir(root) or not osp.isfile(osp.join(root, 'data.mdb')):
            raise FileNotFoundError(f'lmdb {root!r} ({key}) does not exist or has no data.mdb.')
        if not osp.isfile(meta):
            raise FileNotFoundError(f'lmdb {root!r} ({key}) has no meta_info.txt listing its keys.')
        with open(meta) as fin:
            paths = [line.split(' ')[0].rsplit('.', 1)[0] for line in fin if line.strip()]
    else:
        if not osp.isdir(root):
            raise FileNotFoundError(f'{key}={root!r} does not exist or is not a folder.')
        if opt.get('meta_info'):
            meta = str(opt['meta_info'])
            if not osp.isfile(meta):
                raise FileNotFoundError(f'meta_info file {meta!r} does not exist.')
            with open(meta) as fin:
                paths = [osp.join(root, line.strip().split(' ')[0]) for line in fin if line.strip()]
        else:
            paths = sorted(p for p in paths_from_folder(root) if is_image_file(p))
    if not paths:
        where = f'lmdb {root!r}' if backend == 'lmdb' else f'{key}={root!r}'
        raise RuntimeError(f'No images found in {where} (extensions {", ".join(IMAGE_EXTENSIONS)}).')
    return paths


_LMDB_CLIENTS = {}


def _file_client(opt):
    """A FileClient; lmdb ones are shared per (database, process), since lmdb refuses to open a database twice in
    one process (two datasets on one lmdb) and an environment must not be used across a fork (DataLoader workers)."""
    opt = dict(opt)
    backend = opt.pop('type')
    if backend != 'lmdb':
        return FileClient(backend, **opt)
    key = (osp.realpath(opt['db_paths'][0]), os.getpid())
    if key not in _LMDB_CLIENTS:
        _LMDB_CLIENTS[key] = FileClient(backend, **opt)
    return _LMDB_CLIENTS[key]


class ImageReader:
    """Reads images through BasicSR's FileClient (disk / lmdb), lazily opened (safe with DataLoader workers).

    Args:
        io_backend_opt (dict): ``{'type': 'disk'|'lmdb', ...}``.
        root (str): Dataroot; for lmdb the ``*.lmdb`` folder.
    """

    def __init__(self, io_backend_opt, root):
        self.opt = dict(io_backend_opt or {'type': 'disk'})
        self.root = str(root)
        if self.opt.get('type') == 'lmdb':
            self.opt['db_paths'] = [self.root]
            self.opt['client_keys'] = ['gt']
        self.client = None

    def read(self, path):
        """Read one image.

        Args:
            path (str): File path (disk) or lmdb key.

        Returns:
            ndarray: uint8 (h, w, 3) BGR; grayscale files are expanded to 3 channels. (The HQ stays 8-bit until
            it becomes a tensor: flips and resizes on uint8 are several times faster than on float32.)
        """
        if self.client is None:
            self.client = _file_client(self.opt)
        lmdb = 'db_paths' in self.opt
        try:
            buf = self.client.get(path, 'gt') if lmdb else self.client.get(path)
        except FileNotFoundError:
            raise FileNotFoundError(f'Image {path!r} does not exist.') from None
        if buf is None:
            raise KeyError(f'Key {path!r} is not in lmdb {self.root!r} (its meta_info.txt lists it).')
        img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR) if len(buf) else None
        if img is None:
            where = f'lmdb {self.root!r} key ' if lmdb else 'file '
            raise OSError(f'Cannot decode image {where}{path!r}: not an image or corrupt.')
        return img


def make_rng(deterministic, seed, index):
    """The RNG for one item.

    Deterministic (validation/test): a function of (seed, index) only. Training: fresh per call, drawn from the
    global NumPy state (seeded per worker by BasicSR's ``worker_init_fn``) mixed with torch's per-worker seed, so
    DataLoader workers never repeat each other even without ``worker_init_fn``.

    Args:
        deterministic (bool): Validation/test mode.
        seed (int): Base seed (deterministic mode).
        index (int): Item index.

    Returns:
        numpy.random.Generator
    """
    if deterministic:
        return seeded_rng(seed, index)
    return np.random.default_rng([int(np.random.randint(0, 2**31)), torch.initial_seed() % 2**63, int(index)])


def is_deterministic(opt):
    """``opt['deterministic']`` if given, else True unless ``opt['phase'] == 'train'`` (set by BasicSR)."""
    det = opt.get('deterministic')
    return (opt.get('phase', 'train') != 'train') if det is None else bool(det)


def prepare_hq(img, size, rng, use_hflip):
    """Resize an HQ image to (size, size) (area when shrinking, cubic when enlarging), maybe flip it.

    Args:
        img (ndarray): (h, w, 3) uint8 or float32 in [0, 1].
        size (int): Output side.
        rng (numpy.random.Generator | None): Draws the flip (only used when ``use_hflip``).
        use_hflip (bool): Flip horizontally with p = 0.5.

    Returns:
        tuple[ndarray, bool]: Contiguous (size, size, 3) array of the input dtype, and whether it was flipped.
    """
    if img.shape[:2] != (size, size):
        img = resize(img, size, 'area' if img.shape[0] >= size else 'cubic')
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 1)
    flip = bool(use_hflip) and bool(rng.random() < 0.5)
    if flip:
        img = cv2.flip(img, 1)
    return np.ascontiguousarray(img), flip


def color_jitter(img, shift, rng):
    """GFP-GAN's colour jitter: add one uniform offset in [-shift, shift] per channel, clip to [0, 1]."""
    offset = rng.uniform(-shift, shift, 3).astype(np.float32)
    return np.clip(img + offset, 0, 1)


def to_gray3(img):
    """BGR -> gray, repeated to 3 channels."""
    return np.repeat(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None], 3, axis=2)


def to_tensor(img, mean=None, std=None):
    """BGR HWC image -> RGB (3, h, w) float32 tensor in [0, 1], then (x - mean) / std when given.

    Args:
        img (ndarray): (h, w, 3) uint8 (0..255) or float32 in [0, 1], BGR.
        mean, std (float | list[float] | None): Per-channel (RGB) normalisation; 0.5 / 0.5 gives [-1, 1].

    Returns:
        Tensor: (3, h, w) float32, contiguous.
    """
    t = torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1)))  # one 8-bit/float copy
    t = t.float().mul_(1 / 255.) if t.dtype == torch.uint8 else t
    if mean is not None and std is not None:
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
        t.sub_(mean).div_(std)
    return t


def params_for_batch(params, **extra):
    """Degradation params as a collatable dict (q None -> -1, meaning JPEG off)."""
    out = {k: (-1 if v is None else v) for k, v in params.items()}
    out.update(extra)
    return out

