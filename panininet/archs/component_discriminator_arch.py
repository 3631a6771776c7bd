"""Local (facial-component) discriminator: one per eye and one for the mouth (MMRB-Net Sec. III-D, eq. 12).

The paper says only that "for each region, we build upon the same discriminator network". We use the VGG-style
patch discriminator of GFP-GAN's facial-component losses (the practice MMRB-Net cites, [15]), composed from
BasicSR's StyleGAN2 ``ConvLayer`` and with its width as an argument; at ``num_feat=64`` its layers and state-dict
keys are GFP-GAN's ``FacialComponentDiscriminator``'s, so GFP-GAN's released component discriminators load.
"""
from basicsr.archs.stylegan2_arch import ConvLayer
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn


@ARCH_REGISTRY.register()
class ComponentDiscriminator(nn.Module):
    """Patch discriminator of an eye or mouth crop.

    Five 3x3 convolutions with leaky ReLU (two of them downsample by 2 after StyleGAN2's blur), then a 3x3
    convolution to one logit per patch.

    Args:
        num_in_ch (int): Input channels. Default: 3.
        num_feat (int): Width of the first layer; later layers have 2x and 4x. Default: 64 (GFP-GAN's).
        resample_kernel (list[int]): StyleGAN2 blur kernel before the downsampling. Default: (1, 3, 3, 1).
    """

    def __init__(self, num_in_ch=3, num_feat=64, resample_kernel=(1, 3, 3, 1)):
        super().__init__()
        f = int(num_feat)
        kernel = tuple(resample_kernel)

        def conv(c_in, c_out, down=False, act=True):
            return ConvLayer(c_in, c_out, 3, downsample=down, resample_kernel=kernel, bias=True, activate=act)

        self.conv1 = conv(num_in_ch, f)
        self.conv2 = conv(f, 2 * f, down=True)
        self.conv3 = conv(2 * f, 2 * f)
        self.conv4 = conv(2 * f, 4 * f, down=True)
        self.conv5 = conv(4 * f, 4 * f)
        self.final_conv = conv(4 * f, 1, act=False)

    def forward(self, x):
        """Patch logits.

        Args:
            x (Tensor): Crops, (b, num_in_ch, h, w), RGB in [-1, 1].

        Returns:
            Tensor: (b, 1, h / 4, w / 4) logits (real > 0).
        """
        feat = self.conv3(self.conv2(self.conv1(x)))
        feat = self.conv5(self.conv4(feat))
        return self.final_conv(feat)
