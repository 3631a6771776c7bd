"""The GAN prior module (GPM): BasicSR's StyleGAN2 generator driving its own synthesis loop, fusion as a callback.

:class:`GPM` subclasses BasicSR's :class:`~basicsr.archs.stylegan2_arch.StyleGAN2Generator` (as GFPGAN's
``StyleGAN2GeneratorCSFT`` does), so its modules, their names and state-dict keys are BasicSR's (``style_mlp``,
``constant_input``, ``style_conv1``, ``to_rgb1``, ``style_convs``, ``to_rgbs``, ``noises``) and its ops are BasicSR's
(the CUDA kernels when compiled). What it adds: the FIR kernels as state-dict buffers, and :meth:`GPM.synthesize`,
the synthesis loop from a w+ code with two hooks (see :func:`synthesis_loop`) through which a restoration network
puts its encoder features into the prior.

The loop itself is :func:`synthesis_loop`, a function over any module with those five attribute names, so a prior
whose style blocks have other widths (MMRB-Net's concatenated noise branches) runs the same loop.

On CPU, for one face without autograd, the GPM's style convs and ToRGBs run :class:`StyleConvCPU` /
:class:`ToRGBCPU` forwards (BasicSR's modules, same parameters and keys): the modulated convolution as
modulate-the-activations (:func:`modulated_conv_cpu`: the input scaled by the style, the stored weight, the
demodulation applied to the output), in channels_last (oneDNN's faster kernels; BasicSR's grouped-conv reshape allows
only NCHW), and demodulation, noise, bias, leaky ReLU and gain in place on the conv output instead of a fresh
full-size tensor per step. The same products as BasicSR's, regrouped (~1e-7 relative). Under CPU bf16 autocast the
same forwards keep the features in bfloat16 between layers (the convolutions, the FIR smoothing, noise, bias and
activation in bf16) and the style modulation, the demodulation sums and the RGB image in float32.
"""
import torch
from basicsr.archs.stylegan2_arch import StyleConv, StyleGAN2Generator, ToRGB, UpFirDnSmooth, UpFirDnUpsample
from torch.nn import functional as F

from panininet.platform.native_ops import (
    cached_winograd_weight,
    conv3x3_winograd,
    cpu_inference_dtype,
    upfirdn2d_fast,
    winograd_tile,
    winograd_weight,
)


def stylegan2_channels(channel_multiplier=2, narrow=1.0):
    """StyleGAN2's channel width per resolution, read from BasicSR's generator (one table, BasicSR's).

    Args:
        channel_multiplier (int): StyleGAN2 channel multiplier. Default: 2.
        narrow (float): Channel narrowing ratio. Default: 1.0.

    Returns:
        dict[int, int]: resolution (4 .. 1024) -> channels.
    """
    with torch.device('meta'):  # nothing is allocated
        gen = StyleGAN2Generator(8, num_style_feat=1, num_mlp=0, channel_multiplier=channel_multiplier, narrow=narrow)
    return {int(res): ch for res, ch in gen.channels.items()}


