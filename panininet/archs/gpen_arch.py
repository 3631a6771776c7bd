"""GPEN (Yang et al., "GAN Prior Embedded Network for Blind Face Restoration in the Wild", CVPR 2021) as a BasicSR
arch: GPEN's ``FullGenerator`` rebuilt from BasicSR's modules, so that GPEN-BFR-512 runs through our restorer
(``-v gpen512``) and MMRB-Net's prior can be compared with the network it comes from.

GPEN's encoder is a chain of StyleGAN2 discriminator convs (BasicSR's ``ConvLayer``): a 1x1 conv at full size,
then one blurred stride-2 3x3 conv per scale down to 4x4; its 4x4 features, flattened, give one latent code through
an equalised linear layer with leaky ReLU; the features of every scale are the noise inputs, concatenated in each
style block of the prior (:class:`~panininet.archs.mmrb_arch.ConcatStyleGAN2`, the same prior MMRB-Net uses).
Weights convert from GPEN's files with :mod:`panininet.weights.gpen_checkpoint`.
"""
import math

from basicsr.archs.stylegan2_arch import ConvLayer, EqualLinear
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from panininet.archs.gpm import stylegan2_channels
from panininet.archs.mmrb_arch import ConcatStyleGAN2
from panininet.weights import gpen_checkpoint as gpen
from panininet.weights.checkpoint import load_checkpoint_file


class GPENEncoder(nn.Module):
    """GPEN's encoder (``FullGenerator.ecd*`` and ``final_linear``).

    Args:
        size (int): Input size S.
        channels (dict[int, int]): StyleGAN2 widths per resolution.
        num_style_feat (int): Length of the latent code.
    """

    def __init__(self, size, channels, num_style_feat):
        super().__init__()
        resolutions = [2**i for i in range(int(math.log2(size)), 1, -1)]  # S, ..., 4
        convs = [ConvLayer(3, channels[size], 1)]
        for res in resolutions[1:]:
            convs.append(ConvLayer(channels[res * 2], channels[res], 3, downsample=True))
        self.convs = nn.ModuleList(convs)
        self.final_linear = EqualLinear(channels[4] * 16, num_style_feat, bias=True, activation='fused_lrelu')

    def forward(self, x):
        """(b, 3, S, S) -> (features per scale, 4x4 first, (b, C_r, r, r); latent code (b, num_style_feat))."""
        feats = []
        for conv in self.convs:
            x = conv(x)
            feats.append(x)
        return feats[::-1], self.final_linear(x.flatten(1))


@ARCH_REGISTRY.register()
class GPENNet(nn.Module):
    """GPEN's ``FullGenerator`` (BFR setting, ``isconcat=True``, in size = out size), from BasicSR's modules.

    Defaults are GPEN-BFR-512's: ``FullGenerator(512, 512, 8, channel_multiplier=2, narrow=1)``.

    Args:
        out_size (int): Input and output size. Default: 512.
        num_style_feat (int): Style dimension. Default: 512.
        num_mlp (int): Mapping layers. Default: 8.
        channel_multiplier (int): StyleGAN2 channel multiplier. Default: 2.
        narrow (float): Channel narrowing ratio. Default: 1.0.
        lr_mlp (float): Mapping learning-rate multiplier. Default: 0.01.
        gpen_load_path (str | None): A GPEN generator file (``GPEN-BFR-512.pth``) loaded whole. Default: None.
    """

    def __init__(self, out_size=512, num_style_feat=512, num_mlp=8, channel_multiplier=2, narrow=1.0, lr_mlp=0.01,
                 gpen_load_path=None):
        super().__init__()
        self.out_size = out_size
        self.in_size = out_size
        self.prior = ConcatStyleGAN2(out_size, num_style_feat, num_mlp, channel_multiplier, narrow, lr_mlp)
        self.encoder = GPENEncoder(out_size, stylegan2_channels(channel_multiplier, narrow), num_style_feat)
        if gpen_load_path is not None:
            get_root_logger().info(f'GPENNet: loading {gpen_load_path}')
            self.load_gpen_state(load_checkpoint_file(gpen_load_path), gpen_load_path)

    def load_gpen_state(self, obj, path='<checkpoint>'):
        """Load a GPEN ``FullGenerator`` state dict (bare, or a training checkpoint's ``g_ema``), strict.

        Raises:
            ValueError: Not a GPEN generator, or made for another size / width than this network.
        """
        sd = gpen.pick_gpen_generator(obj, path)
        self.prior.load_gpen_state(sd, path)
        self.encoder.load_state_dict(gpen.gpen_encoder_to_ours(sd, path), strict=True)

    @classmethod
    def from_gpen_state(cls, state_dict, path='<checkpoint>'):
        """A GPENNet of the size a GPEN ``FullGenerator`` state dict has, with its weights (strict).

        Args:
            state_dict (dict): GPEN's generator state dict (as
                :func:`panininet.weights.gpen_checkpoint.pick_gpen_generator` gives).
            path (str): Named in errors. Default: '<checkpoint>'.

        Returns:
            tuple[GPENNet, dict]: The network and its constructor arguments (``gpen_generator_config``).
        """
        arch = gpen.gpen_generator_config(state_dict)
        net = cls(**arch)
        net.load_gpen_state(state_dict, path)
        return net, arch

    def forward(self, x):
        """(b, 3, S, S) RGB in [-1, 1] -> (b, 3, S, S), nominally [-1, 1], unclamped."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.out_size or x.shape[3] != self.out_size:
            raise ValueError(f'GPENNet expects (b, 3, {self.out_size}, {self.out_size}) input, got {tuple(x.shape)}')
        feats, z = self.encoder(x)
        return self.prior(z, feats)
