"""Preflight of a training options file: everything a run needs is checked before anything is created.

``python panininet/train.py -opt X.yml`` calls :func:`check_training_options` before BasicSR's ``train_pipeline``,
which creates ``experiments/<name>`` and ``tb_logger/<name>`` (and renames earlier ones to ``*_archived_*``) before
it reads a single input. Without a preflight a new user learns one missing file per attempt, and each attempt
leaves folders behind. Here every problem is collected first and reported in one message, each with the option,
its line in the YAML file and where to get what is missing; the CLI prints it and exits with status 2.

What is checked:

* **Inputs**: every dataset folder or LMDB (``dataroot_*``, with at least one image; an LMDB with ``data.mdb`` and
  ``meta_info.txt``), meta-info file, component-landmarks file (``component_path``), every pre-trained network
  (``path.pretrain_network_*``, every ``*_load_path`` in a network or loss block: the StyleGAN2 prior, the DRE,
  GFP-GAN's decoder, VGG, ArcFace), torchvision's VGG file that basicsr's ``PerceptualLoss`` reads from the weights
  root, and ``path.resume_state``.
* **Outputs**: ``experiments/`` (and ``tb_logger/`` when ``use_tb_logger``) can be created under the root.
* **Values**: registered ``model_type`` / ``type`` names; keys a network or loss constructor does not take (checked
  against the registered class's signature) and keys no code of a dataset reads (its modules' ``opt[...]`` /
  ``opt.get(...)`` look-ups, since a dataset takes one ``opt`` dict); learning rates that are not positive numbers
  (``lr: 1e-4`` without ``!!float`` is a *string* in YAML 1.1); non-positive iteration counts and batch sizes; a
  batch that has no full batch per process in the data, that MoCo's queue ``K`` does not divide by, or that
  StyleGAN2's minibatch-stddev group does not divide.

Paths are resolved as the run resolves them: pre-trained files relative to the root (``root_path``, the repository
root), dataset files relative to the working directory (BasicSR reads them as given).
"""
import ast
import inspect
import os
import os.path as osp
import sys
from dataclasses import dataclass

import yaml

# where each pre-trained file comes from (file name -> how to get it)
_GFPGAN_RELEASE = 'https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/'
_PRETRAINED_SCRIPT = 'python scripts/download_pretrained.py'
SOURCES = {
    'stylegan2_ffhq_config_f_1024_official-3ab41b38.pth':
        f'{_PRETRAINED_SCRIPT} stylegan2_ffhq_1024 (BasicSR model zoo, StyleGAN)',
    'stylegan2_ffhq_config_f_1024_discriminator_official-a386354a.pth':
        f'{_PRETRAINED_SCRIPT} stylegan2_ffhq_1024 (BasicSR model zoo, StyleGAN)',
    'vgg16-397923af.pth': f'{_PRETRAINED_SCRIPT} vgg16 (https://download.pytorch.org/models/vgg16-397923af.pth)',
    'vgg19-dcbb9e9d.pth': f'{_PRETRAINED_SCRIPT} vgg19 (https://download.pytorch.org/models/vgg19-dcbb9e9d.pth)',
    'recognition_arcface_ir_se50.pth': f'{_PRETRAINED_SCRIPT} arcface_ir_se50 (https://github.com/xinntao/facexlib/'
                                       'releases/download/v0.1.0/recognition_arcface_ir_se50.pth)',
    'arcface_resnet18.pth': f'{_PRETRAINED_SCRIPT} gfpgan_train ({_GFPGAN_RELEASE}arcface_resnet18.pth)',
    'StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth':
        f'{_PRETRAINED_SCRIPT} gfpgan_train ({_GFPGAN_RELEASE}StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth)',
    'FFHQ_eye_mouth_landmarks_512.pth':
        f'{_PRETRAINED_SCRIPT} gfpgan_train ({_GFPGAN_RELEASE}FFHQ_eye_mouth_landmarks_512.pth, FFHQ at 512 in '
        'FFHQ order); for another folder: python scripts/make_component_landmarks.py --input FOLDER --output FILE',
    'GPEN-BFR-512.pth': f'{_PRETRAINED_SCRIPT} gpen512 (GPEN\'s release, github.com/yangxy/GPEN)',
    'gpen512_d.pth': 'python scripts/convert_gpen.py GPEN-BFR-512-D.pth experiments/pretrained_models/gpen512_d.pth '
                     "(GPEN-BFR-512-D.pth: GPEN's release, github.com/yangxy/GPEN)",
}
# experiment outputs other options files make (a folder name under experiments/ -> the command that writes it)
RUN_OUTPUTS = {'train_UDRL_DRE': 'python panininet/train.py -opt options/train_udrl_dre.yml'}
DATA_SOURCES = {
    'ffhq_1024': 'python scripts/prepare_ffhq.py --root datasets/ffhq --sizes 1024',
    'ffhq_512': 'python scripts/prepare_ffhq.py --root datasets/ffhq --sizes 512',
    'celeba_hq': '100 aligned CelebA-HQ faces (github.com/tkarras/progressive_growing_of_gans), or FFHQ\'s '
                 'validation split: python scripts/prepare_ffhq.py --root datasets/ffhq --category validation '
                 '--limit 100 --sizes 1024, then point the option at datasets/ffhq/ffhq_1024_validation',
    'celeba': 'aligned CelebA faces at 512, or FFHQ\'s validation split: python scripts/prepare_ffhq.py --root '
              'datasets/ffhq --category validation --limit 100 --sizes 512 (datasets/ffhq/ffhq_512_validation)',
    'demo': 'python scripts/make_demo_faces.py',
    'faces': 'a folder of degraded faces (input) and one of their references (reference), same file names',
}
# keys BasicSR's data loader and options parser read from every dataset block
LOADER_KEYS = {'name', 'type', 'phase', 'scale', 'use_shuffle', 'num_worker_per_gpu', 'batch_size_per_gpu',
               'dataset_enlarge_ratio', 'prefetch_mode', 'pin_memory', 'persistent_workers', 'num_prefetch_queue',
               'io_backend', 'meta_info_file', 'dataroot_gt', 'dataroot_lq'}
