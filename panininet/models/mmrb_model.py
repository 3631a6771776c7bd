"""MMRB-Net fine-tuning (Hu et al., Sec. III-C/D, IV-B): the losses of eqs. 11-16 on ``MMRBNet``.

The training loop, EMA, validation, checkpoints and exact resume are :class:`PaniniModel`'s: both fine-tune a
pre-trained StyleGAN2 prior against a pre-trained discriminator, and MMRB-Net's own pieces (FreezeD, local
discriminators, identity loss, per-part learning rates) are the plug-ins of :mod:`panininet.models.finetune_plugins`,
which Panini-Net can use too. This model adds what only MMRB-Net has: the multi-scale L1 on the decoder's images
(Sec. III-A, "L1 restoration loss similar to [15] for each resolution scale of the reconstructed image in the
decoder").

Losses (``options/train_mmrb.yml``; eq. 16 ``L_total = L_adv + L_C + L_FP``):

* eq. 11, global adversarial: ``gan_opt`` (non-saturating logistic, lambda_g = 0.5) against ``network_d`` (GPEN's
  discriminator, FreezeD: ``freeze_d_layers: 5``);
* eqs. 12-13, local adversarial: ``network_d_left_eye`` / ``_right_eye`` / ``_mouth`` with ``gan_component_opt``
  (cross-entropy, lambda_l = 3 each);
* eq. 14, content: ``pixel_opt`` (L1, lambda_l1 = 8), ``pyramid_loss_weight`` (the decoder's multi-scale L1, our
  choice lambda_l1 per scale: the paper gives one L1 weight), ``perceptual_opt`` (VGG feature matching,
  lambda_FM = 0.02);
* eq. 15, face preserving: ``identity_opt`` (ArcFace, lambda_FP = 10).

Checkpoints: ``net_g_{iter}.pth`` ``{'params', 'params_ema', 'arch': MMRBNet kwargs}`` (what the restorer builds
from), ``net_d_{iter}.pth``, ``net_d_left_eye_{iter}.pth`` etc.
"""
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn import functional as F

from panininet.models.panini_model import PaniniModel


@MODEL_REGISTRY.register()
class MMRBModel(PaniniModel):
    """Fine-tunes ``MMRBNet`` (``net_g``) with the global and local discriminators, L1 + multi-scale L1, VGG
    feature matching and the identity loss.

    Extra option: ``train.pyramid_loss_weight`` (float, default 0 = off): weight of the L1 between the decoder's
    image at each scale (``MMRBNet(..., return_rgb=True)``) and the GT area-downsampled to that scale, summed over
    the scales.

    Args:
        opt (dict): Parsed BasicSR options.
    """

    def init_training_settings(self):
        self.pyramid_loss_weight = float(self.opt['train'].get('pyramid_loss_weight') or 0)
        super().init_training_settings()

    def generate(self):
        """MMRBNet's image; the decoder's images are kept for the multi-scale L1 (``self.out_rgbs``)."""
        if self.pyramid_loss_weight <= 0:
            return self.net_g(self.lq)
        output, self.out_rgbs = self.net_g(self.lq, return_rgb=True)
        return output

    def plugin_g_losses(self, output, loss_dict):
        """The plug-ins' terms, plus the multi-scale L1 of the decoder's images (content loss, eq. 14)."""
        total = super().plugin_g_losses(output, loss_dict)
        if self.pyramid_loss_weight > 0:
            l_pyramid = 0
            for rgb in self.out_rgbs:
                target = self.gt if rgb.shape[-1] == self.gt.shape[-1] else F.adaptive_avg_pool2d(
                    self.gt, rgb.shape[-2:])
                l_pyramid = l_pyramid + F.l1_loss(rgb, target.detach())
            l_pyramid = l_pyramid * self.pyramid_loss_weight
            loss_dict['l_g_pyramid'] = l_pyramid
            total = total + l_pyramid
        return total