def synthesis_loop(gen, latent, noise=None, fuse=None):
    """The StyleGAN2 synthesis loop over a generator's modules, with a fusion hook before each up-sampling conv.

    ``out = constant_input``; ``out = style_conv1(out)``; ``skip = to_rgb1(out)``; then for each level
    ``k = 0 .. L - 1`` (level k's features are ``4 * 2^k`` pixels wide): ``out = fuse(k, out)``;
    ``out = style_convs[2k](out)`` (up-sampling to ``8 * 2^k``); ``out = style_convs[2k + 1](out)``;
    ``skip = to_rgbs[k](out, skip)``. Every module is called (``module(...)``), so forward hooks on them fire.

    The two hooks:

    * ``fuse(level, features) -> features``: called with the level index and the output of the previous style
      block (``style_conv1`` for level 0), i.e. the features just before the up-sampling conv; it returns the
      features that conv receives, of the same shape. Panini-Net's DAFI (eq. 7) and the Cat-Conv ablation are such
      callbacks; a network that concatenates its decoder features with each style block's output and projects back
      (GPEN's style) is one too. Return ``features`` unchanged for a level with nothing to fuse.
    * ``noise``: what each style block receives as its ``noise`` argument, one entry per block
      (``style_conv1`` first, then ``style_convs`` in order). BasicSR's blocks add it (``None``: fresh random
      noise); blocks that concatenate it (MMRB-Net's noise branches) take features of the block's width here.

    Args:
        gen (nn.Module): Has ``constant_input``, ``style_conv1``, ``to_rgb1``, ``style_convs`` (two per level) and
            ``to_rgbs`` (one per level), called as BasicSR's: ``conv(x, style, noise=n)``, ``to_rgb(x, style, skip)``.
        latent (Tensor): w+ (b, n_latent, num_style_feat) with ``n_latent >= 2 * L + 2`` (layer ``i`` uses code
            ``i``; each ToRGB the code after its block's), or one w (b, num_style_feat) for every layer.
        noise (list | None): One entry per style block (``1 + 2 * L``). Default: None (``None`` for every block).
        fuse (callable | None): ``fuse(level, features) -> features``. Default: None (no fusion: plain StyleGAN2).

    Returns:
        Tensor: The image, (b, 3, 4 * 2^L, 4 * 2^L) (RGB skip sum, unclamped).
    """
    num_levels = len(gen.to_rgbs)
    if noise is None:
        noise = [None] * (1 + 2 * num_levels)
    elif len(noise) != 1 + 2 * num_levels:
        raise ValueError(f'{len(noise)} noise entries given; the generator has {1 + 2 * num_levels} style blocks.')
    if latent.ndim == 2:  # one w for every layer
        latent = latent.unsqueeze(1).expand(-1, 2 * num_levels + 2, -1)
    if latent.shape[1] < 2 * num_levels + 2:
        raise ValueError(f'latent has {latent.shape[1]} codes; the generator needs {2 * num_levels + 2}.')
    out = gen.constant_input(latent.shape[0])
    out = gen.style_conv1(out, latent[:, 0], noise=noise[0])
    skip = gen.to_rgb1(out, latent[:, 1])
    i = 1
    for k, (conv1, conv2, to_rgb) in enumerate(zip(gen.style_convs[::2], gen.style_convs[1::2], gen.to_rgbs)):
        if fuse is not None:
            out = fuse(k, out)
        out = conv1(out, latent[:, i], noise=noise[i])
        out = conv2(out, latent[:, i + 1], noise=noise[i + 1])
        skip = to_rgb(out, latent[:, i + 2], skip)
        i += 2
    return skip


def _one_face_cpu_dtype(module, x):
    """The dtype of the CPU fast forward (one face, :func:`~panininet.platform.native_ops.cpu_inference_dtype`).

    None where it does not apply.
    """
    return cpu_inference_dtype(x, params=module.parameters()) if x.shape[0] == 1 else None


def _conv_weights(conv, dtype):
    """``conv``'s stored weight as the CPU forward convolves with it, and its squared sums over the kernel window.

    Cached on the module, keyed by the weight's storage, version and ``dtype``, so an inference run converts the
    weight (to ``dtype``, channels_last, transposed for an up-sampling conv) and sums its squares once, not per
    face; a changed or reloaded weight is seen.

    Returns:
        tuple[Tensor, Tensor]: (c_out, c_in, k, k) in ``dtype`` ((c_in, c_out, k, k) for 'upsample'),
        channels_last; and ``sum_{k, k} weight^2``, (c_out, c_in) float32.
    """
    weight = conv.weight
    key = (weight.data_ptr(), weight._version, dtype)
    cached = conv.__dict__.get('_cpu_weights')
    if cached is None or cached[0] != key:
        with torch.no_grad(), torch.autocast('cpu', enabled=False):
            w = weight[0].float()
            conv_w = w.transpose(0, 1) if conv.sample_mode == 'upsample' else w
            cached = (key, conv_w.to(dtype=dtype, memory_format=torch.channels_last), w.pow(2).sum([2, 3]))
        conv.__dict__['_cpu_weights'] = cached
    return cached[1], cached[2]


def _style(conv, style):
    """``conv.modulation(style)`` (EqualLinear), float32, as one ``addmm`` without a scaled copy of its weight."""
    lin = conv.modulation
    style = style.float()
    if lin.activation is not None or lin.bias is None:
        return lin(style)
    return torch.addmm(lin.bias * lin.lr_mul, style, lin.weight.t(), alpha=lin.scale)


