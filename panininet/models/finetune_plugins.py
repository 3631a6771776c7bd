"""Plug-ins for fine-tuning a GAN-prior restorer, shared by :class:`~panininet.models.panini_model.PaniniModel` and
:class:`~panininet.models.mmrb_model.MMRBModel` (MMRB-Net, Hu et al., Sec. III-C/D and IV-B):

* **FreezeD** (Mo et al., used in Sec. III-C / IV-B): the first ``train.freeze_d_layers`` convolution layers of
  the global discriminator are frozen. Layers are counted in the order the discriminator applies them, every
  convolution once (BasicSR's StyleGAN2 ``ConvLayer`` with its bias and activation, or a bare ``Conv2d``): for
  BasicSR's ``StyleGAN2Discriminator`` five are the RGB 1x1 layer, the first residual block's two 3x3 convolutions
  and its 1x1 skip, and the second block's first 3x3 convolution. Frozen parameters are left out of the optimiser
  and out of DDP (``requires_grad=False`` before wrapping), so they stay bit-identical.
* **Local discriminators** (eq. 12): ``network_d_left_eye``, ``network_d_right_eye``, ``network_d_mouth``
  (GFP-GAN's option names; the paper uses the same network for the three, which a YAML anchor expresses), each
  seeing its component cropped with ``torchvision.ops.roi_align`` at the boxes the dataset gives
  (``crop_components: true``; :mod:`panininet.data.face_components`) and resized to ``train.component_crop_size``.
  Generator term ``train.gan_component_opt`` (lambda_l = 3 in the paper) per component, summed as eq. 12;
  discriminators trained with the same loss on real/fake crops, optimiser ``train.optim_component`` (2e-3).
* **Identity loss** (eq. 15): ``train.identity_opt`` (:class:`panininet.models.losses.ArcFaceIdentityLoss`, lambda_FP =
  10).
* **Per-part learning rates** (Sec. IV-B): ``train.optim_g.param_groups: {part: {lr: ...}}`` for a generator
  with a ``param_groups()`` method (``MMRBNet``: codec, prior, noise).

A model uses them through :class:`GANPriorPlugins` (a mixin of hooks its ``init_training_settings``,
``setup_optimizers``, ``optimize_parameters`` and ``save`` call); every plug-in is off unless its options are set.
"""
import torch
from basicsr.archs import build_network
from basicsr.archs.stylegan2_arch import ConvLayer, EqualConv2d
from basicsr.losses import build_loss
from basicsr.utils import get_root_logger
from torch import nn

import panininet.models.losses  # noqa: F401  (registers ArcFaceIdentityLoss)
from panininet.data.face_components import COMPONENTS


# ---------------------------------------------------------------------------------------------------------------------
# FreezeD
# ---------------------------------------------------------------------------------------------------------------------
def conv_layers(net):
    """The convolution layers of ``net`` in registration (= application, for StyleGAN2 discriminators) order.

    A BasicSR ``ConvLayer`` counts once with everything inside it (blur, convolution, bias, activation); a
    ``Conv2d`` / ``EqualConv2d`` outside a ``ConvLayer`` counts once.

    Args:
        net (nn.Module): A network (not DDP-wrapped).

    Returns:
        list[tuple[str, nn.Module]]: (name, layer) pairs.
    """
    layers, inside = [], []
    for name, module in net.named_modules():
        if any(name.startswith(prefix + '.') for prefix in inside):
            continue
        if isinstance(module, (ConvLayer, nn.Conv2d, EqualConv2d)):
            layers.append((name, module))
            inside.append(name)
    return layers


def freeze_conv_layers(net, num_layers):
    """FreezeD: set ``requires_grad=False`` on the first ``num_layers`` convolution layers of ``net``.

    Args:
        net (nn.Module): The global discriminator, before it is wrapped in DDP.
        num_layers (int): How many layers (:func:`conv_layers`) to freeze; 0 freezes nothing.

    Returns:
        list[str]: Names of the frozen parameters (as in ``net.named_parameters()``).
    """
    layers = conv_layers(net)
    if not 0 <= num_layers <= len(layers):
        raise ValueError(f'freeze_d_layers={num_layers}: the discriminator has {len(layers)} convolution layers.')
    frozen = []
    for name, layer in layers[:num_layers]:
        for pname, param in layer.named_parameters():
            param.requires_grad_(False)
            frozen.append(f'{name}.{pname}')
    return frozen


