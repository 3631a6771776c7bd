"""Base class of the panininet training models: what basicsr's ``BaseModel`` needs to train on a CPU, under
``torch.distributed`` without CUDA, and to resume exactly.

Differences from ``basicsr.models.base_model.BaseModel``:

* :meth:`model_to_device` wraps in ``DistributedDataParallel`` without ``device_ids`` on CPU (basicsr always
  passes ``torch.cuda.current_device()``). The process group itself is created by
  ``panininet.platform.compat_basicsr.init_dist``.
* :meth:`load_network` reads through :func:`panininet.weights.checkpoint.load_checkpoint_file` (``weights_only=True``)
  and fails with a message naming the option and the file.
* :meth:`save_network` and :meth:`save_training_state` write atomically (temporary file + ``os.replace``), and the
  training state also holds the RNG states of every rank, which :mod:`panininet.resume` restores on resume.
* :meth:`resolve_path`: relative paths in the options are relative to ``root_path`` (the repository root).
* :meth:`lq_on_device`: the realworld preset's second-order degradation of a batch on the model's device, for
  datasets with ``degrade_in_model`` (as BasicSR's ``RealESRGANModel.feed_data``).
* Progress (:mod:`panininet.progress`): the time left at every validation and checkpoint, and
  ``models/progress.png`` (losses and validation metrics; with matplotlib); its history is in the training state.
"""
import os
import os.path as osp
import time
from collections import OrderedDict

import torch
from basicsr.models.base_model import BaseModel
from basicsr.utils import get_root_logger
from torch.nn.parallel import DistributedDataParallel

from panininet.atomic import save_checkpoint_file, torch_save_atomic
from panininet.progress import TrainingProgress
from panininet.resume import gather_rng_states
from panininet.weights.checkpoint import (
    checkpoint_format,
    load_checkpoint_file,
    pick_params,
    strip_prefix,
)