def modulated_conv_cpu(conv, x, style, dtype=torch.float32, gain=1.0, bias=None):
    """``gain * (ModulatedConv2d(x, style) + bias)`` for one face on CPU, channels_last, in ``dtype``.

    BasicSR's ``ModulatedConv2d`` convolves with ``w * s * d`` (``s = scale * modulation(style)`` per input channel,
    ``d = rsqrt(sum_{c_in,k,k} (w s)^2 + eps)`` per output channel). The same products in one of two groupings,
    chosen per layer by which touches fewer values:

    * modulate-the-activations where the input has fewer values than the weight (low resolutions, 512 channels):
      ``conv(x * s, w) * (gain * d)`` with the stored weight (converted once, :func:`_conv_weights`) and ``d`` from
      its cached squared sums, ``bias / d`` given to the conv so that the scaling adds ``gain * bias``;
    * modulate-the-weight (high resolutions, few channels): ``conv(x, gain * w * s * d, gain * bias)``.

    A stride-1 conv with 256 or more channels runs as Winograd F(m x m, 3 x 3) in float32
    (:func:`~panininet.platform.native_ops.winograd_tile`; the stored weight's transform cached on the module). An
    up-sampling conv (stride-2 transposed conv + FIR smoothing) gets its bias after the smoothing: as the smoothing's
    depthwise-conv bias when the modulation is in the weight (the high resolutions: no pass of its own), else after
    the demodulation scaling. The style, its modulation and the demodulation sums are float32 (also under CPU bf16
    autocast); the convolution runs in ``dtype`` on a channels_last input, which oneDNN runs fastest and BasicSR's
    ``(1, b * c, h, w)`` grouped-conv view does not allow.

    Args:
        conv (ModulatedConv2d): BasicSR's module, ``sample_mode`` None or 'upsample'.
        x (Tensor): (1, c_in, h, w).
        style (Tensor): (1, num_style_feat).
        dtype (torch.dtype): Of the convolution and its output: float32, or bfloat16. Default: float32.
        gain (float): Output gain (> 0). Default: 1.
        bias (Tensor | None): (c_out,), added before the gain. Default: None.

    Returns:
        Tensor: (1, c_out, h', w'), channels_last, ``dtype``.
    """
    weight, weight_sq = _conv_weights(conv, dtype)
    upsample = conv.sample_mode == 'upsample'
    with torch.autocast('cpu', enabled=False):
        s = _style(conv, style).view(-1) * conv.scale  # (c_in,)
        demod = torch.rsqrt(weight_sq @ s.square() + conv.eps) if conv.demodulate else None
        post = gain if demod is None else demod * gain  # what the conv output is still to be scaled by
        modulate_input = x[0].numel() < weight.numel()
        if not modulate_input:  # BasicSR's modulated (and demodulated) weight, gain folded in, rounded once
            w = conv.weight[0].float() * (s.view(1, -1, 1, 1) * gain)
            if demod is not None:
                w.mul_(demod.view(-1, 1, 1, 1))
            weight = (w.transpose(0, 1) if upsample else w).to(dtype=dtype, memory_format=torch.channels_last)
            post = None
        conv_bias = None
        if bias is not None and not upsample:
            conv_bias = (bias * gain if post is None else bias / demod if demod is not None else bias).to(dtype)
    x = x.to(dtype).contiguous(memory_format=torch.channels_last)
    if modulate_input:
        x = x * s.to(dtype).view(1, -1, 1, 1)
    if upsample:  # the FIR smoothing (UpFirDnSmooth: one depthwise conv) adds the bias, if it comes last
        smooth, up_bias = conv.smooth, None
        if bias is not None and post is None:
            with torch.autocast('cpu', enabled=False):
                up_bias = (bias * gain).to(dtype)
        (p0, p1), kernel = smooth.pad, smooth.kernel.to(dtype)
        out = upfirdn2d_fast(F.conv_transpose2d(x, weight, padding=0, stride=2), kernel, 1, 1, 1, 1, p0, p1, p0, p1,
                             bias=up_bias)
    elif tile := winograd_tile(x, weight, padding=conv.padding):  # 256-512 channels, float32: 1.2-2.5x faster
        u = cached_winograd_weight(conv, conv.weight[0], tile) if modulate_input else winograd_weight(weight, tile)
        out = conv3x3_winograd(x, u, conv_bias)
    else:
        out = F.conv2d(x, weight, conv_bias, padding=conv.padding)
    with torch.autocast('cpu', enabled=False):  # small operands cast to the output's dtype: a mixed-dtype in-place
        # op runs ~20x slower than a bf16 one
        if post is not None:
            out.mul_(post.to(dtype).view(1, -1, 1, 1) if torch.is_tensor(post) else post)
        if bias is not None and upsample and post is not None:
            out.add_((bias * gain).to(dtype).view(1, -1, 1, 1))
    return out


