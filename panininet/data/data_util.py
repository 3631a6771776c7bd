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
from torch.utils import data

from panininet.data.degradation_sampler import seeded_rng
from panininet.data.degradations import resize
from panininet.pipeline.image_io import IMAGE_EXTENSIONS, is_image_file

IMG_EXTENSIONS = IMAGE_EXTENSIONS  # the one list (panininet.pipeline.image_io); this name kept for older imports


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


class HQFaceDataset(data.Dataset):
    """What every panininet pair dataset shares: the HQ list, its reader, the per-item RNG, the prepared HQ face.

    Not registered (subclasses are). Reads the options ``dataroot_gt``, ``meta_info``, ``io_backend``, ``mean``,
    ``std``, ``use_hflip``, ``deterministic``/``phase`` and ``seed`` (see :class:`PaniniMFRDataset`).

    Attributes:
        paths (list[str]): HQ paths or lmdb keys (:func:`hq_paths`).
        reader (ImageReader): Reads them.
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.mean, self.std = opt.get('mean'), opt.get('std')
        self.use_hflip = opt.get('use_hflip', False)
        self.deterministic = is_deterministic(opt)
        self.seed = int(opt.get('seed', 0))
        self.paths = hq_paths(opt)
        self.reader = ImageReader(opt.get('io_backend', {'type': 'disk'}), opt['dataroot_gt'])

    def __len__(self):
        return len(self.paths)

    def item_rng(self, index):
        """The RNG of item ``index`` (:func:`make_rng`)."""
        return make_rng(self.deterministic, self.seed, index)

    def read_hq(self, path, size, rng):
        """HQ image ``path`` resized to ``size`` and maybe flipped (:func:`prepare_hq`): (img, flipped)."""
        return prepare_hq(self.reader.read(path), size, rng, self.use_hflip)


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



# GFP-GAN's facial components, in the order of its ``FFHQ_eye_mouth_landmarks_512.pth`` entries
COMPONENT_PARTS = ('left_eye', 'right_eye', 'mouth')


class ComponentLocations:
    """GFP-GAN's component-landmarks file, read safely; every lookup hands out fresh arrays.

    The file (GFP-GAN's ``FFHQ_eye_mouth_landmarks_512.pth``, made by its ``scripts/parse_landmark.py``) is a dict
    ``{'00000000': {'left_eye': [x, y, half_len], 'right_eye': [...], 'mouth': [...]}, ...}`` keyed by the image's
    index (8 digits) in the dataset's image list, in the pixel coordinates of the ``out_size`` faces, values numpy
    float64 scalars. It is read weights-only through :func:`panininet.weights.checkpoint.load_checkpoint_file` (numpy
    scalars allowed; GFP-GAN's dataset unpickles it itself, which PyTorch >= 2.6 refuses for these scalars).

    GFP-GAN's ``FFHQDegradationDataset.get_component_coordinates`` swaps and mirrors the entry of a flipped image
    *in place*, so with a plain dict the stored boxes of an image stay mirrored until it is flipped again (and an
    unflipped read then gets the mirrored boxes). Here ``self[key]`` returns new arrays on every call, so that edit
    never reaches the stored values.

    Args:
        path (str): The ``.pth`` file.
    """

    def __init__(self, path):
        from panininet.data.face_components import load_component_landmarks  # the one reader (and its checks)
        self._set(load_component_landmarks(path))

    def _set(self, table):
        self._boxes = {key: np.stack([np.asarray(entry[p], dtype=np.float64).reshape(3) for p in COMPONENT_PARTS])
                       for key, entry in table.items()}

    @classmethod
    def template(cls, num_images, coord_size=512):
        """The FFHQ template's fixed boxes (:func:`panininet.data.face_components.template_entry`) for every image
        of an aligned dataset without a landmarks file.

        Args:
            num_images (int): Images in the dataset.
            coord_size (int): Side the numbers refer to. Default: 512.

        Returns:
            ComponentLocations
        """
        from panininet.data.face_components import index_key, template_entry
        self = cls.__new__(cls)
        entry = template_entry(coord_size)
        self._set({index_key(i): entry for i in range(num_images)})
        return self

    @classmethod
    def from_options(cls, opt, num_images):
        """The file named by a dataset's ``component_path`` option, checked against its image count.

        Args:
            opt (dict): Dataset options (``component_path``, ``dataroot_gt``).
            num_images (int): Images in the dataset (one entry each).

        Returns:
            ComponentLocations
        """
        if not opt.get('component_path'):
            raise ValueError('crop_components is true but component_path is not set: give the facial component '
                             'landmarks file (FFHQ_eye_mouth_landmarks_512.pth format).')
        locations = cls(opt['component_path'])
        if len(locations) < num_images:
            raise ValueError(f'component_path {opt["component_path"]!r} has {len(locations)} entries for '
                             f'{num_images} images in {opt.get("dataroot_gt")!r}: make the file for this folder.')
        return locations

    def __len__(self):
        return len(self._boxes)

    def __contains__(self, key):
        return key in self._boxes

    def __getitem__(self, key):
        """``{'left_eye': array([x, y, half_len]), 'right_eye': ..., 'mouth': ...}``, new arrays (float64)."""
        try:
            boxes = self._boxes[key]
        except KeyError:
            raise KeyError(f'component landmarks have no entry {key!r} ({len(self)} entries, one per image of the '
                           'dataset in its sorted order): make the file for this image folder.') from None
        return {p: boxes[i].copy() for i, p in enumerate(COMPONENT_PARTS)}

    def locations(self, index, size, hflip=False, eye_enlarge_ratio=1.0, coord_size=None):
        """The ``loc_left_eye``, ``loc_right_eye``, ``loc_mouth`` boxes GFP-GAN's model crops (as its dataset).

        Box = ``(x - h + 1, y - h + 1, x + h, y + h)`` with half length ``h`` (eyes: ``h * eye_enlarge_ratio``),
        in the file's frame, then scaled by ``size / coord_size``. A flipped face mirrors x (``coord_size - x``)
        and swaps the eyes.

        Args:
            index (int): Image index (the entry ``f'{index:08d}'``).
            size (int): Side of the face the boxes are for, in pixels.
            hflip (bool): The face was flipped horizontally. Default: False.
            eye_enlarge_ratio (float): Eye box enlargement (GFP-GAN: 1.4). Default: 1.0.
            coord_size (int | None): Side the file's numbers refer to (512 for GFP-GAN's file). Default: ``size``.

        Returns:
            dict[str, Tensor]: ``loc_left_eye``, ``loc_right_eye``, ``loc_mouth``, each (4,) float32.
        """
        coord_size = size if coord_size is None else coord_size
        boxes = self[f'{index:08d}']
        if hflip:
            boxes = {'left_eye': boxes['right_eye'], 'right_eye': boxes['left_eye'], 'mouth': boxes['mouth']}
            for b in boxes.values():
                b[0] = coord_size - b[0]
        out = {}
        for part, (x, y, h) in boxes.items():
            h = h * eye_enlarge_ratio if 'eye' in part else h
            loc = np.array([x - h + 1, y - h + 1, x + h, y + h]) * (size / coord_size)
            out[f'loc_{part}'] = torch.from_numpy(loc).float()
        return out
