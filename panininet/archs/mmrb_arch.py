"""MMRB-Net (Hu et al., "Enhancing Quality of Pose-varied Face Restoration with Local Weak Feature Sensing and GAN
Prior", 2022) as a BasicSR arch, built from the parts the paper names.

* :class:`MMRB`, the mixed multi-path residual block (Sec. III-B, eqs. 4-10, Fig. 3).
* :class:`AsymmetricCodec` (Sec. III-A, eq. 1, Fig. 2): an MMRB encoder from the input down to 4x4, one more MMRB
  per scale than its decoder; the 4x4 features give the latent code Z; the decoder, with skip connections, rebuilds
  the features x_hat at every StyleGAN2 resolution (the "noise branches") and an RGB image at each scale (the
  multi-scale L1 targets).
* :class:`ConcatStyleGAN2`, the StyleGAN2 prior (eqs. 2-3): W = MLP(Z) through the mapping network, the learned
  constant C, and at every style block the decoder features x_hat_i concatenated with the block's modulated output
  (GPEN's ``isconcat``), composed from BasicSR's StyleGAN2 modules with the doubled input widths that needs.
* :class:`MMRBNet`, the registered network: ``Codec`` then ``Style``.

No public code of MMRB-Net exists. Where the paper is silent we chose, and each choice is said where it is made
(class docstrings) and collected in the README section "MMRB-Net".
"""
import math

import torch
from basicsr.archs.stylegan2_arch import (
    ConstantInput,
    EqualLinear,
    ModulatedConv2d,
    NormStyleCode,
    ToRGB,
)
from basicsr.ops.fused_act import FusedLeakyReLU
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from panininet.archs.gpm import stylegan2_channels, synthesis_loop
from panininet.weights import gpen_checkpoint as gpen
from panininet.weights.checkpoint import load_checkpoint_file


def _log2_size(value, name, minimum=8):
    if not isinstance(value, int) or value < minimum or value & (value - 1):
        raise ValueError(f'{name}={value!r} must be a power of two >= {minimum}.')
    return int(math.log2(value))


# ---------------------------------------------------------------------------------------------------------------------
# MMRB (Sec. III-B)
# ---------------------------------------------------------------------------------------------------------------------
class MMRB(nn.Module):
    """Mixed multi-path residual block (Sec. III-B, eqs. 4-10, Fig. 3).

    ``X_1, X_2 = Split(X_I)`` (eq. 4, two halves of the channels); ``P_1 = s(W_1 X_1)``, ``P_2 = s(W_2 X_2)``
    (eqs. 5-6, W_1 a 3x3 and W_2 a 5x5 conv); ``P'_1 = s(W_1 [P_1, P_2])``, ``P'_2 = s(W_2 [P_1, P_2])``
    (eqs. 7-8); ``P = s(W_3 [P'_1, P'_2])`` (eq. 9, W_3 a 1x1 conv); ``X_O = X_I + P`` (eq. 10). s is PReLU.

    Choices where the paper is silent:

    * The paper writes the same W_1 (W_2) in eqs. 5 and 7 (6 and 8), but their inputs differ in width (C/2 in eqs.
      5-6, C in eqs. 7-8), so one weight tensor cannot serve both: the symbol names the kernel size ("W_1, W_2, W_3
      indicate that the convolution kernel size ... are 3, 5 and 1"), and each use has its own conv.
    * Widths: eqs. 5-6 keep C/2 (the split is there to cut each branch's cost); eqs. 7-8 give C each, so the 1x1
      conv of eq. 9 reduces 2C to C, the "dimensionality reduction of 1x1 bottleneck layer" the text describes
      (MSRN's block [42], which MMRB adapts, widens the second stage the same way). With C/2 there it would not
      reduce anything.
    * PReLU is channel-wise (He et al. [43]'s main form), one per conv, as the equations put s after every conv,
      including the 1x1 of eq. 9. Convs have biases.

    Parameters: ``44.5 C^2 + 8 C`` (convs 9/4 C^2 + 25/4 C^2 + 9 C^2 + 25 C^2 + 2 C^2, biases 4 C, PReLU 4 C).

    Args:
        channels (int): C, even.
    """

    def __init__(self, channels):
        super().__init__()
        if channels < 2 or channels % 2:
            raise ValueError(f'MMRB needs an even number of channels (eq. 4 splits them in half), got {channels}.')
        half = channels // 2
        self.channels = channels
        self.conv3_1 = nn.Conv2d(half, half, 3, 1, 1)  # W_1 of eq. 5
        self.conv5_1 = nn.Conv2d(half, half, 5, 1, 2)  # W_2 of eq. 6
        self.conv3_2 = nn.Conv2d(channels, channels, 3, 1, 1)  # W_1 of eq. 7
        self.conv5_2 = nn.Conv2d(channels, channels, 5, 1, 2)  # W_2 of eq. 8
        self.conv1 = nn.Conv2d(2 * channels, channels, 1)  # W_3 of eq. 9
        self.act3_1 = nn.PReLU(half)
        self.act5_1 = nn.PReLU(half)
        self.act3_2 = nn.PReLU(channels)
        self.act5_2 = nn.PReLU(channels)
        self.act1 = nn.PReLU(channels)

    @staticmethod
    def num_parameters(channels):
        """Parameter count of ``MMRB(channels)``: ``44.5 C^2 + 8 C``."""
        return 89 * channels * channels // 2 + 8 * channels

    def forward(self, x):
        """Eqs. 4-10: (b, C, h, w) -> (b, C, h, w)."""
        x1, x2 = x.chunk(2, dim=1)  # eq. 4
        p1 = self.act3_1(self.conv3_1(x1))  # eq. 5
        p2 = self.act5_1(self.conv5_1(x2))  # eq. 6
        c1 = torch.cat([p1, p2], dim=1)
        q1 = self.act3_2(self.conv3_2(c1))  # eq. 7
        q2 = self.act5_2(self.conv5_2(c1))  # eq. 8
        p = self.act1(self.conv1(torch.cat([q1, q2], dim=1)))  # eq. 9
        return x + p  # eq. 10