class StyleConvCPU(StyleConv):
    """BasicSR's ``StyleConv`` with a fast forward for one face on CPU without autograd (see the module docstring).

    Same arguments, parameters and keys; :class:`GPM` gives its style convs this class. Elsewhere (a batch, a GPU,
    training, random noise, a down-sampling conv) BasicSR's forward runs. Under CPU bf16 autocast the output is
    bfloat16.
    """

    def forward(self, x, style, noise=None):
        """``activate(modulated_conv(x, style) + weight * noise)`` (activate: bias, leaky ReLU, gain ``g``).

        As ``lrelu(g * (modulated_conv(x, style) + bias) + g * weight * noise)`` (``g * lrelu(y) = lrelu(g * y)``
        for ``g > 0``), the gain and bias folded into the convolution (:func:`modulated_conv_cpu`), the noise and
        the leaky ReLU applied in place.

        Args:
            x (Tensor): (b, c_in, h, w).
            style (Tensor): (b, num_style_feat).
            noise (Tensor | None): (b or 1, 1, h', w'); None: fresh random noise.

        Returns:
            Tensor: (b, c_out, h', w').
        """
        dtype = None if noise is None or self.modulated_conv.sample_mode == 'downsample' else \
            _one_face_cpu_dtype(self, x)
        if dtype is None:
            return super().forward(x, style, noise=noise)
        act = self.activate
        out = modulated_conv_cpu(self.modulated_conv, x, style, dtype, gain=act.scale, bias=act.bias)
        with torch.autocast('cpu', enabled=False):
            out.add_((self.weight * act.scale * noise).to(dtype))
        return F.leaky_relu_(out, act.negative_slope)


class ToRGBCPU(ToRGB):
    """BasicSR's ``ToRGB`` with a fast forward for one face on CPU without autograd (see the module docstring).

    Same arguments, parameters and keys; :class:`GPM` gives its ToRGBs this class. The image (the skip sum) is
    float32 also under CPU bf16 autocast: the 1x1 conv reads bf16 features, its output, the bias and the
    up-sampled skip are added in fp32.
    """

    def forward(self, x, style, skip=None):
        """``modulated_conv(x, style) + bias (+ upsample(skip))``.

        Args:
            x (Tensor): (b, c, h, w).
            style (Tensor): (b, num_style_feat).
            skip (Tensor | None): (b, 3, h / 2, w / 2) with up-sampling, else (b, 3, h, w).

        Returns:
            Tensor: (b, 3, h, w).
        """
        dtype = _one_face_cpu_dtype(self, x)
        if dtype is None:
            return super().forward(x, style, skip=skip)
        out = modulated_conv_cpu(self.modulated_conv, x, style, dtype).float()
        with torch.autocast('cpu', enabled=False):  # the RGB skip path in fp32
            out.add_(self.bias)
            if skip is not None:
                out.add_(self.upsample(skip.float()) if self.upsample else skip)
        return out