# ---------------------------------------------------------------------------------------------------------------------
# local discriminators
# ---------------------------------------------------------------------------------------------------------------------
def crop_components(images, boxes, sizes):
    """ROI-align crops of each component.

    Args:
        images (Tensor): (b, 3, h, w).
        boxes (dict[str, Tensor]): part -> (b, 4) ``[x1, y1, x2, y2]`` in continuous pixel coordinates of ``images``.
        sizes (dict[str, int]): part -> crop side.

    Returns:
        dict[str, Tensor]: part -> (b, 3, size, size).
    """
    from torchvision.ops import roi_align

    index = torch.arange(images.shape[0], device=images.device, dtype=images.dtype)[:, None]
    return {part: roi_align(images, torch.cat([index, boxes[part].to(images)], 1), output_size=int(sizes[part]),
                            spatial_scale=1.0, sampling_ratio=2, aligned=True) for part in boxes}


def generator_param_groups(net, optim_opt):
    """Trainable generator parameters, in per-part groups when ``optim_opt['param_groups']`` asks for them.

    Args:
        net (nn.Module): The generator (bare, not DDP-wrapped).
        optim_opt (dict): ``train.optim_g`` without ``type``; ``param_groups`` (popped): part -> dict of optimiser
            settings (``lr``, ...) for ``net.param_groups()[part]``.

    Returns:
        list[dict] | list[nn.Parameter]: Groups for a torch optimiser (frozen parameters left out).
    """
    parts_opt = optim_opt.pop('param_groups', None)
    trainable = [p for p in net.parameters() if p.requires_grad]
    if not parts_opt:
        return trainable
    if not hasattr(net, 'param_groups'):
        raise ValueError(f'train.optim_g.param_groups is set but {type(net).__name__} has no param_groups() '
                         'method naming its parts.')
    parts = net.param_groups()
    unknown = sorted(set(parts_opt) - set(parts))
    if unknown:
        raise ValueError(f'train.optim_g.param_groups: unknown part(s) {unknown}; {type(net).__name__} has '
                         f'{sorted(parts)}.')
    seen, groups = set(), []
    for part, params in parts.items():
        params = [p for p in params if p.requires_grad]
        if any(id(p) in seen for p in params):
            raise ValueError(f'{type(net).__name__}.param_groups(): part {part!r} shares parameters with another.')
        seen.update(id(p) for p in params)
        groups.append({'params': params, 'name': part, **dict(parts_opt.get(part) or {})})
    rest = [p for p in trainable if id(p) not in seen]
    if rest:
        raise ValueError(f'{type(net).__name__}.param_groups() misses {len(rest)} trainable parameters.')
    get_root_logger().info('Generator learning rates: ' + ', '.join(
        f'{g["name"]} {g.get("lr", optim_opt.get("lr"))} ({sum(p.numel() for p in g["params"])} params)'
        for g in groups))
    return groups