def _mmrb_stack(channels, num):
    return nn.Sequential(*[MMRB(channels) for _ in range(num)])


# ---------------------------------------------------------------------------------------------------------------------
# Asymmetric codec (Sec. III-A)
# ---------------------------------------------------------------------------------------------------------------------
class MMRBEncoder(nn.Module):
    """Encoder of the asymmetric codec: MMRB layers at every scale from ``size`` down to 4x4.

    ``conv_first`` (3x3 conv, 3 -> C_size, PReLU), then per scale ``num_mmrb`` MMRBs (``stages``) and, except at
    4x4, a 3x3 stride-2 conv + PReLU to the next scale (``downs``). Choices (the paper gives none of them): widths =
    StyleGAN2's channels at each resolution (the decoder's must be, Sec. IV-B, and the skips add them); stride-2
    convs to go down (as GPEN's encoder; no blur); PReLU as in the MMRB.

    Args:
        size (int): Input size S (power of two >= 8).
        channels (dict[int, int]): Width per resolution.
        num_mmrb (int): MMRBs per scale.
    """

    def __init__(self, size, channels, num_mmrb):
        super().__init__()
        self.resolutions = [2**i for i in range(int(math.log2(size)), 1, -1)]  # S, S/2, ..., 4
        self.conv_first = nn.Sequential(nn.Conv2d(3, channels[size], 3, 1, 1), nn.PReLU(channels[size]))
        self.stages = nn.ModuleList([_mmrb_stack(channels[res], num_mmrb) for res in self.resolutions])
        self.downs = nn.ModuleList([
            nn.Sequential(nn.Conv2d(channels[res], channels[res // 2], 3, 2, 1), nn.PReLU(channels[res // 2]))
            for res in self.resolutions[:-1]
        ])

    def forward(self, x):
        """(b, 3, S, S) -> features per scale, 4x4 first: list of (b, C_r, r, r), r = 4, 8, ..., S."""
        feat = self.conv_first(x)
        feats = []
        for k, stage in enumerate(self.stages):
            feat = stage(feat)
            feats.append(feat)
            if k < len(self.downs):
                feat = self.downs[k](feat)
        return feats[::-1]


class MMRBDecoder(nn.Module):
    """Decoder of the asymmetric codec: features x_hat_r and an RGB image at every scale r = 4 .. S.

    At 4x4: ``num_mmrb`` MMRBs on the encoder's deepest features. At each larger scale: bilinear x2 up-sampling,
    3x3 conv + PReLU to C_r (``ups``), plus the encoder's features at r (the skip connection), then ``num_mmrb``
    MMRBs (``stages``). ``to_rgbs`` (1x1 convs) give the image at each scale. Choices: skips are added, as in
    GFP-GAN's U-Net (the paper cites GFP-GAN and GPEN for this part); bilinear + conv to go up; the RGB heads are
    plain 1x1 convs (GFP-GAN's ``toRGB``), one per scale including 4x4 ("for each resolution scale").

    Args:
        size (int): Output size S.
        channels (dict[int, int]): Width per resolution (StyleGAN2's: the noise branches' widths).
        num_mmrb (int): MMRBs per scale (0 allowed: then each scale is the up-sampling conv and the skip).
    """

    def __init__(self, size, channels, num_mmrb):
        super().__init__()
        self.resolutions = [2**i for i in range(2, int(math.log2(size)) + 1)]  # 4, 8, ..., S
        self.ups = nn.ModuleList([
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False),
                nn.Conv2d(channels[res // 2], channels[res], 3, 1, 1), nn.PReLU(channels[res]))
            for res in self.resolutions[1:]
        ])
        self.stages = nn.ModuleList([_mmrb_stack(channels[res], num_mmrb) for res in self.resolutions])
        self.to_rgbs = nn.ModuleList([nn.Conv2d(channels[res], 3, 1) for res in self.resolutions])

    def forward(self, skips):
        """Encoder features (4x4 first) -> (x_hat, rgbs), both lists 4x4 first: (b, C_r, r, r) and (b, 3, r, r)."""
        feats, rgbs = [], []
        feat = skips[0]
        for k, stage in enumerate(self.stages):
            if k:
                feat = self.ups[k - 1](feat) + skips[k]
            feat = stage(feat)
            feats.append(feat)
            rgbs.append(self.to_rgbs[k](feat))
        return feats, rgbs


class AsymmetricCodec(nn.Module):
    """The asymmetric codec of eq. 1: ``x_hat, Z = Codec(x)``.

    The encoder has one more MMRB per scale than the decoder (Sec. III-A: "the encoder needs to provide more
    natural and reliable face latent features for the generator"), by construction: ``num_mmrb_decoder + 1``.
    Z: the 4x4 encoder features, flattened, through one equalised linear layer with leaky ReLU (GPEN's
    ``final_linear``), one code of ``num_style_feat`` values ("consistent with the pre-trained StyleGAN2", Sec.
    IV-B), mapped to W by the prior's MLP (eq. 2).

    Args:
        size (int): Input and output size S.
        channels (dict[int, int]): Width per resolution.
        num_mmrb_decoder (int): MMRBs per decoder scale; the encoder has one more.
        num_style_feat (int): Length of Z.
    """

    def __init__(self, size, channels, num_mmrb_decoder, num_style_feat):
        super().__init__()
        if num_mmrb_decoder < 0:
            raise ValueError(f'num_mmrb_decoder={num_mmrb_decoder} must be >= 0.')
        self.encoder = MMRBEncoder(size, channels, num_mmrb_decoder + 1)
        self.decoder = MMRBDecoder(size, channels, num_mmrb_decoder)
        self.latent = EqualLinear(channels[4] * 16, num_style_feat, bias=True, activation='fused_lrelu')

    def forward(self, x):
        """Eq. 1.

        Args:
            x (Tensor): (b, 3, S, S).

        Returns:
            tuple[list[Tensor], Tensor, list[Tensor]]: x_hat (noise-branch features, 4x4 first, (b, C_r, r, r)),
            Z (b, num_style_feat), and the decoder's images (4x4 first, (b, 3, r, r)).
        """
        skips = self.encoder(x)
        z = self.latent(skips[0].flatten(1))
        feats, rgbs = self.decoder(skips)
        return feats, z, rgbs


# ---------------------------------------------------------------------------------------------------------------------
# StyleGAN2 prior with concatenated noise branches (eqs. 2-3)
# ---------------------------------------------------------------------------------------------------------------------
class ConcatStyleConv(nn.Module):
    """A style block whose noise input is concatenated, not added (eq. 3; GPEN's ``StyledConv(isconcat=True)``).

    ``act(cat([ModConv(y, w), noise_weight * x_hat]))``: BasicSR's ``ModulatedConv2d`` (C_in -> C_out), a learned
    scalar ``noise_weight`` (zero at initialisation, as GPEN's and StyleGAN2's noise strengths), and BasicSR's
    ``FusedLeakyReLU`` with a bias over all 2 C_out channels. The output has 2 C_out channels.

    Args:
        in_channels (int): Input channels (2 C of the previous block, or C_4 for the constant).
        out_channels (int): C_out, also the width of x_hat.
        num_style_feat (int): Length of w.
        sample_mode (str | None): 'upsample' or None.
        resample_kernel (tuple[int]): FIR kernel. Default: (1, 3, 3, 1).
    """

    def __init__(self, in_channels, out_channels, num_style_feat, sample_mode=None, resample_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(
            in_channels, out_channels, 3, num_style_feat, demodulate=True, sample_mode=sample_mode,
            resample_kernel=resample_kernel)
        self.noise_weight = nn.Parameter(torch.zeros(1))
        self.activate = FusedLeakyReLU(2 * out_channels)

    def forward(self, x, style, noise):
        """(b, C_in, h, w), w (b, num_style_feat), x_hat (b, C_out, h', w') -> (b, 2 C_out, h', w')."""
        out = self.modulated_conv(x, style)
        if noise.shape[1:] != out.shape[1:]:
            raise ValueError(f'noise branch of shape {tuple(noise.shape)} does not fit the style block output '
                             f'{tuple(out.shape)}')
        return self.activate(torch.cat([out, self.noise_weight * noise], dim=1))


class ConcatStyleGAN2(nn.Module):
    """StyleGAN2 prior with concatenated noise branches (eqs. 2-3), from BasicSR's StyleGAN2 modules.

    ``W = MLP(Z)`` (eq. 2: ``NormStyleCode`` + ``num_mlp`` equalised linear layers, BasicSR's ``style_mlp``),
    broadcast to every layer; the learned constant C (``ConstantInput``); per resolution r two
    :class:`ConcatStyleConv` (the first up-sampling) that both take x_hat_r, and a ``ToRGB`` on their 2 C_r
    channels with the skip up-sampling of StyleGAN2: ``y_{i+1} = Style(w, y_i, Concat[x_hat_i, y_hat_i])``
    (eq. 3). This is GPEN's ``Generator(isconcat=True)`` layout (GPEN-BFR-512's generator loads into it with
    :mod:`panininet.weights.gpen_checkpoint`). It runs through :func:`panininet.archs.gpm.synthesis_loop`, the
    synthesis loop PaniniNet's GPM uses too, with the decoder features x_hat as each block's ``noise`` entry.

    Args:
        out_size (int): Output size (power of two >= 8).
        num_style_feat (int): Style dimension. Default: 512.
        num_mlp (int): Mapping layers. Default: 8.
        channel_multiplier (int): StyleGAN2 channel multiplier. Default: 2.
        narrow (float): Channel narrowing ratio. Default: 1.0.
        lr_mlp (float): Mapping learning-rate multiplier. Default: 0.01.
        resample_kernel (tuple[int]): FIR kernel. Default: (1, 3, 3, 1).
    """

    def __init__(self, out_size, num_style_feat=512, num_mlp=8, channel_multiplier=2, narrow=1.0, lr_mlp=0.01,
                 resample_kernel=(1, 3, 3, 1)):
        super().__init__()
        log_size = _log2_size(out_size, 'out_size')
        channels = stylegan2_channels(channel_multiplier, narrow)
        self.out_size = out_size
        self.num_style_feat = num_style_feat
        self.resolutions = [2**i for i in range(2, log_size + 1)]
        self.style_mlp = nn.Sequential(NormStyleCode(), *[
            EqualLinear(num_style_feat, num_style_feat, bias=True, lr_mul=lr_mlp, activation='fused_lrelu')
            for _ in range(num_mlp)
        ])
        self.constant_input = ConstantInput(channels[4], size=4)
        self.style_conv1 = ConcatStyleConv(channels[4], channels[4], num_style_feat, None, resample_kernel)
        self.to_rgb1 = ToRGB(2 * channels[4], num_style_feat, upsample=False, resample_kernel=resample_kernel)
        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_channels = channels[4]
        for res in self.resolutions[1:]:
            out_channels = channels[res]
            self.style_convs.append(
                ConcatStyleConv(2 * in_channels, out_channels, num_style_feat, 'upsample', resample_kernel))
            self.style_convs.append(ConcatStyleConv(2 * out_channels, out_channels, num_style_feat, None,
                                                    resample_kernel))
            self.to_rgbs.append(ToRGB(2 * out_channels, num_style_feat, upsample=True, resample_kernel=resample_kernel))
            in_channels = out_channels
        self.num_mlp = num_mlp
        self.noise_channels = [channels[res] for res in self.resolutions]

    def load_gpen_state(self, state_dict, path='<checkpoint>'):
        """Load the StyleGAN2 of a GPEN ``FullGenerator`` state dict (see :mod:`panininet.weights.gpen_checkpoint`),
        strict.

        Raises:
            ValueError: The file's generator has another size, style width, mapping depth or channel widths.
        """
        cfg = gpen.gpen_generator_config(state_dict)
        widths = stylegan2_channels(cfg['channel_multiplier'], cfg['narrow'])
        mine = (self.out_size, self.num_style_feat, self.num_mlp, self.noise_channels)
        theirs = (cfg['out_size'], cfg['num_style_feat'], cfg['num_mlp'], [widths[r] for r in self.resolutions])
        if mine != theirs:
            raise ValueError(f'{path}: its GPEN generator has {cfg}; this prior has out_size {self.out_size}, '
                             f'num_style_feat {self.num_style_feat}, num_mlp {self.num_mlp}, widths '
                             f'{self.noise_channels}: build the network with the file\'s settings.')
        self.load_state_dict(gpen.gpen_generator_to_prior(state_dict, path), strict=True)

    def forward(self, z, noises, input_is_latent=False):
        """Eqs. 2-3.

        Args:
            z (Tensor): Z (b, num_style_feat), or W if ``input_is_latent``.
            noises (list[Tensor]): x_hat per resolution, 4x4 first: (b, C_r, r, r) for r = 4 .. out_size.
            input_is_latent (bool): ``z`` is already W (skip the MLP). Default: False.

        Returns:
            Tensor: (b, 3, out_size, out_size).
        """
        if len(noises) != len(self.resolutions):
            raise ValueError(f'{len(noises)} noise branches given; the prior has {len(self.resolutions)} '
                             f'resolutions ({self.resolutions})')
        w = z if input_is_latent else self.style_mlp(z)  # eq. 2
        # eq. 3 through the one StyleGAN2 synthesis loop: both blocks of a resolution take that resolution's x_hat
        per_block = [noises[0]] + [x_hat for x_hat in noises[1:] for _ in range(2)]
        return synthesis_loop(self, w, noise=per_block)


# ---------------------------------------------------------------------------------------------------------------------
# MMRBNet
# ---------------------------------------------------------------------------------------------------------------------
@ARCH_REGISTRY.register()
class MMRBNet(nn.Module):
    """MMRB-Net: asymmetric MMRB codec (eq. 1) + StyleGAN2 prior with concatenated noise branches (eqs. 2-3).

    Defaults are the paper's setting: 512 -> 512, GPEN-BFR-512's StyleGAN2 (style 512, 8 mapping layers, channel
    multiplier 2). The codec uses StyleGAN2's widths at every resolution. ``forward(x)`` returns the restored face;
    ``forward(x, return_rgb=True)`` also the decoder's image at every scale (4x4 first), the targets of the
    multi-scale L1 loss (as GFP-GAN's ``out_rgbs``).

    Choice where the paper is silent: one decoder MMRB per scale (so two in the encoder), the smallest count with
    MMRBs on both sides as Sec. III-A describes; ``num_mmrb_decoder: 0`` keeps MMRBs in the encoder only.

    Args:
        out_size (int): Input and output size (power of two >= 8). Default: 512.
        num_style_feat (int): StyleGAN2 style dimension (length of Z and W). Default: 512.
        num_mlp (int): StyleGAN2 mapping layers (the MLP of eq. 2). Default: 8.
        channel_multiplier (int): StyleGAN2 channel multiplier. Default: 2.
        narrow (float): Channel narrowing ratio (prior and codec). Default: 1.0.
        lr_mlp (float): Mapping learning-rate multiplier. Default: 0.01.
        num_mmrb_decoder (int): MMRBs per decoder scale; the encoder has one more. Default: 1.
        prior_load_path (str | None): GPEN generator file (``GPEN-BFR-512.pth``, or a GPEN training checkpoint's
            ``g_ema``) whose StyleGAN2 is loaded into the prior (Sec. IV-B). Default: None.
    """

    def __init__(self,
                 out_size=512,
                 num_style_feat=512,
                 num_mlp=8,
                 channel_multiplier=2,
                 narrow=1.0,
                 lr_mlp=0.01,
                 num_mmrb_decoder=1,
                 prior_load_path=None):
        super().__init__()
        _log2_size(out_size, 'out_size')
        self.out_size = out_size
        self.in_size = out_size
        channels = stylegan2_channels(channel_multiplier, narrow)
        odd = sorted({channels[r] for r in channels if r <= out_size and channels[r] % 2})
        if odd:
            raise ValueError(f'narrow={narrow} gives odd widths {odd}; the MMRB splits channels in half.')
        self.codec = AsymmetricCodec(out_size, channels, num_mmrb_decoder, num_style_feat)
        self.prior = ConcatStyleGAN2(out_size, num_style_feat, num_mlp, channel_multiplier, narrow, lr_mlp)
        if prior_load_path is not None:
            get_root_logger().info(f'MMRBNet: loading the StyleGAN2 prior from {prior_load_path}')
            sd = gpen.pick_gpen_generator(load_checkpoint_file(prior_load_path), prior_load_path)
            self.prior.load_gpen_state(sd, prior_load_path)

    def param_groups(self):
        """The parts the paper gives their own learning rates (Sec. IV-B).

        Returns:
            dict[str, list[nn.Parameter]]: ``codec`` (encoder, decoder, Z layer), ``prior`` (the StyleGAN2:
            mapping, constant, modulated convs, biases, ToRGBs) and ``noise`` (the noise-branch strengths
            ``noise_weight`` of every style block).
        """
        noise = [p for n, p in self.prior.named_parameters() if n.endswith('noise_weight')]
        prior = [p for n, p in self.prior.named_parameters() if not n.endswith('noise_weight')]
        return {'codec': list(self.codec.parameters()), 'prior': prior, 'noise': noise}

    def forward(self, x, return_rgb=False):
        """Restore faces.

        Args:
            x (Tensor): (b, 3, out_size, out_size), RGB in [-1, 1].
            return_rgb (bool): Also return the decoder's images. Default: False.

        Returns:
            Tensor | tuple[Tensor, list[Tensor]]: (b, 3, out_size, out_size), nominally [-1, 1], unclamped; with
            ``return_rgb`` also the decoder's images, 4x4 first, (b, 3, r, r) for r = 4 .. out_size.
        """
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.out_size or x.shape[3] != self.out_size:
            raise ValueError(f'MMRBNet expects (b, 3, {self.out_size}, {self.out_size}) input, got '
                             f'{tuple(x.shape)}; resize/align the face to {self.out_size}x{self.out_size} first.')
        feats, z, rgbs = self.codec(x)  # eq. 1
        image = self.prior(z, feats)  # eqs. 2-3
        return (image, rgbs) if return_rgb else image
