"""GFP-GAN's own training (``gfpgan`` 1.3.8 ``GFPGANModel``) run by panininet's engine, so that it trains on a CPU,
under ``torch.distributed`` without CUDA, and resumes exactly.

Only imported when the ``gfpgan`` package is installed (``pip install --no-build-isolation -e ".[gfpgan]"``);
see ``options/train_gfpgan_v1.yml`` and docs/training.md, "GFP-GAN".

:class:`PaniniGFPGANModel` is ``GFPGANModel`` with :class:`~panininet.models.base_model.PaniniBaseModel` under it
(``GFPGANModel`` subclasses basicsr's ``BaseModel`` directly): GFP-GAN's networks, losses, ``optimize_parameters``,
validation and checkpoint layout are unchanged; what changes is what basicsr's ``BaseModel`` does for it:

* ``model_to_device``: ``DistributedDataParallel`` without ``device_ids`` on CPU (gloo); basicsr passes
  ``torch.cuda.current_device()``, which fails without CUDA (``RuntimeError: Found no NVIDIA driver ...``).
* ``save_training_state`` writes the RNG states of every rank, which our resume machinery restores, and every
  checkpoint is written atomically; ``net_g_*.pth`` also records the ``arch`` (the ``network_g`` options), which
  ``scripts/convert_gfpgan_to_clean.py`` reads.
* ``load_network`` reads with ``weights_only=True``; relative weight paths (``path.pretrain_*``,
  ``network_g.decoder_load_path``) are relative to the repository root (``root_path``), not the working directory.
* :meth:`get_roi_regions` also works below 512 px: GFP-GAN scales its component crops by ``int(out_size / 512)``,
  which is 0 for smaller faces (``roi_align`` with an output size of 0 fails).
"""

import torch
from basicsr.utils.registry import MODEL_REGISTRY
from gfpgan.models.gfpgan_model import GFPGANModel
from torchvision.ops import roi_align

from panininet.models.base_model import PaniniBaseModel

# network_g options that are not the architecture (a path, a training switch): not recorded in ``arch``
_NOT_ARCH = ('decoder_load_path', 'fix_decoder')


@MODEL_REGISTRY.register()
class PaniniGFPGANModel(GFPGANModel, PaniniBaseModel):
    """GFP-GAN's ``GFPGANModel`` with our engine's guarantees (CPU / gloo DDP, exact resume, safe loading).

    Same options as ``GFPGANModel`` (``options/train_gfpgan_v1.yml``). Checkpoints: ``net_g_{iter}.pth`` with
    ``params``, ``params_ema`` and ``arch``; ``net_d``, ``net_d_left_eye``, ``net_d_right_eye``, ``net_d_mouth``
    with ``params``; ``training_states/{iter}.state`` with the optimisers, schedulers and RNG states.

    Args:
        opt (dict): Parsed BasicSR options.
    """

    def __init__(self, opt):
        net_opt = dict(opt['network_g'])
        path = net_opt.get('decoder_load_path')
        if path is not None:
            self.opt = opt  # locate_weights reads root_path
            net_opt['decoder_load_path'] = self.locate_weights(path, 'network_g.decoder_load_path')
        opt['network_g'] = net_opt
        super().__init__(opt)

    def arch(self):
        """The ``network_g`` options that define the architecture (recorded in ``net_g_*.pth`` as ``arch``).

        Returns:
            dict: ``type`` and the constructor arguments, without ``decoder_load_path`` / ``fix_decoder``.
        """
        return {k: v for k, v in self.opt['network_g'].items() if k not in _NOT_ARCH}

    def save_network(self, net, net_label, current_iter, param_key='params', extra=None):
        """As :meth:`PaniniBaseModel.save_network`; ``net_g`` files also hold ``arch`` (:meth:`arch`)."""
        if net_label == 'net_g':
            extra = dict(extra or {}, arch=self.arch())
        super().save_network(net, net_label, current_iter, param_key, extra)

    def feed_data(self, data):
        """GFP-GAN's ``feed_data``, after :meth:`~PaniniBaseModel.lq_on_device` (``degrade_in_model`` data)."""
        super().feed_data(self.lq_on_device(data))

    def get_roi_regions(self, eye_out_size=80, mouth_out_size=120):
        """Crop eyes and mouth of ``self.gt`` and ``self.output`` with ``roi_align``, as GFP-GAN, at any face size.

        At ``out_size >= 512`` this is GFP-GAN's own method (crop sides ``80 * k`` and ``120 * k``, values scaled
        by ``k = int(out_size / 512)``). Below 512 px its ``k`` is 0; here the crop sides scale with the face,
        ``round(80 * out_size / 512)`` and ``round(120 * out_size / 512)`` (at least 1), and values are not scaled.

        Sets ``left_eyes``, ``right_eyes``, ``mouths`` (from the output) and the same with ``_gt``, each
        (b, 3, s, s).
        """
        out_size = self.opt['network_g']['out_size']
        if out_size >= 512:
            return super().get_roi_regions(eye_out_size, mouth_out_size)
        eye = max(1, round(eye_out_size * out_size / 512))
        mouth = max(1, round(mouth_out_size * out_size / 512))
        b = self.loc_left_eyes.size(0)
        index = torch.arange(b, dtype=self.loc_left_eyes.dtype)[:, None]
        # (2b, 5): left and right eye of image 0, then of image 1, ... (GFP-GAN's order)
        rois_eyes = torch.stack([torch.cat([index, self.loc_left_eyes], 1),
                                 torch.cat([index, self.loc_right_eyes], 1)], 1).view(2 * b, 5).to(self.device)
        rois_mouths = torch.cat([index, self.loc_mouths], 1).to(self.device)
        for name, img in (('_gt', self.gt), ('', self.output)):
            eyes = roi_align(img, boxes=rois_eyes, output_size=eye)
            setattr(self, f'left_eyes{name}', eyes[0::2])
            setattr(self, f'right_eyes{name}', eyes[1::2])
            setattr(self, f'mouths{name}', roi_align(img, boxes=rois_mouths, output_size=mouth))