DATASET_PATH_KEYS = ('meta_info', 'meta_info_file', 'component_path')


class PreflightError(Exception):
    """The options file cannot start a training run. ``str(err)`` is the whole report for the user."""


@dataclass
class Problem:
    """One thing that stops the run.

    Attributes:
        key (str): Dotted option, e.g. 'network_g.decoder_load_path' ('' for the file itself).
        line (int | None): 1-based line of the key in the YAML file.
        text (str): What is wrong.
        hint (str | None): Where to get the file, or what to write instead.
        missing (str | None): Absolute path of the missing file or folder, if that is the problem.
    """
    key: str
    line: int
    text: str
    hint: str = None
    missing: str = None

    def format(self):
        where = f'{self.key} (line {self.line})' if self.line else self.key or 'options'
        hint = f'\n      -> {self.hint}' if self.hint else ''
        return f'  - {where}: {self.text}{hint}'


# ---------------------------------------------------------------------------------------------------------------------
# YAML with line numbers
# ---------------------------------------------------------------------------------------------------------------------
def _key_lines(node, prefix='', out=None):
    """Dotted key -> 1-based line of the key, for every mapping key in a composed YAML node tree."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f'{prefix}{key_node.value}'
            out.setdefault(key, key_node.start_mark.line + 1)
            _key_lines(value_node, key + '.', out)
    return out


def load_options(path):
    """The options of ``path`` and the line of every key.

    Args:
        path (str): YAML options file.

    Returns:
        tuple[dict, dict[str, int]]: (options, dotted key -> 1-based line).

    Raises:
        PreflightError: The file is missing or is not YAML.
    """
    if not osp.isfile(path):
        raise PreflightError(f'Error: options file {path} does not exist.')
    with open(path, encoding='utf-8') as f:
        text = f.read()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        opt = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, 'problem_mark', None)
        where = f' (line {mark.line + 1})' if mark is not None else ''
        raise PreflightError(f'Error: {path}{where} is not valid YAML: {getattr(err, "problem", err)}') from None
    if not isinstance(opt, dict):
        raise PreflightError(f'Error: {path} does not hold an options mapping.')
    return opt, _key_lines(node)


# ---------------------------------------------------------------------------------------------------------------------
# what a class takes
# ---------------------------------------------------------------------------------------------------------------------
def constructor_keys(cls):
    """The keyword arguments ``cls(...)`` takes, or None when it takes any (``**kwargs``)."""
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return None
    return {name for name in params if name != 'self'}


def _is_opt_expr(node):
    """``opt``, ``dataset_opt``, ``self.opt``, ``self.io_backend_opt`` ... (a name that holds the options dict)."""
    if isinstance(node, ast.Name):
        return 'opt' in node.id
    if isinstance(node, ast.Attribute):
        return 'opt' in node.attr
    return False


def _keys_read_in_source(source):
    keys = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and _is_opt_expr(node.value):
            sl = node.slice
            if isinstance(sl, ast.Constant) and isinstance(sl.value, str):
                keys.add(sl.value)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ('get', 'pop')
              and _is_opt_expr(node.func.value) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            keys.add(node.args[0].value)
        elif (isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant)
              and isinstance(node.left.value, str) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops)
              and any(_is_opt_expr(c) for c in node.comparators)):
            keys.add(node.left.value)
    return keys


def dataset_keys(cls):
    """The option keys a dataset class can read: every ``opt[...]`` / ``opt.get(...)`` in its modules.

    A dataset takes one ``opt`` dict, so its signature says nothing; the keys read by the modules of its class
    hierarchy (and, for our datasets, the whole ``panininet.data`` package, whose helpers read options too) stand for
    it. None when no source can be read (nothing is checked then).
    """
    modules = {inspect.getmodule(c) for c in cls.__mro__ if c.__module__.split('.')[0] not in ('builtins', 'torch')}
    if cls.__module__.startswith('panininet.'):
        import pkgutil

        import panininet.data as pkg
        modules |= {sys.modules.get(f'panininet.data.{m.name}') for m in pkgutil.iter_modules(pkg.__path__)}
    keys = set()
    for module in modules:
        try:
            keys |= _keys_read_in_source(inspect.getsource(module))
        except (OSError, TypeError, SyntaxError):
            continue
    return keys or None


# ---------------------------------------------------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------------------------------------------------
class _Checker:

    def __init__(self, opt, lines, root_path, cwd, world_size):
        self.opt, self.lines = opt, lines
        self.root, self.cwd = root_path, cwd
        self.world_size = world_size
        self.problems = []

    def add(self, key, text, hint=None, missing=None):
        self.problems.append(Problem(key, self.line(key), text, hint, missing))

    def line(self, key):
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rpartition('.')[0]
        return None

    # paths ------------------------------------------------------------------------------------------------------
    def from_root(self, path):
        path = osp.expanduser(str(path))
        return path if osp.isabs(path) else osp.normpath(osp.join(self.root, path))

    def from_cwd(self, path):
        path = osp.expanduser(str(path))
        return path if osp.isabs(path) else osp.normpath(osp.join(self.cwd, path))

    def source_of(self, path):
        name = osp.basename(path)
        if name in SOURCES:
            return SOURCES[name]
        parts = osp.normpath(path).split(os.sep)
        if 'experiments' in parts:
            run = parts[parts.index('experiments') + 1] if len(parts) > parts.index('experiments') + 1 else None
            if run in RUN_OUTPUTS:
                return f'{RUN_OUTPUTS[run]} (it writes {name})'
        for part in reversed(parts):
            for stem, how in DATA_SOURCES.items():
                if part == stem or part.startswith(stem + '_'):
                    return how
        return None

    def need_file(self, key, value, base='root'):
        path = self.from_root(value) if base == 'root' else self.from_cwd(value)
        if osp.isdir(path):
            self.add(key, f'{path} is a folder, not a file.')
        elif not osp.isfile(path):
            shown = value if str(value) == path else f'{value} (looked at {path})'
            self.add(key, f'file {shown} not found.', self.source_of(path), missing=path)

    def need_dataroot(self, key, value, backend):
        path = self.from_cwd(value)
        shown = value if str(value) == path else f'{value} (looked at {path}; dataset paths are relative to the ' \
                                                  'working directory)'
        hint = self.source_of(path)
        if backend == 'lmdb':
            if not str(value).endswith('.lmdb'):
                self.add(key, f'{value}: the lmdb backend needs a folder ending in .lmdb.',
                         'make one with basicsr.utils.lmdb_util.make_lmdb_from_imgs, or use io_backend: {type: disk}')
            elif not osp.isfile(osp.join(path, 'data.mdb')) or not osp.isfile(osp.join(path, 'meta_info.txt')):
                self.add(key, f'lmdb {shown} not found (or without data.mdb and meta_info.txt).', hint, path)
            return None
        if not osp.isdir(path):
            self.add(key, f'folder {shown} not found.', hint, path)
            return None
        from panininet.pipeline.image_io import is_image_file
        count = sum(1 for e in os.scandir(path) if e.is_file() and is_image_file(e.name))
        if count == 0:
            self.add(key, f'folder {path} holds no images.', hint)
            return None
        return count

    # sections ---------------------------------------------------------------------------------------------------
    def check_registered(self, key, name, registry, what):
        if name is None:
            self.add(key, f'{what} has no type.')
            return None
        try:
            return registry.get(name)
        except KeyError:
            self.add(key, f'{what} {name!r} is not registered.', 'check the spelling (types are case-sensitive)')
            return None

    def check_kwargs(self, section, block, cls):
        allowed = constructor_keys(cls)
        if allowed is None:
            return
        for k in block:
            if k != 'type' and k not in allowed:
                self.add(f'{section}.{k}', f'{cls.__name__} takes no argument {k!r}.',
                         f'{cls.__name__} takes: {", ".join(sorted(allowed))}')

    def check_model(self):
        from basicsr.utils.registry import MODEL_REGISTRY
        self.check_registered('model_type', self.opt.get('model_type'), MODEL_REGISTRY, 'model_type')
        if not self.opt.get('name'):
            self.add('name', 'the options have no name (the experiment folder is named after it).')

    def check_networks(self):
        from basicsr.utils.registry import ARCH_REGISTRY
        for section, block in self.opt.items():
            if not section.startswith('network_') or not isinstance(block, dict):
                continue
            cls = self.check_registered(f'{section}.type', block.get('type'), ARCH_REGISTRY, 'network')
            if cls is not None:
                self.check_kwargs(section, block, cls)
            for k, v in block.items():
                if k.endswith('_load_path') and v is not None:
                    self.need_file(f'{section}.{k}', v)

    def check_paths(self):
        path_opt = self.opt.get('path') or {}
        for k, v in path_opt.items():
            if k.startswith('pretrain_network_') and v is not None:
                self.need_file(f'path.{k}', v)
        if path_opt.get('resume_state') is not None:
            self.need_file('path.resume_state', path_opt['resume_state'])

    def check_losses(self):
        from basicsr.utils.registry import LOSS_REGISTRY
        train = self.opt.get('train') or {}
        for k, block in train.items():
            if not (isinstance(block, dict) and 'type' in block) or k.startswith(('optim', 'scheduler')):
                continue
            cls = self.check_registered(f'train.{k}.type', block['type'], LOSS_REGISTRY, 'loss')
            if cls is None:
                continue
            self.check_kwargs(f'train.{k}', block, cls)
            for name, v in block.items():
                if name.endswith('_load_path') and v is not None:
                    self.need_file(f'train.{k}.{name}', v)
            if cls.__module__.startswith('basicsr.') and cls.__name__ == 'PerceptualLoss':  # basicsr's own VGG
                self.check_basicsr_vgg(f'train.{k}', block.get('vgg_type', 'vgg19'))

    def check_basicsr_vgg(self, key, vgg_type):
        """basicsr's VGGFeatureExtractor reads torchvision's file from the weights root (compat_gfpgan)."""
        from torchvision.models import vgg as tv_vgg

        from panininet.weights.releases import ENV_WEIGHTS_DIR, weights_root
        weights = getattr(tv_vgg, f'{vgg_type.upper()}_Weights', None)
        if weights is None:
            self.add(f'{key}.vgg_type', f'unknown VGG type {vgg_type!r}.')
            return
        url = weights.IMAGENET1K_V1.url
        path = osp.join(weights_root(), osp.basename(url))
        if not osp.isfile(path):
            self.add(key, f'basicsr\'s perceptual loss reads torchvision {vgg_type} weights from the weights root '
                          f'(${ENV_WEIGHTS_DIR}, else ~/.cache/panininet): {path} not found.',
                     f'{_PRETRAINED_SCRIPT} {vgg_type} --dir {osp.dirname(path)} ({url})', path)

    def check_optimisers(self):
        train = self.opt.get('train')
        if not isinstance(train, dict):
            self.add('train', 'the options have no train section.')
            return
        for k, block in train.items():
            if not k.startswith('optim_') or not isinstance(block, dict):
                continue
            self.check_positive(f'train.{k}.lr', block.get('lr'), 'learning rate')
            for group, gopt in (block.get('param_groups') or {}).items():
                if isinstance(gopt, dict) and 'lr' in gopt:
                    self.check_positive(f'train.{k}.param_groups.{group}.lr', gopt['lr'], 'learning rate')
            betas = block.get('betas')
            if betas is not None and (not isinstance(betas, (list, tuple)) or len(betas) != 2
                                      or not all(_is_number(b) and 0 <= b < 1 for b in betas)):
                self.add(f'train.{k}.betas', f'betas must be two numbers in [0, 1), got {betas!r}.')
            wd = block.get('weight_decay')
            if wd is not None and not (_is_number(wd) and wd >= 0):
                self.add(f'train.{k}.weight_decay', f'weight_decay must be a number >= 0, got {wd!r}.',
                         _float_hint(wd))
        self.check_positive('train.total_iter', train.get('total_iter'), 'iteration count', integer=True)

    def check_positive(self, key, value, what, integer=False):
        ok = _is_number(value) and value > 0 and (not integer or float(value).is_integer())
        if not ok:
            kind = 'a positive integer' if integer else 'a positive number'
            self.add(key, f'the {what} must be {kind}, got {value!r}' + (
                f' ({type(value).__name__})' if isinstance(value, str) else '') + '.', _float_hint(value))

    def check_logger(self):
        logger = self.opt.get('logger') or {}
        for k in ('print_freq', 'save_checkpoint_freq'):
            if k in logger:
                self.check_positive(f'logger.{k}', logger[k], k.replace('_', ' '))
        val = self.opt.get('val')
        if val and 'val_freq' in val:
            self.check_positive('val.val_freq', val['val_freq'], 'validation frequency')

    def check_datasets(self):
        from basicsr.utils.registry import DATASET_REGISTRY
        datasets = self.opt.get('datasets')
        if not isinstance(datasets, dict) or 'train' not in datasets:
            self.add('datasets', 'the options have no datasets.train block.')
            return
        for phase, block in datasets.items():
            if not isinstance(block, dict):
                continue
            section = f'datasets.{phase}'
            cls = self.check_registered(f'{section}.type', block.get('type'), DATASET_REGISTRY, 'dataset')
            if cls is not None:
                known = dataset_keys(cls)
                if known is not None:
                    for k in block:
                        if k not in known and k not in LOADER_KEYS:
                            self.add(f'{section}.{k}', f'{cls.__name__} reads no option {k!r}.',
                                     f'see the docstring of {cls.__module__}.{cls.__name__}')
            backend = (block.get('io_backend') or {}).get('type', 'disk')
            count = None
            for k in ('dataroot_gt', 'dataroot_lq'):
                if block.get(k) is not None:
                    n = self.need_dataroot(f'{section}.{k}', block[k], backend)
                    count = n if count is None else min(count, n or 0)
            for k in DATASET_PATH_KEYS:
                if block.get(k) is not None:
                    self.need_file(f'{section}.{k}', block[k], base='cwd')
            if phase.split('_')[0] == 'train':
                self.check_batch(section, block, count)

    def check_batch(self, section, block, count):
        batch = block.get('batch_size_per_gpu')
        self.check_positive(f'{section}.batch_size_per_gpu', batch, 'batch size', integer=True)
        if not (_is_number(batch) and batch > 0 and float(batch).is_integer()):
            return
        batch, world = int(batch), self.world_size
        self.check_positive(f'{section}.dataset_enlarge_ratio', block.get('dataset_enlarge_ratio', 1),
                            'dataset enlarge ratio', integer=True)
        if block.get('num_worker_per_gpu', 0) is not None and not (
                isinstance(block.get('num_worker_per_gpu', 0), int) and block.get('num_worker_per_gpu', 0) >= 0):
            self.add(f'{section}.num_worker_per_gpu', 'the number of loader workers must be an integer >= 0.')
        ratio = block.get('dataset_enlarge_ratio', 1)
        if count and _is_number(ratio) and count * ratio < batch * world:
            self.add(f'{section}.batch_size_per_gpu',
                     f'{count} images x dataset_enlarge_ratio {ratio} make no full batch of {batch} for each of '
                     f'{world} process(es) (the loader drops incomplete batches: training would never start).',
                     'use more images, a smaller batch, or a larger dataset_enlarge_ratio')
        g = self.opt.get('network_g') or {}
        if g.get('type') == 'MoCo':
            k = g.get('K', 8192)
            if _is_number(k) and k % (batch * world):
                self.add('network_g.K', f'MoCo\'s queue K={k} is not a multiple of the batch of all processes '
                                        f'({batch} x {world} = {batch * world}): keys would wrap around the queue.',
                         f'e.g. batch_size_per_gpu {max(1, batch)} with K a multiple of {batch * world}')
        for section_d, d in self.opt.items():
            if section_d.startswith('network_d') and isinstance(d, dict) and d.get('type') == 'StyleGAN2Discriminator':
                group = min(batch, d.get('stddev_group', 4))
                if group and batch % group:
                    self.add(f'{section}.batch_size_per_gpu',
                             f'a batch of {batch} per process does not divide into the minibatch-stddev groups of '
                             f'{section_d} (stddev_group {d.get("stddev_group", 4)}: groups of {group}).',
                             f'a batch size per process that is a multiple of {group}, or at most '
                             f'{d.get("stddev_group", 4)}')

    def check_outputs(self):
        logger = self.opt.get('logger') or {}
        places = ['experiments']
        if logger.get('use_tb_logger'):
            places.append('tb_logger')
        for place in places:
            path = osp.join(self.root, place)
            existing = path
            while not osp.exists(existing):
                existing = osp.dirname(existing)
            if not os.access(existing, os.W_OK | os.X_OK):
                self.add('', f'{path} cannot be created or written (no write permission on {existing}).',
                         'run from a copy of the repository you can write to')

    def run(self):
        self.check_model()
        self.check_datasets()
        self.check_networks()
        self.check_paths()
        self.check_losses()
        self.check_optimisers()
        self.check_logger()
        self.check_outputs()
        return self.problems


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _float_hint(value):
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return None
        return f'write !!float {value} (YAML 1.1 reads {value} as a string)'
    return None


def check_options(opt_path, root_path, cwd=None, world_size=1):
    """Every problem of the options file ``opt_path`` that would stop a training run.

    Args:
        opt_path (str): YAML options file.
        root_path (str): Root of the run (experiments/, tb_logger/ and pre-trained paths are relative to it).
        cwd (str | None): Working directory (dataset paths are relative to it). Default: ``os.getcwd()``.
        world_size (int): Number of training processes. Default: 1.

    Returns:
        list[Problem]: Empty when the run can start.

    Raises:
        PreflightError: The file is missing or is not YAML.
    """
    opt, lines = load_options(opt_path)
    return _Checker(opt, lines, osp.abspath(root_path), osp.abspath(cwd or os.getcwd()), world_size).run()


def report(opt_path, problems):
    """The one message for the user: an ``Error:`` line, then one entry per problem."""
    n = len(problems)
    head = (f'Error: {opt_path} cannot start training: {n} problem{"s" if n > 1 else ""} '
            '(nothing was created):')
    return '\n'.join([head] + [p.format() for p in problems])


def _argv_value(argv, flag, default=None):
    if flag in argv[:-1]:
        return argv[argv.index(flag) + 1]
    for a in argv:
        if a.startswith(flag + '='):
            return a.split('=', 1)[1]
    return default


def world_size_from_argv(argv, environ=None):
    """Processes of the run: ``WORLD_SIZE`` under ``--launcher pytorch|slurm`` (torchrun sets it), else 1."""
    environ = os.environ if environ is None else environ
    if _argv_value(argv, '--launcher', 'none') == 'none':
        return 1
    try:
        return max(1, int(environ.get('WORLD_SIZE') or environ.get('SLURM_NTASKS') or 1))
    except ValueError:
        return 1


def check_training_options(argv, root_path):
    """The preflight of ``train.py``'s command line; raises with the whole report when the run cannot start.

    Only rank 0 needs to say it, but every rank checks (each would fail alike), so all exit before any folder.

    Args:
        argv (list[str]): ``sys.argv[1:]`` of ``train.py`` (``-opt FILE``, ``--launcher``).
        root_path (str): Root of the run.

    Raises:
        PreflightError: With :func:`report`'s message.
    """
    opt_path = _argv_value(argv, '-opt')
    if opt_path is None:
        return  # basicsr's argparse says what is missing
    if '--force_yml' in argv:
        return  # the options change on the command line: basicsr checks as it goes
    problems = check_options(opt_path, root_path, world_size=world_size_from_argv(argv))
    if problems:
        raise PreflightError(report(opt_path, problems))