class GPM(StyleGAN2Generator):
    """GAN prior module: BasicSR's StyleGAN2 generator, FIR kernels as buffers, and a synthesis loop with a hook.

    Same arguments, modules and state-dict keys as BasicSR's ``StyleGAN2Generator`` plus the FIR kernels
    (``*.kernel``, see :func:`register_fir_kernels`), so BasicSR / MMGen StyleGAN2 files load into it
    (:meth:`load_prior`). BasicSR's ``forward`` (z or w -> image, mapping network, style mixing) is inherited
    unchanged; a restoration network calls :meth:`synthesize`.

    Args:
        out_size (int): Output size (power of two >= 8).
        num_style_feat (int): Style dimension. Default: 512.
        num_mlp (int): Mapping layers. Default: 8.
        channel_multiplier (int): Channel multiplier. Default: 2.
        resample_kernel (tuple[int]): FIR kernel. Default: (1, 3, 3, 1).
        lr_mlp (float): Mapping learning-rate multiplier. Default: 0.01.
        narrow (float): Channel narrowing ratio. Default: 1.0.
    """

    def __init__(self, out_size, num_style_feat=512, num_mlp=8, channel_multiplier=2, resample_kernel=(1, 3, 3, 1),
                 lr_mlp=0.01, narrow=1.0):
        super().__init__(out_size, num_style_feat=num_style_feat, num_mlp=num_mlp,
                         channel_multiplier=channel_multiplier, resample_kernel=resample_kernel, lr_mlp=lr_mlp,
                         narrow=narrow)
        register_fir_kernels(self)
        for module in self.modules():  # the CPU fast forwards; same modules, parameters and keys
            if type(module) is StyleConv:
                module.__class__ = StyleConvCPU
            elif type(module) is ToRGB:
                module.__class__ = ToRGBCPU

    @property
    def num_fusion_levels(self):
        """Number of levels of :meth:`synthesize` (resolutions 4 .. out_size / 2)."""
        return len(self.to_rgbs)

    def stored_noise(self):
        """The fixed noise buffers, one per style block (``noises.noise0`` ...)."""
        return [getattr(self.noises, f'noise{i}') for i in range(self.num_layers)]

    def synthesize(self, latent, fuse=None, randomize_noise=False):
        """Image from w+, with ``fuse`` called before each up-sampling conv (see :func:`synthesis_loop`).

        Args:
            latent (Tensor): w+ (b, 2 * log2(out_size) - 2, num_style_feat).
            fuse (callable | None): ``fuse(level, features) -> features``; level k features are
                (b, channels[4 * 2^k], 4 * 2^k, 4 * 2^k). Default: None.
            randomize_noise (bool): Fresh random noise instead of the stored buffers. Default: False.

        Returns:
            Tensor: (b, 3, out_size, out_size), unclamped.
        """
        noise = None if randomize_noise else self.stored_noise()
        return synthesis_loop(self, latent, noise=noise, fuse=fuse).contiguous()

    def faces_one_by_one(self, latent):
        """Whether a batch runs faster through :meth:`synthesize` one face at a time (CPU inference, batch > 1).

        The CPU fast forwards (:class:`StyleConvCPU`, :class:`ToRGBCPU`) take one face; measured on a
        2-core CPU (docs/performance.md) a batch of four costs 888 ms per face that way against 987 ms through
        BasicSR's grouped convs.

        Args:
            latent (Tensor): w+ (b, n_latent, num_style_feat).

        Returns:
            bool
        """
        return latent.shape[0] > 1 and _one_face_cpu_dtype(self, latent[:1]) is not None

    def load_prior(self, state_dict):
        """Load a BasicSR ``StyleGAN2Generator`` state dict (strict), keeping our FIR kernels if it lacks them.

        Args:
            state_dict (dict): e.g. :func:`panininet.weights.panini_checkpoint.extract_gpm_state` of a StyleGAN2
                checkpoint.
        """
        load_gpm_state(self, state_dict)


def fir_kernel_keys(gpm, prefix=''):
    """State-dict keys of the FIR kernels that :func:`register_fir_kernels` turned into buffers."""
    return [f'{prefix}{name}.kernel' for name, m in gpm.named_modules() if isinstance(m, (UpFirDnSmooth,
                                                                                           UpFirDnUpsample))]


def register_fir_kernels(gpm):
    """Turn the FIR kernels of BasicSR's StyleGAN2 up-sampling layers into buffers.

    BasicSR keeps ``kernel`` as a plain attribute: it is not in the state dict and does not follow ``.to()``.
    The official (MMGen) generator stores it, and a checkpoint's value is what its forward used. As buffers they
    are loaded, saved and moved with the module; BasicSR's forward reads ``self.kernel`` unchanged.

    Args:
        gpm (StyleGAN2Generator): Modified in place.
    """
    for m in gpm.modules():
        if isinstance(m, (UpFirDnSmooth, UpFirDnUpsample)) and 'kernel' not in m._buffers:
            kernel = m.kernel
            del m.kernel
            m.register_buffer('kernel', kernel.clone())


def load_gpm_state(gpm, state_dict):
    """Load a BasicSR StyleGAN2Generator state dict into the GPM (strict), keeping our FIR kernels if it lacks them.

    Args:
        gpm (StyleGAN2Generator): With FIR kernel buffers (see :func:`register_fir_kernels`).
        state_dict (dict): e.g. :func:`panininet.weights.panini_checkpoint.extract_gpm_state` of a BasicSR StyleGAN2
            checkpoint.
    """
    state_dict = dict(state_dict)
    own = gpm.state_dict()
    for key in fir_kernel_keys(gpm):
        state_dict.setdefault(key, own[key])
    gpm.load_state_dict(state_dict, strict=True)


__all__ = ['GPM', 'StyleConvCPU', 'ToRGBCPU', 'modulated_conv_cpu', 'synthesis_loop', 'fir_kernel_keys',
           'register_fir_kernels', 'load_gpm_state']
