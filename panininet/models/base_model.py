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
"""
import os
import os.path as osp
from collections import OrderedDict

import torch
from basicsr.models.base_model import BaseModel
from basicsr.utils import get_root_logger
from torch.nn.parallel import DistributedDataParallel

from panininet.atomic import torch_save_atomic
from panininet.resume import gather_rng_states
from panininet.weights.checkpoint import load_checkpoint_file, pick_params, strip_prefix


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
        load_path = self.resolve_path(load_path)
        if not osp.isfile(load_path):
            raise FileNotFoundError(f'Checkpoint {load_path!r}{where} does not exist. Fix the path in the options '
                                    'file (relative paths are relative to the repository root).')
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
        torch_save_atomic(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth'))

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
        state.update(self.extra_training_state())
        torch_save_atomic(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def dist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """Validation runs on rank 0 only (as basicsr's SRModel)."""
        if self.opt['rank'] == 0:
            self.nondist_validation(dataloader, current_iter, tb_logger, save_img)
