"""Panini-Net fine-tuning (paper "Training and Loss"): L1 + VGG perceptual + vanilla GAN against the pre-trained
StyleGAN2 discriminator, with the degradation representation encoder (DRE) frozen.

Options (see ``options/train_panini_mfr.yml`` for the paper settings):

* ``network_g``: ``PaniniNet`` (the arch loads the StyleGAN2 decoder and the DRE from ``decoder_load_path`` /
  ``dre_load_path`` and freezes the DRE with ``fix_dre: true``); ``network_d``: basicsr ``StyleGAN2Discriminator``.
* ``path.pretrain_network_d``: BasicSR StyleGAN2 discriminator checkpoint (``params``), the paper's pre-trained D.
* ``train``: ``pixel_opt`` (L1), ``perceptual_opt`` (:class:`panininet.models.losses.VGGPerceptualLoss`), ``gan_opt``
  (basicsr ``GANLoss``, vanilla), ``optim_g`` / ``optim_d`` (Adam), ``scheduler``, ``ema_decay``,
  ``net_d_iters`` / ``net_d_init_iters``, ``r1_reg_weight`` (0 = off, as official) and ``net_d_reg_every``.
* ``val``: ``metrics`` (basicsr ``psnr`` / ``ssim`` on uint8 images), ``save_img``.
* Plug-ins of :mod:`panininet.models.finetune_plugins` (all off unless set): ``train.freeze_d_layers`` (FreezeD),
  ``network_d_left_eye`` / ``network_d_right_eye`` / ``network_d_mouth`` with ``train.gan_component_opt``,
  ``train.component_crop_size``, ``train.optim_component`` (local discriminators; the dataset needs
  ``crop_components: true``), ``train.identity_opt`` (ArcFace identity loss), ``train.optim_g.param_groups``.

Images are RGB in [-1, 1] everywhere (datasets with ``mean: [0.5, 0.5, 0.5]``, ``std: [0.5, 0.5, 0.5]``).
"""
from collections import OrderedDict
from os import path as osp

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.losses.gan_loss import r1_penalty
from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import MODEL_REGISTRY

import panininet.models.losses  # noqa: F401  (registers VGGPerceptualLoss)
from panininet.models.base_model import PaniniBaseModel
from panininet.models.finetune_plugins import GANPriorPlugins, generator_param_groups