class GANPriorPlugins:
    """Mixin for a GAN fine-tuning model with ``net_g``, ``net_d``, ``self.lq`` / ``self.gt``: FreezeD, local
    discriminators and the identity loss (see the module docstring). The host is a
    :class:`~panininet.models.base_model.PaniniBaseModel` (``model_to_device``, ``load_network``, ``save_network``,
    ``get_optimizer``, ``resolve_path``) with ``_network_opt(key)`` (the network options with checked load paths,
    as :class:`~panininet.models.panini_model.PaniniModel`'s). Call, in this order:

    * :meth:`build_global_discriminator` in ``init_training_settings`` (instead of building ``net_d`` directly),
      then :meth:`init_plugins`;
    * :meth:`plugin_optimizers` at the end of ``setup_optimizers`` (appends the local discriminators' optimiser);
    * :meth:`feed_components` in ``feed_data``;
    * :meth:`set_d_requires_grad` where the global D is switched on/off, :meth:`plugin_g_losses` in the generator
      step and :meth:`plugin_d_step` after the global discriminator's step;
    * :meth:`save_plugins` in ``save``.
    """

    def build_global_discriminator(self, key='network_d'):
        """``opt[key]`` built, FreezeD applied (``train.freeze_d_layers``), then moved/wrapped for the device."""
        net_d = build_network(self._network_opt(key))
        n = int(self.opt['train'].get('freeze_d_layers') or 0)
        self.d_frozen = freeze_conv_layers(net_d, n)
        if n:
            get_root_logger().info(f'FreezeD: the first {n} convolution layers of the discriminator are frozen '
                                   f'({len(self.d_frozen)} tensors).')
        return self.model_to_device(net_d)

    def init_plugins(self):
        """Local discriminators (with their losses and pre-trained weights) and the identity loss from the options."""
        train_opt = self.opt['train']
        given = [part for part in COMPONENTS if f'network_d_{part}' in self.opt]
        if given and len(given) != len(COMPONENTS):
            raise ValueError(f'Local discriminators: give all of network_d_left_eye, network_d_right_eye, '
                             f'network_d_mouth (got only {given}).')
        self.use_components = bool(given)
        self.net_d_components = {}
        if self.use_components:
            if train_opt.get('gan_component_opt') is None:
                raise ValueError('train.gan_component_opt is required with local discriminators (the paper: '
                                 'cross-entropy, lambda_l = 3).')
            self.cri_component = build_loss(train_opt['gan_component_opt']).to(self.device)
            sizes = train_opt.get('component_crop_size') or {}
            missing = [part for part in COMPONENTS if part not in sizes]
            if missing:
                raise ValueError(f'train.component_crop_size needs a crop side for {missing}.')
            self.component_crop_size = {part: int(sizes[part]) for part in COMPONENTS}
            for part in COMPONENTS:
                net = self.model_to_device(build_network(self.opt[f'network_d_{part}']))
                load_path = self.opt['path'].get(f'pretrain_network_d_{part}')
                if load_path is not None:
                    self.load_network(net, load_path, True, 'params', option=f'path.pretrain_network_d_{part}')
                net.train()
                self.net_d_components[part] = net
                setattr(self, f'net_d_{part}', net)
        identity_opt = train_opt.get('identity_opt')
        self.cri_identity = None
        if identity_opt:
            identity_opt = dict(identity_opt)
            identity_opt['arcface_load_path'] = self.resolve_path(identity_opt.get('arcface_load_path'))
            try:
                self.cri_identity = build_loss(identity_opt).to(self.device)
            except (FileNotFoundError, ValueError, KeyError) as e:
                raise type(e)(f'train.identity_opt: {e}') from e

    def plugin_optimizers(self):
        """Append the local discriminators' optimiser (``train.optim_component``) to ``self.optimizers``."""
        if not self.use_components:
            return
        optim = dict(self.opt['train']['optim_component'])
        params = [p for part in COMPONENTS for p in self.net_d_components[part].parameters()]
        self.optimizer_component = self.get_optimizer(optim.pop('type'), params, **optim)
        self.optimizers.append(self.optimizer_component)

    def feed_components(self, data):
        """Keep the component boxes ``loc_<part>`` (b, 4) of a batch (validation batches need none)."""
        if getattr(self, 'use_components', False):
            have = all(f'loc_{part}' in data for part in COMPONENTS)
            self.component_boxes = {part: data[f'loc_{part}'].to(self.device) for part in COMPONENTS} if have else None

    def _boxes(self):
        if self.component_boxes is None:
            raise KeyError('Local discriminators need the batch entries loc_left_eye, loc_right_eye, loc_mouth: set '
                           'crop_components: true (and component_path for non-aligned data) in the training dataset '
                           'options.')
        return self.component_boxes

    def set_d_requires_grad(self, flag):
        """Switch gradients of the discriminators (global and local) on/off; FreezeD's layers always stay off."""
        frozen = set(self.d_frozen)
        for name, param in self.get_bare_model(self.net_d).named_parameters():
            param.requires_grad = flag and name not in frozen
        for net in self.net_d_components.values():
            net.requires_grad_(flag)

    def plugin_g_losses(self, output, loss_dict):
        """Generator terms of the plug-ins: local adversarial (eq. 12, one per component) and identity (eq. 15).

        Args:
            output (Tensor): The generator's images (b, 3, h, w).
            loss_dict (OrderedDict): Logged losses (entries added).

        Returns:
            Tensor | int: Their sum (0 when no plug-in is on).
        """
        total = 0
        if self.use_components:
            crops = crop_components(output, self._boxes(), self.component_crop_size)
            for part in COMPONENTS:
                loss = self.cri_component(self.net_d_components[part](crops[part]), True, is_disc=False)
                loss_dict[f'l_g_gan_{part}'] = loss
                total = total + loss
        if self.cri_identity is not None:
            loss = self.cri_identity(output, self.gt)
            loss_dict['l_g_identity'] = loss
            total = total + loss
        return total

    def plugin_d_step(self, output, loss_dict):
        """One step of the local discriminators on real (GT) and fake (detached output) crops."""
        if not self.use_components:
            return
        self.optimizer_component.zero_grad()
        real = crop_components(self.gt, self._boxes(), self.component_crop_size)
        fake = crop_components(output.detach(), self.component_boxes, self.component_crop_size)
        total = 0
        for part in COMPONENTS:
            net = self.net_d_components[part]
            l_real = self.cri_component(net(real[part]), True, is_disc=True)
            l_fake = self.cri_component(net(fake[part]), False, is_disc=True)
            loss_dict[f'l_d_{part}'] = l_real + l_fake
            total = total + l_real + l_fake
        total.backward()
        self.optimizer_component.step()

    def save_plugins(self, current_iter):
        """``net_d_<part>_{iter}.pth`` for every local discriminator (what basicsr's resume looks for)."""
        for part, net in self.net_d_components.items():
            self.save_network(net, f'net_d_{part}', current_iter)