class PaniniBaseModel(BaseModel):
    """``BaseModel`` with CPU distributed training, safe loading and exact-resume training states."""

    def resolve_path(self, path):
        """Absolute path of an option path: relative paths are taken from ``opt['root_path']``.

        Args:
            path (str | None): Path from the options.

        Returns:
            str | None: Absolute path (None stays None).
        """
        if path is None:
            return None
        path = osp.expanduser(path)
        if osp.isabs(path):
            return path
        return osp.join(self.opt.get('root_path') or os.getcwd(), path)

    def locate_weights(self, path, option):
        """A weights file the options name: its path (relative: to ``root_path``, then the working directory, as
        basicsr reads it), then its name in the panininet weights folder
        (:func:`panininet.weights.releases.locate_weights_file`).

        Args:
            path (str): Path from the options.
            option (str): The option's dotted name, for the message.

        Returns:
            str: Absolute path of an existing file.

        Raises:
            FileNotFoundError: One line naming the option, the places looked at and the file's URL when known.
        """
        from panininet.weights.releases import locate_weights_file

        return locate_weights_file(path, option or 'a weights path', self.opt.get('root_path'))

    @torch.no_grad()
    def lq_on_device(self, data):
        """``data`` with ``lq`` made here when the dataset left it to the model (``degrade_in_model``).

        Args:
            data (dict): A batch. With ``lq_source`` (b, 3, h, w) RGB in [0, 1] and the realworld ``params`` (and
                optional ``lq_mean`` / ``lq_std`` (b, 3)) and no ``lq``, the LQ is
                :func:`panininet.data.realworld_degradation.degrade_batch` of it on ``self.device``, normalised.

        Returns:
            dict: ``data`` itself when it has ``lq`` (or no ``lq_source``), else a copy with ``lq``
            (b, 3, h // s, w // s) on ``self.device``.
        """
        if 'lq' in data or 'lq_source' not in data:
            return data
        from basicsr.utils import DiffJPEG

        from panininet.data.realworld_degradation import degrade_batch
        if getattr(self, '_jpeger', None) is None:
            self._jpeger = DiffJPEG(differentiable=False).to(self.device)
        lq = degrade_batch(data['lq_source'].to(self.device), data['params'], self._jpeger)
        if 'lq_mean' in data:
            lq = (lq - data['lq_mean'].to(lq)[:, :, None, None]) / data['lq_std'].to(lq)[:, :, None, None]
        return dict(data, lq=lq.contiguous())

    def model_to_device(self, net, find_unused_parameters=None):
        """Move ``net`` to the model device; wrap it in DDP when distributed (also on CPU, gloo).

        Args:
            net (nn.Module): Network.
            find_unused_parameters (bool | None): DDP flag; None reads ``opt['find_unused_parameters']``.

        Returns:
            nn.Module: The network, possibly wrapped.
        """
        net = net.to(self.device)
        if self.opt['dist'] and any(p.requires_grad for p in net.parameters()):
            if find_unused_parameters is None:
                find_unused_parameters = self.opt.get('find_unused_parameters', False)
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            net = DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused_parameters)
        elif self.opt['num_gpu'] > 1:
            net = torch.nn.DataParallel(net)
        return net

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        """'Adam' (basicsr), 'AdamW' or 'SGD' (the official MoCo run).

        Args:
            optim_type (str): Optimiser name.
            params (iterable): Parameters.
            lr (float): Learning rate.
            **kwargs: Passed to the torch optimiser.

        Returns:
            torch.optim.Optimizer: The optimiser.
        """
        if optim_type in ('Adam', 'AdamW', 'SGD'):
            return getattr(torch.optim, optim_type)(params, lr, **kwargs)
        raise NotImplementedError(f"Optimiser {optim_type!r} is not supported; use 'Adam', 'AdamW' or 'SGD'.")

    def load_network(self, net, load_path, strict=True, param_key='params', option=None):
        """Load ``param_key`` of a BasicSR checkpoint into ``net`` (``weights_only=True``).

        Args:
            net (nn.Module): Network (may be wrapped).
            load_path (str): Checkpoint file; relative to ``root_path`` if relative.
            strict (bool): Strict ``load_state_dict``. Default: True.
            param_key (str | None): Key holding the state dict ('params' is used when the key is absent);
                None for a bare state dict. Default: 'params'.
            option (str | None): Option that named the file, for error messages.
        """
        logger = get_root_logger()
        where = f' ({option})' if option else ''
        load_path = self.locate_weights(load_path, option)
        try:
            load_net = load_checkpoint_file(load_path)
        except Exception as e:
            raise RuntimeError(f'Cannot read checkpoint {load_path!r}{where}: {e}') from e
        if param_key is not None and param_key not in load_net and 'params' in load_net:
            logger.info(f'Loading: {param_key} does not exist in {load_path}, use params.')
            param_key = 'params'
        try:
            load_net = pick_params(load_net, f'Checkpoint {load_path!r}{where}',
                                   keys=(param_key, ) if param_key else (), allow_bare=param_key is None)
        except ValueError as e:
            raise KeyError(f'{e} (expected a BasicSR checkpoint {{"{param_key}": state_dict}})') from None
        net = self.get_bare_model(net)
        logger.info(f'Loading {net.__class__.__name__} from {load_path}{where}, with param key: [{param_key}].')
        self._print_different_keys_loading(net, load_net, strict)
        net.load_state_dict(load_net, strict=strict)

    def save_network(self, net, net_label, current_iter, param_key='params', extra=None):
        """Save networks as ``{param_key: state_dict}`` in ``models/{net_label}_{iter}.pth`` (rank 0, atomic).

        With ``logger.save_checkpoint_format: safetensors`` in the options the file is
        ``models/{net_label}_{iter}.safetensors`` (:func:`panininet.atomic.save_checkpoint_file`: the
        ``params_ema`` state dict, else ``params``, under its own key names, the others prefixed, ``arch`` in the
        metadata); resuming finds it in place of the ``.pth`` basicsr names.

        Args:
            net (nn.Module | list[nn.Module]): Network(s).
            net_label (str): File prefix, e.g. 'net_g'.
            current_iter (int): Iteration; -1 writes ``*_latest.pth``.
            param_key (str | list[str]): Key(s) in the file. Default: 'params'.
            extra (dict | None): More entries for the file (plain Python values). Default: None.
        """
        if self.opt['rank'] != 0:
            return
        current_iter = 'latest' if current_iter == -1 else current_iter
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError('save_network: as many param keys as networks are needed.')
        save_dict = {}
        for net_, key in zip(nets, keys):
            state = self.get_bare_model(net_).state_dict()
            save_dict[key] = strip_prefix(OrderedDict((k, v.cpu()) for k, v in state.items()), 'module.')
        save_dict.update(extra or {})
        file_format = checkpoint_format('', self.opt.get('logger', {}).get('save_checkpoint_format', 'pth'))
        ext = '.safetensors' if file_format == 'safetensors' else '.pth'
        save_checkpoint_file(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{current_iter}{ext}'),
                             file_format)

    # progress (panininet.progress) ---------------------------------------------------------------------------------
    @property
    def progress(self):
        """The run's :class:`~panininet.progress.TrainingProgress` (made on first use)."""
        if getattr(self, '_progress', None) is None:
            val = self.opt.get('val') or {}
            self._progress = TrainingProgress(int(self.opt['train']['total_iter']), val.get('val_freq'))
        return self._progress

    def update_learning_rate(self, current_iter, warmup_iter=-1):
        """BasicSR's schedule step; also times the iteration before (basicsr calls it once per iteration)."""
        super().update_learning_rate(current_iter, warmup_iter)
        self.progress.tick(current_iter)

    def get_current_log(self):
        """BasicSR's log dict (called at every ``print_freq``); its losses also go to the progress history."""
        log = super().get_current_log()
        self.progress.record_losses(self.progress.current_iter, log)
        return log

    def validation(self, dataloader, current_iter, tb_logger, save_img=False):
        """BasicSR's validation, timed; its metrics go to the progress history, then the progress is reported."""
        start = time.perf_counter()
        super().validation(dataloader, current_iter, tb_logger, save_img)
        if self.opt['rank'] == 0:
            self.progress.record_validation(current_iter, dataloader.dataset.opt['name'],
                                            getattr(self, 'metric_results', None), time.perf_counter() - start)
            self.report_progress(current_iter)

    def report_progress(self, current_iter):
        """Rewrite ``models/progress.png`` (needs matplotlib) and log the progress line once per iteration (rank 0)."""
        if self.opt['rank'] != 0 or not self.opt.get('is_train', True):
            return
        path = osp.join(self.opt['path']['models'], 'progress.png')
        # -1: basicsr's final save; past total_iter: its final validation
        current_iter = self.progress.current_iter if current_iter == -1 else min(current_iter,
                                                                                 self.progress.total_iter)
        title = f"{self.opt['name']}: iter {current_iter}/{self.progress.total_iter}"
        if not self.progress.plot(path, title):
            if not getattr(self, '_told_no_plot', False):
                get_root_logger().info('Progress plot off: it needs matplotlib (pip install -e ".[metrics]").')
                self._told_no_plot = True
            path = None
        if getattr(self, '_reported_iter', None) != current_iter:  # a checkpoint and a validation at one iteration
            get_root_logger().info(self.progress.summary(current_iter, path))
            self._reported_iter = current_iter

    def resume_training(self, resume_state):
        """BasicSR's optimiser and scheduler states, and the progress history up to the resumed iteration."""
        super().resume_training(resume_state)
        self.progress.load_state_dict(resume_state.get('progress'), resume_state['iter'])

    def extra_training_state(self):
        """Extra entries for the ``*.state`` file (subclasses). Default: none.

        Returns:
            dict: Must hold only tensors, numbers, strings, lists, tuples and dicts (``weights_only`` loading).
        """
        return {}

    def save_training_state(self, epoch, current_iter):
        """Write ``training_states/{iter}.state``: epoch, iteration, optimisers, schedulers, RNG states of every rank.

        Called on every rank (it gathers the RNG states); only rank 0 writes.

        Args:
            epoch (int): Current epoch.
            current_iter (int): Current iteration; -1 writes nothing.
        """
        if current_iter == -1:
            self.report_progress(current_iter)  # the end of the run (basicsr's final save)
            return
        rng = gather_rng_states()
        if self.opt['rank'] != 0:
            return
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
            'rng': rng,
        }
        state['progress'] = self.progress.state_dict()
        state.update(self.extra_training_state())
        torch_save_atomic(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))
        self.report_progress(current_iter)

    def dist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """Validation runs on rank 0 only (as basicsr's SRModel)."""
        if self.opt['rank'] == 0:
            self.nondist_validation(dataloader, current_iter, tb_logger, save_img)