@MODEL_REGISTRY.register()
class PaniniModel(GANPriorPlugins, PaniniBaseModel):
    """Fine-tunes ``PaniniNet`` (``net_g``) against a StyleGAN2 discriminator (``net_d``); EMA copy ``net_g_ema``.

    Checkpoints: ``net_g_{iter}.pth`` with ``params``, ``params_ema`` and ``arch`` (PaniniNet kwargs),
    ``net_d_{iter}.pth`` with ``params``.

    Args:
        opt (dict): Parsed BasicSR options.
    """

    def __init__(self, opt):
        super().__init__(opt)
        self.net_g = self.model_to_device(build_network(self._network_opt('network_g')))
        self.print_network(self.net_g)
        load_path = self.opt['path'].get('pretrain_network_g')
        if load_path is not None:
            param_key = self.opt['path'].get('param_key_g', 'params')
            self.load_network(self.net_g, load_path, self.opt['path'].get('strict_load_g', True), param_key,
                              option='path.pretrain_network_g')
        if self.is_train:
            self.init_training_settings()

    def init_training_settings(self):
        train_opt = self.opt['train']
        logger = get_root_logger()

        # EMA of the generator; on resume ``pretrain_network_g`` is the resumed checkpoint (basicsr check_resume)
        self.ema_decay = train_opt.get('ema_decay', 0)
        if self.ema_decay > 0:
            self.net_g_ema = build_network(self._network_opt('network_g')).to(self.device)
            load_path = self.opt['path'].get('pretrain_network_g')
            if load_path is not None:
                self.load_network(self.net_g_ema, load_path, self.opt['path'].get('strict_load_g', True),
                                  'params_ema', option='path.pretrain_network_g')
            else:
                self.model_ema(0)  # copy net_g
            self.net_g_ema.eval()
            self.net_g_ema.requires_grad_(False)

        self.net_d = self.build_global_discriminator('network_d')  # FreezeD applied (gan_prior)
        self.print_network(self.net_d)
        load_path = self.opt['path'].get('pretrain_network_d')
        if load_path is not None:
            self.load_network(self.net_d, load_path, self.opt['path'].get('strict_load_d', True),
                              self.opt['path'].get('param_key_d', 'params'), option='path.pretrain_network_d')
        else:
            logger.warning('path.pretrain_network_d is not set: the discriminator starts from random weights '
                           '(the paper fine-tunes the pre-trained StyleGAN2 discriminator).')

        self.net_g.train()
        self.net_d.train()

        # losses, in the order of the paper: L1, perceptual, adversarial
        self.cri_pix = build_loss(train_opt['pixel_opt']).to(self.device) if train_opt.get('pixel_opt') else None
        self.cri_perceptual = self._build_perceptual(train_opt.get('perceptual_opt'))
        if train_opt.get('gan_opt') is None:
            raise ValueError('train.gan_opt is required (PaniniModel trains adversarially; the paper uses vanilla).')
        self.cri_gan = build_loss(train_opt['gan_opt']).to(self.device)
        if self.cri_pix is None and self.cri_perceptual is None:
            raise ValueError('Both pixel and perceptual losses are None.')
        self.init_plugins()  # local discriminators, identity loss (gan_prior)

        self.net_d_iters = train_opt.get('net_d_iters', 1)
        self.net_d_init_iters = train_opt.get('net_d_init_iters', 0)
        self.r1_reg_weight = train_opt.get('r1_reg_weight', 0)
        self.net_d_reg_every = train_opt.get('net_d_reg_every', 16)

        self.setup_optimizers()
        self.setup_schedulers()

    def model_ema(self, decay=0.999):
        """EMA of the trained generator parameters; frozen ones (the DRE) and buffers (CBAM BatchNorm statistics,
        fixed noise) are copied, so that they stay bit-identical (``0.999 x + 0.001 x`` is not ``x`` in floats).
        """
        net_g = self.get_bare_model(self.net_g)
        ema_params = dict(self.net_g_ema.named_parameters())
        for name, param in net_g.named_parameters():
            if param.requires_grad:
                ema_params[name].data.mul_(decay).add_(param.data, alpha=1 - decay)
            else:
                ema_params[name].data.copy_(param.data)
        ema_buffers = dict(self.net_g_ema.named_buffers())
        for name, buf in net_g.named_buffers():
            ema_buffers[name].data.copy_(buf.data)

    def _network_opt(self, key):
        """``opt[key]`` with its ``*_load_path`` entries made absolute (relative to ``root_path``) and checked."""
        net_opt = dict(self.opt[key])
        for name, value in net_opt.items():
            if name.endswith('_load_path') and value is not None:
                net_opt[name] = self.resolve_path(value)
                if not osp.isfile(net_opt[name]):
                    raise FileNotFoundError(f'{key}.{name}: {net_opt[name]!r} does not exist. Fix the path in the '
                                            'options file (relative paths are relative to the repository root).')
        return net_opt

    def _build_perceptual(self, opt):
        if not opt:
            return None
        opt = dict(opt)
        if opt.get('type') == 'VGGPerceptualLoss':
            opt['vgg_load_path'] = self.resolve_path(opt.get('vgg_load_path'))
            try:
                return build_loss(opt).to(self.device)
            except (FileNotFoundError, ValueError, KeyError) as e:
                raise type(e)(f'train.perceptual_opt: {e}') from e
        return build_loss(opt).to(self.device)

    def setup_optimizers(self):
        train_opt = self.opt['train']
        optim_g = dict(train_opt['optim_g'])
        # trainable parameters only (the frozen DRE is left out), in per-part groups if asked (gan_prior)
        params_g = generator_param_groups(self.get_bare_model(self.net_g), optim_g)
        self.optimizer_g = self.get_optimizer(optim_g.pop('type'), params_g, **optim_g)
        optim_d = dict(train_opt['optim_d'])
        params_d = [p for p in self.net_d.parameters() if p.requires_grad]  # FreezeD's layers are left out
        self.optimizer_d = self.get_optimizer(optim_d.pop('type'), params_d, **optim_d)
        self.optimizers = [self.optimizer_g, self.optimizer_d]
        self.plugin_optimizers()  # local discriminators (gan_prior)

    def feed_data(self, data):
        """Args:
            data (dict): 'lq' (b, 3, in, in) and, when training, 'gt' (b, 3, out, out), RGB in [-1, 1].
        """
        self.lq = data['lq'].to(self.device)
        if 'gt' in data:
            self.gt = data['gt'].to(self.device)
        self.feed_components(data)  # component boxes for the local discriminators (gan_prior)

    def generate(self):
        """The generator's output for ``self.lq`` in the training step, (b, 3, out, out)."""
        return self.net_g(self.lq)

    def optimize_parameters(self, current_iter):
        loss_dict = OrderedDict()

        # generator
        self.set_d_requires_grad(False)
        self.optimizer_g.zero_grad()
        self.output = self.generate()
        l_g_total = 0
        if current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters:
            if self.cri_pix is not None:
                l_g_pix = self.cri_pix(self.output, self.gt)
                l_g_total = l_g_total + l_g_pix
                loss_dict['l_g_pix'] = l_g_pix
            if self.cri_perceptual is not None:
                l_g_percep = self.cri_perceptual(self.output, self.gt)
                l_g_total = l_g_total + l_g_percep
                loss_dict['l_g_percep'] = l_g_percep
            fake_g_pred = self.net_d(self.output)
            l_g_gan = self.cri_gan(fake_g_pred, True, is_disc=False)
            l_g_total = l_g_total + l_g_gan
            loss_dict['l_g_gan'] = l_g_gan
            l_g_total = l_g_total + self.plugin_g_losses(self.output, loss_dict)  # local D, identity (gan_prior)
            l_g_total.backward()
            self.optimizer_g.step()
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

        # discriminator: BCE(real, 1) + BCE(fake, 0), optional lazy R1 on real images
        self.set_d_requires_grad(True)  # FreezeD's layers stay frozen
        self.optimizer_d.zero_grad()
        real_d_pred = self.net_d(self.gt)
        fake_d_pred = self.net_d(self.output.detach())
        l_d_real = self.cri_gan(real_d_pred, True, is_disc=True)
        l_d_fake = self.cri_gan(fake_d_pred, False, is_disc=True)
        (l_d_real + l_d_fake).backward()
        loss_dict['l_d_real'] = l_d_real
        loss_dict['l_d_fake'] = l_d_fake
        loss_dict['out_d_real'] = real_d_pred.detach().mean()
        loss_dict['out_d_fake'] = fake_d_pred.detach().mean()
        if self.r1_reg_weight > 0 and current_iter % self.net_d_reg_every == 0:
            gt = self.gt.detach().requires_grad_(True)
            real_pred = self.net_d(gt)
            l_d_r1 = r1_penalty(real_pred, gt)
            # lazy regularisation: scaled by the interval; the 0 * term keeps every output in the graph (DDP)
            (self.r1_reg_weight / 2 * l_d_r1 * self.net_d_reg_every + 0 * real_pred[0]).sum().backward()
            loss_dict['l_d_r1'] = l_d_r1.detach()
        self.optimizer_d.step()
        self.plugin_d_step(self.output, loss_dict)  # local discriminators (gan_prior)

        self.log_dict = self.reduce_loss_dict(loss_dict)

    def test(self):
        """``self.output`` = EMA generator (or ``net_g``) applied to ``self.lq``, without gradients."""
        net = self.net_g_ema if getattr(self, 'net_g_ema', None) is not None else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = net(self.lq)
        net.train(was_training)

    def get_current_visuals(self):
        out = OrderedDict(lq=self.lq.detach().cpu(), result=self.output.detach().cpu())
        if hasattr(self, 'gt'):
            out['gt'] = self.gt.detach().cpu()
        return out

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """PSNR / SSIM (basicsr metrics, uint8 BGR images) of the EMA generator; optionally saves the outputs.

        Images go to ``visualization/<name>/<name>_<iter>.png`` under the experiment folder, as basicsr's SRModel.
        """
        dataset_name = dataloader.dataset.opt['name']
        metrics_opt = self.opt['val'].get('metrics') or {}
        if metrics_opt:
            self._initialize_best_metric_results(dataset_name)
        self.metric_results = {metric: 0 for metric in metrics_opt}
        count = 0
        for val_data in dataloader:
            img_name = osp.splitext(osp.basename(val_data['lq_path'][0]))[0]
            self.feed_data(val_data)
            self.test()
            visuals = self.get_current_visuals()
            sr_img = tensor2img(visuals['result'], min_max=(-1, 1))
            if 'gt' in visuals:
                gt_img = tensor2img(visuals['gt'], min_max=(-1, 1))
                for name, opt_ in metrics_opt.items():
                    self.metric_results[name] += calculate_metric(dict(img=sr_img, img2=gt_img), opt_)
                del self.gt
            if save_img:
                save_path = osp.join(self.opt['path']['visualization'], img_name, f'{img_name}_{current_iter}.png')
                imwrite(sr_img, save_path)
            count += 1
        if metrics_opt and count:
            for metric in self.metric_results:
                self.metric_results[metric] /= count
                self._update_best_metric_result(dataset_name, metric, self.metric_results[metric], current_iter)
            self._log_validation_metric_values(current_iter, dataset_name, tb_logger)

    def _log_validation_metric_values(self, current_iter, dataset_name, tb_logger):
        log_str = f'Validation {dataset_name}\n'
        for metric, value in self.metric_results.items():
            best = self.best_metric_results[dataset_name][metric]
            log_str += f'\t # {metric}: {value:.4f}\tBest: {best["val"]:.4f} @ {best["iter"]} iter\n'
        get_root_logger().info(log_str)
        if tb_logger:
            for metric, value in self.metric_results.items():
                tb_logger.add_scalar(f'metrics/{dataset_name}/{metric}', value, current_iter)

    def save(self, epoch, current_iter):
        """``net_g_{iter}.pth`` (``params``, ``params_ema``, and ``arch``: the PaniniNet kwargs without the load paths,
        which ``panininet.weights.panini_checkpoint.load_panini_weights`` / ``PaniniRestorer`` use),
        ``net_d_{iter}.pth``, state."""
        arch = {k: v for k, v in self.opt['network_g'].items() if k != 'type' and not k.endswith('_load_path')}
        if getattr(self, 'net_g_ema', None) is not None:
            self.save_network([self.net_g, self.net_g_ema], 'net_g', current_iter, param_key=['params', 'params_ema'],
                              extra={'arch': arch})
        else:
            self.save_network(self.net_g, 'net_g', current_iter, extra={'arch': arch})
        self.save_network(self.net_d, 'net_d', current_iter)
        self.save_plugins(current_iter)  # local discriminators (gan_prior)
        self.save_training_state(epoch, current_iter)
