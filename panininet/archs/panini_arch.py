"""Panini-Net (Wang, Hu, Zhang, AAAI 2022) as a BasicSR arch, built from the parts the paper names.

* IFE, image feature extractor (eqs. 1-2): RRDB feature extractor + CBAM + strided convs, giving the features
  ~F_IFE at resolutions 4 .. 64; ``h_convs`` are the per-level convs H_Conv of eq. 2 (``fusion_out`` in the
  official code).
* LCE, latent code encoder (eq. 3): conv + fully connected layer on the 4x4 feature -> w+.
* GPM, GAN prior module: :class:`~panininet.archs.gpm.GPM`, BasicSR's
  :class:`~basicsr.archs.stylegan2_arch.StyleGAN2Generator` (composed, not copied, so its ops, CUDA kernels when
  compiled, are used) running its synthesis loop with the fusion as a callback.
* DAFI, degradation-aware feature interpolation (eqs. 6-7): channel-wise masks from v_DR, one level per fused
  resolution.
* DRE, degradation representation encoder (eq. 5): :class:`~panininet.archs.dre_arch.DegradationEncoder`, or a
  learned constant v_DR for the 16x SR variant (``condition='learned'``).

The forward follows the official code where it differs from the paper (docs/networks.md, "Where we differ from
the official code"): the CBAM pre-processing conv is applied twice, mask1 (softmax slot 0) weights the StyleGAN
feature, the level k conv H_Conv is used at resolution 4 * 2^k, and the StyleGAN FIR kernels are state-dict buffers.
"""
import math

import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from panininet.archs.dre_arch import DegradationEncoder
from panininet.archs.gpm import GPM, fir_kernel_keys, load_gpm_state, register_fir_kernels  # noqa: F401 (aliases)
from panininet.archs.rrdb import RRDB
from panininet.platform.native_ops import WinogradConv2d, cpu_inference_dtype
from panininet.weights.checkpoint import load_checkpoint_file
from panininet.weights.panini_checkpoint import extract_dre_state, extract_gpm_state

MAX_FUSION_RES = 64  # the official network fuses at 4, 8, 16, 32, 64


def _log2_exact(value, name):
    if not isinstance(value, int) or value < 4 or value & (value - 1):
        raise ValueError(f'{name}={value!r} must be a power of two >= 4.')
    return int(math.log2(value))


# ---------------------------------------------------------------------------------------------------------------------
# IFE
# ---------------------------------------------------------------------------------------------------------------------
class ChannelGate(nn.Module):
    """CBAM channel attention: ``x * sigmoid(mlp(avgpool(x)) + mlp(maxpool(x)))``.

    Args:
        channels (int): Channels C.
        reduction (int): Hidden width of the MLP is ``C // reduction``.
    """

    def __init__(self, channels, reduction):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels))

    def forward(self, x):
        """(b, c, h, w) -> (b, c, h, w)."""
        att = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(att)[:, :, None, None]


class SpatialGate(nn.Module):
    """CBAM spatial attention: ``x * sigmoid(BN(conv7x7([max_c x, mean_c x])))``."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, 1, 3, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x):
        """(b, c, h, w) -> (b, c, h, w)."""
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.bn(self.conv(pooled)))


class CBAM(nn.Module):
    """CBAM with one shared pre-processing conv applied before each gate (twice in all, as the official code).

    Args:
        channels (int): Channels C.
        reduction (int): Channel-gate reduction ratio.
    """

    def __init__(self, channels, reduction):
        super().__init__()
        self.fea_preprocess = nn.Conv2d(channels, channels, 3, 1, 1)
        self.channel_gate = ChannelGate(channels, reduction)
        self.spatial_gate = SpatialGate()

    def forward(self, x):
        """(b, c, h, w) -> (b, c, h, w)."""
        y = self.channel_gate(self.fea_preprocess(x))
        return self.spatial_gate(self.fea_preprocess(y))


class IFE(nn.Module):
    """Image feature extractor (eqs. 1-2).

    RRDB feature extractor (``conv_first``, ``body``, ``conv_body`` with a global residual) and CBAM at the input
    resolution, a stem of convs that brings the features to the top fused resolution (stride-2 convs when the
    input is larger), one stride-2 conv per lower level, and the per-level convs H_Conv.

    Args:
        in_size (int): Input size S.
        level_channels (list[int]): Channels of each fused level, level 0 = 4x4.
        rrdb_channels (int): RRDB width.
        num_rrdbs (int): Number of RRDBs.
        rrdb_growth (int): RRDB growth channels.
        cbam_reduction (int): CBAM channel-gate reduction.
    """

    memory_format = torch.channels_last  # of the features inside (benchmarks compare torch.contiguous_format)

    def __init__(self, in_size, level_channels, rrdb_channels, num_rrdbs, rrdb_growth, cbam_reduction):
        super().__init__()
        self.conv_first = nn.Conv2d(3, rrdb_channels, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(rrdb_channels, rrdb_growth) for _ in range(num_rrdbs)])
        self.conv_body = nn.Conv2d(rrdb_channels, rrdb_channels, 3, 1, 1)
        self.cbam = CBAM(rrdb_channels, cbam_reduction)

        num_levels = len(level_channels)
        top_res = 4 * 2**(num_levels - 1)
        n_down = int(math.log2(in_size // top_res))
        top_ch = level_channels[-1]
        if n_down == 0:
            stem = [nn.Conv2d(rrdb_channels, top_ch, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        else:  # official MFR (n_down 3): C -> 32 @S, 32 -> 64 -> 128 -> 512 with stride 2
            stem = [nn.Conv2d(rrdb_channels, 32, 3, 1, 1), nn.LeakyReLU(0.2, True)]
            ch = 32
            for j in range(1, n_down + 1):
                out_ch = top_ch if j == n_down else 32 * 2**j
                stem += [nn.Conv2d(ch, out_ch, 3, 2, 1), nn.LeakyReLU(0.2, True)]
                ch = out_ch
        self.stem = nn.Sequential(*stem)
        # downs[j] takes level (L-1-j) to level (L-2-j): top res -> top/2 -> ... -> 4
        self.downs = nn.ModuleList()
        for lvl in range(num_levels - 1, 0, -1):
            conv = nn.Conv2d(level_channels[lvl], level_channels[lvl - 1], 3, 2, 1)
            self.downs.append(nn.Sequential(conv, nn.LeakyReLU(0.2, True)))
        self.h_convs = nn.ModuleList([WinogradConv2d(c, c, 3, 1, 1) for c in level_channels])  # 512 channels

    def forward(self, x):
        """Preliminary features ~F_IFE (eq. 1) and fused features F_IFE (eq. 2).

        Args:
            x (Tensor): (b, 3, S, S).

        Returns:
            tuple[list[Tensor], list[Tensor]]: ``pre`` and ``feats``, level 0 (4x4) first; level l has shape
            (b, C_l, 4 * 2^l, 4 * 2^l).
        """
        # channels_last inside (oneDNN runs these 8-32-channel convs ~2x faster than in NCHW;
        # docs/performance.md); the outputs go back to NCHW, which BasicSR's modulated convs need for a batch
        fea = self.conv_first(x.contiguous(memory_format=self.memory_format))
        fea = fea + self.conv_body(self.body(fea))
        fea = self.stem(self.cbam(fea))
        pre = [fea]
        for down in self.downs:
            pre.append(down(pre[-1]))
        pre = pre[::-1]
        feats = [conv(f).contiguous() for conv, f in zip(self.h_convs, pre)]
        return [f.contiguous() for f in pre], feats


class LCE(nn.Module):
    """Latent code encoder (eq. 3): 3x3 conv + LeakyReLU on the 4x4 feature, flatten, fully connected -> w+.

    Args:
        in_channels (int): Channels of the 4x4 feature.
        num_latent (int): Number of w+ codes (18 for 1024 output).
        num_style_feat (int): Style dimension.
    """

    def __init__(self, in_channels, num_latent, num_style_feat):
        super().__init__()
        mid = max(in_channels // 2, 1)
        self.num_latent = num_latent
        self.num_style_feat = num_style_feat
        self.conv = nn.Conv2d(in_channels, mid, 3, 1, 1)
        self.fc = nn.Linear(mid * 16, num_latent * num_style_feat)

    def forward(self, x):
        """(b, c, 4, 4) -> w+ (b, num_latent, num_style_feat).

        Under CPU bf16 autocast (:func:`panininet.platform.native_ops.cpu_inference_dtype`) the fully connected
        layer runs in fp32: w+ is the style of every GPM layer, and the one matrix-vector product costs less than
        the bf16 copy of its weight autocast would make per call.
        """
        y = F.leaky_relu(self.conv(x), 0.2).flatten(1)
        if cpu_inference_dtype(y, params=self.fc.parameters()) == torch.bfloat16:
            with torch.autocast('cpu', enabled=False):
                return self.fc(y.float()).view(-1, self.num_latent, self.num_style_feat)
        return self.fc(y).view(-1, self.num_latent, self.num_style_feat)


# ---------------------------------------------------------------------------------------------------------------------
# DAFI and the Cat-Conv ablation
# ---------------------------------------------------------------------------------------------------------------------
class DAFI(nn.Module):
    """Degradation-aware feature interpolation (eqs. 6-7) for all fused levels.

    One MLP (Linear, LeakyReLU(0.1), Linear) maps v_DR to two logits per channel and level; a softmax over the pair
    gives ``mask`` (weight of the GAN prior feature F_GPB) and ``1 - mask`` (weight of F_IFE). Output layout of the
    last linear: per level l a block of ``2 * C_l`` values, first the C_l prior logits, then the C_l input logits
    (for 5 levels x 512 channels this is the official ``view(b, 5, 2, 512)``).

    Args:
        cond_dim (int): Length of v_DR.
        level_channels (list[int]): Channels C_l per level, level 0 = 4x4.
    """

    def __init__(self, cond_dim, level_channels):
        super().__init__()
        self.level_channels = list(level_channels)
        self.mapping = nn.Sequential(
            nn.Linear(cond_dim, cond_dim), nn.LeakyReLU(0.1, True), nn.Linear(cond_dim, 2 * sum(level_channels)))

    def masks(self, v_dr, mask_bias=None):
        """Prior-feature weights per level.

        Args:
            v_dr (Tensor): (b, cond_dim).
            mask_bias (Tensor | None): (L,) added to the prior logit of each level (> 0 moves toward the prior).

        Returns:
            list[Tensor]: level l: (b, C_l), values in (0, 1).
        """
        y = self.mapping(v_dr)
        out, offset = [], 0
        for lvl, c in enumerate(self.level_channels):
            logits = y[:, offset:offset + 2 * c].reshape(-1, 2, c)
            offset += 2 * c
            if mask_bias is not None:
                logits = torch.stack([logits[:, 0] + mask_bias[lvl], logits[:, 1]], dim=1)
            out.append(torch.softmax(logits, dim=1)[:, 0])
        return out

    @staticmethod
    def interpolate(f_gpb, f_ife, mask, source='both'):
        """Eq. 7 (``source='both'``), eq. 13 (``'gpb'``: F_IFE set to 0), eq. 12 (``'ife'``: F_GPB set to 0).

        Args:
            f_gpb (Tensor): StyleGAN feature, (b, c, h, w).
            f_ife (Tensor): Image feature after H_Conv, (b, c, h, w).
            mask (Tensor): Prior weight, (b, c).
            source (str): 'both' | 'gpb' | 'ife'.

        Returns:
            Tensor: (b, c, h, w).
        """
        m = mask[:, :, None, None]
        if source == 'both':
            return m * f_gpb + (1 - m) * f_ife
        if source == 'gpb':
            return m * f_gpb
        return (1 - m) * f_ife


class CatConv(nn.Module):
    """Cat-Conv fusion of the Table 3 ablation: ``conv3x3(cat([F_GPB, F_IFE]))`` (2C -> C), one per level.

    Args:
        level_channels (list[int]): Channels C_l per level.
    """

    def __init__(self, level_channels):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(2 * c, c, 3, 1, 1) for c in level_channels])

    def forward(self, lvl, f_gpb, f_ife):
        """Fuse level ``lvl``: (b, c, h, w) x 2 -> (b, c, h, w)."""
        return self.convs[lvl](torch.cat([f_gpb, f_ife], dim=1))


# ---------------------------------------------------------------------------------------------------------------------
# PaniniNet
# ---------------------------------------------------------------------------------------------------------------------
@ARCH_REGISTRY.register()
class PaniniNet(nn.Module):
    """Panini-Net: GAN prior based degradation-aware feature interpolation for face restoration.

    Defaults are the paper's MFR setting (512 -> 1024). The named variants (MFR, 16x SR, the Cat-Conv ablation)
    are :data:`panininet.families.variants.VARIANTS`: ``PaniniNet(**variant_kwargs('sr16'))`` is the 16x SR network.

    Fused levels: resolutions 4, 8, ..., up to min(64, in_size, out_size / 2), level 0 = 4x4 (5 levels in the
    paper). Level l has the StyleGAN channels at that resolution. w+ has ``2 * log2(out_size) - 2`` codes.

    Args:
        in_size (int): Input size (power of two). Default: 512.
        out_size (int): Output size (power of two, > 4). Default: 1024.
        num_style_feat (int): StyleGAN2 style dimension. Default: 512.
        channel_multiplier (int): StyleGAN2 channel multiplier. Default: 2.
        narrow (float): StyleGAN2 channel narrowing ratio. Default: 1.0.
        rrdb_channels (int): RRDB width of the IFE. Default: 8.
        num_rrdbs (int): Number of RRDBs of the IFE. Default: 2.
        rrdb_growth (int): RRDB growth channels. Default: 32.
        cbam_reduction (int): CBAM channel-gate reduction. Default: 2.
        condition (str): 'dre' (v_DR from the DRE, eq. 5) or 'learned' (a learned constant v_DR, 16x SR).
            Default: 'dre'.
        fusion (str): 'dafi' (eqs. 6-7) or 'catconv' (Table 3 ablation: no DRE, no masks, concat + conv).
            Default: 'dafi'.
        dre_in_size (int): The DRE sees the input average-pooled to this size (never up-sampled). Default: 256.
        dre_num_feat (int): DRE width; v_DR has ``4 * dre_num_feat`` values. Default: 64.
        decoder_load_path (str | None): StyleGAN2 checkpoint loaded into the GPM: BasicSR (``params_ema``, else
            ``params``) or MMGen (``generator_ema``, as the official configs). Default: None.
        dre_load_path (str | None): DRE weights: our DegradationEncoder or MoCo checkpoint, or an official
            ``moco_checkpoint_*.pth.tar``. Default: None.
        fix_dre (bool): Freeze the DRE (no gradients, BatchNorm kept in eval mode), as the paper. Default: True.
        fix_decoder (bool): Freeze the GPM. Default: False.
        num_mlp (int): StyleGAN2 mapping layers (stored for checkpoint compatibility, unused). Default: 8.
        lr_mlp (float): StyleGAN2 mapping lr multiplier. Default: 0.01.
    """

    def __init__(self,
                 in_size=512,
                 out_size=1024,
                 num_style_feat=512,
                 channel_multiplier=2,
                 narrow=1.0,
                 rrdb_channels=8,
                 num_rrdbs=2,
                 rrdb_growth=32,
                 cbam_reduction=2,
                 condition='dre',
                 fusion='dafi',
                 dre_in_size=256,
                 dre_num_feat=64,
                 decoder_load_path=None,
                 dre_load_path=None,
                 fix_dre=True,
                 fix_decoder=False,
                 num_mlp=8,
                 lr_mlp=0.01):
        super().__init__()
        _log2_exact(in_size, 'in_size')
        log_out = _log2_exact(out_size, 'out_size')
        if out_size < 8:
            raise ValueError(f'out_size={out_size} must be >= 8.')
        if condition not in ('dre', 'learned'):
            raise ValueError(f"condition={condition!r}: use 'dre' or 'learned'.")
        if fusion not in ('dafi', 'catconv'):
            raise ValueError(f"fusion={fusion!r}: use 'dafi' or 'catconv'.")
        self.in_size = in_size
        self.out_size = out_size
        self.condition = condition
        self.fusion = fusion
        self.fix_dre = fix_dre
        self.fix_decoder = fix_decoder

        # GPM: BasicSR's StyleGAN2 generator, with its FIR kernels as buffers
        self.gpm = GPM(out_size, num_style_feat=num_style_feat, num_mlp=num_mlp,
                       channel_multiplier=channel_multiplier, resample_kernel=(1, 3, 3, 1), lr_mlp=lr_mlp,
                       narrow=narrow)
        self.num_latent = 2 * log_out - 2

        top_res = min(MAX_FUSION_RES, in_size, out_size // 2)
        self.num_levels = int(math.log2(top_res)) - 1
        self.level_channels = [self.gpm.channels[str(4 * 2**lvl)] for lvl in range(self.num_levels)]

        self.ife = IFE(in_size, self.level_channels, rrdb_channels, num_rrdbs, rrdb_growth, cbam_reduction)
        self.lce = LCE(self.level_channels[0], self.num_latent, num_style_feat)

        self.dre = None
        self.dafi = None
        self.catconv = None
        self.dre_in_size = min(dre_in_size, in_size)
        cond_dim = 4 * dre_num_feat
        if fusion == 'dafi':
            if condition == 'dre':
                self.dre = DegradationEncoder(dre_num_feat)
            else:
                self.learned_v_dr = nn.Parameter(torch.randn(1, cond_dim))
            self.dafi = DAFI(cond_dim, self.level_channels)
        else:
            self.catconv = CatConv(self.level_channels)

        logger = get_root_logger()
        if decoder_load_path is not None:
            logger.info(f'PaniniNet: loading the GPM (StyleGAN2) from {decoder_load_path}')
            self.gpm.load_prior(extract_gpm_state(load_checkpoint_file(decoder_load_path), decoder_load_path))
        if dre_load_path is not None:
            if self.dre is None:
                raise ValueError('dre_load_path is set but this PaniniNet has no DRE '
                                 "(condition='learned' or fusion='catconv'); remove dre_load_path.")
            logger.info(f'PaniniNet: loading the DRE from {dre_load_path}')
            self.dre.load_state_dict(extract_dre_state(load_checkpoint_file(dre_load_path), dre_load_path))
        # never used by the forward (kept so StyleGAN2 / official / MoCo checkpoints load unchanged): frozen, so
        # DistributedDataParallel does not wait for their gradients
        self.gpm.style_mlp.requires_grad_(False)
        if self.dre is not None:
            self.dre.mlp.requires_grad_(False)
        if self.dre is not None and fix_dre:
            self.dre.requires_grad_(False)
            self.dre.eval()
        if fix_decoder:
            self.gpm.requires_grad_(False)

    def train(self, mode=True):
        """Like ``nn.Module.train``, but a frozen DRE stays in eval mode (fixed BatchNorm statistics)."""
        super().train(mode)
        if self.dre is not None and self.fix_dre:
            self.dre.eval()
        return self

    def degradation_representation(self, x):
        """v_DR of eq. 5.

        Args:
            x (Tensor): (b, 3, in_size, in_size) in [-1, 1].

        Returns:
            Tensor | None: (b, 4 * dre_num_feat); None for ``fusion='catconv'``.
        """
        if self.dafi is None:
            return None
        if self.dre is None:
            return self.learned_v_dr.expand(x.shape[0], -1)
        if x.shape[-1] != self.dre_in_size:
            x = F.adaptive_avg_pool2d(x, self.dre_in_size)
        return self.dre(x)

    def _mask_bias(self, mask_bias, ref):
        bias = torch.as_tensor(mask_bias, dtype=ref.dtype, device=ref.device).flatten()
        if bias.numel() == 1:
            bias = bias.expand(self.num_levels)
        if bias.numel() != self.num_levels:
            raise ValueError(f'mask_bias has {bias.numel()} values; give one float or one per level '
                             f'({self.num_levels}).')
        return bias

    def _fusion(self, feats, masks, source):
        """The GPM's fusion callback: DAFI (eq. 7, or eqs. 12/13 by ``source``) or Cat-Conv at levels < L.

        Args:
            feats (list[Tensor]): ~F_IFE per level, (b, c_l, 4 * 2^l, 4 * 2^l).
            masks (list[Tensor] | None): DAFI prior masks per level, (b, c_l); None for Cat-Conv.
            source (str): 'both', 'ife' or 'gpb' (see :meth:`forward`).

        Returns:
            callable: ``fuse(level, f_gpb) -> fused`` for :meth:`GPM.synthesize`.
        """
        def fuse(level, f_gpb):
            if level >= self.num_levels:  # above the top fused resolution: the prior alone
                return f_gpb
            if self.dafi is not None:
                return DAFI.interpolate(f_gpb, feats[level], masks[level], source)
            return self.catconv(level, f_gpb, feats[level])

        return fuse

    def forward(self, x, source='both', mask_bias=0.0, return_extras=False, randomize_noise=None):
        """Restore faces.

        Args:
            x (Tensor): (b, 3, in_size, in_size), RGB in [-1, 1].
            source (str): 'both' (eq. 7), 'ife' (eq. 12: F_GPB set to 0) or 'gpb' (eq. 13: F_IFE set to 0) at every
                fused level. Default: 'both'.
            mask_bias (float | list[float] | Tensor): Added to the prior logit of each level's mask
                (one value or one per level); > 0 moves the masks toward the GAN prior. Default: 0.
            return_extras (bool): Also return the masks, theta, w+ and v_DR. Default: False.
            randomize_noise (bool | None): Draw new StyleGAN noise instead of the stored buffers.
                Default: None (= False: same input, same output).

        Returns:
            Tensor | tuple[Tensor, dict]: image (b, 3, out_size, out_size), nominally [-1, 1], unclamped; with
            ``return_extras`` also a dict: ``masks`` (b, L, C) prior weights (level 0 = 4x4; NaN-padded where a
            level has fewer channels), ``theta`` (b, L) mean mask per level (eq. 11), ``latent`` (b, n_latent,
            num_style_feat) w+, ``v_dr`` (b, 4 * dre_num_feat). For ``fusion='catconv'`` masks/theta/v_dr are None.
        """
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.in_size or x.shape[3] != self.in_size:
            raise ValueError(f'PaniniNet expects (b, 3, {self.in_size}, {self.in_size}) input, got '
                             f'{tuple(x.shape)}; resize/align the face to {self.in_size}x{self.in_size} first.')
        if source not in ('both', 'ife', 'gpb'):
            raise ValueError(f"source={source!r}: use 'both', 'ife' or 'gpb'.")
        if self.dafi is None and (source != 'both' or torch.as_tensor(mask_bias).abs().sum() != 0):
            raise ValueError("source and mask_bias need fusion='dafi' (Cat-Conv has no masks).")
        b = x.shape[0]

        pre, feats = self.ife(x)  # IFE (eqs. 1-2): ~F_IFE per level
        latent = self.lce(pre[0])  # LCE (eq. 3): w+
        v_dr = self.degradation_representation(x)  # DRE (eq. 5): v_DR
        masks = None
        if self.dafi is not None:
            masks = self.dafi.masks(v_dr, self._mask_bias(mask_bias, v_dr))  # DAFI masks (eq. 6)
        # GPM with the eq. 7 fusion (on CPU one face at a time, where its fast forwards apply)
        faces = [slice(i, i + 1) for i in range(b)] if self.gpm.faces_one_by_one(latent) else [slice(None)]
        images = [self.gpm.synthesize(latent[f], fuse=self._fusion([feat[f] for feat in feats],
                                                                  None if masks is None else [m[f] for m in masks],
                                                                  source),
                                      randomize_noise=bool(randomize_noise)) for f in faces]
        image = images[0] if len(images) == 1 else torch.cat(images)
        if not return_extras:
            return image
        extras = {'masks': None, 'theta': None, 'latent': latent, 'v_dr': v_dr}
        if masks is not None:
            width = max(self.level_channels)
            stacked = masks[0].new_full((b, self.num_levels, width), float('nan'))
            for lvl, m in enumerate(masks):
                stacked[:, lvl, :m.shape[1]] = m
            extras['masks'] = stacked
            extras['theta'] = torch.stack([m.mean(dim=1) for m in masks], dim=1)
        return image, extras
