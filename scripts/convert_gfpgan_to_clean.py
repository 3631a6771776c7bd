"""Convert a trained GFP-GAN generator to GFP-GAN's clean architecture (``GFPGANv1Clean``), the one its released
v1.3/v1.4 models use and our ``-v gfpgan1.3`` family runs::

    python scripts/convert_gfpgan_to_clean.py experiments/train_GFPGANv1_512/models/net_g_latest.pth gfpgan_clean.pth
    python inference_panini.py -v gfpgan1.3 --model_path gfpgan_clean.pth -i photos -o results

The input is a ``net_g_*.pth`` of ``options/train_gfpgan_v1.yml`` (``params_ema``, else ``params``, and the
``arch`` our ``PaniniGFPGANModel`` records; for files without it give ``--from_type`` and, where they differ from
GFP-GAN's v1 options, ``--out_size`` / ``--channel_multiplier`` / ``--narrow`` / ``--num_style_feat`` /
``--lr_mlp``). The output is ``{'params_ema': GFPGANv1Clean state dict, 'arch': GFPGANv1Clean kwargs}``, written
atomically.

The weights map one to one (GFP-GAN's ``scripts/convert_gfpganv_to_clean.py`` does the same): the clean layers are
plain ``nn.Conv2d`` / ``nn.Linear`` / ``nn.LeakyReLU``, so the equalised-learning-rate scales (``1/sqrt(fan_in)``,
the mapping MLP's ``lr_mlp``) and the ``sqrt(2)`` gains of the fused / scaled leaky ReLUs move into the weights and
biases. That is exact for ``GFPGANBilinear`` (GFP-GAN's convertible variant of v1: same arguments, same keys,
bilinear resampling): the converted network computes the same function within float rounding. ``GFPGANv1``
resamples with StyleGAN2's ``[1, 3, 3, 1]`` blur kernels (U-Net down-sampling, decoder up-sampling) where the
clean architecture interpolates bilinearly, so no clean network equals it; it is refused unless ``--approximate``
(then the largest output difference on a random face is printed). To get a clean model train with
``network_g: type: GFPGANBilinear``; to run a trained ``GFPGANv1`` as it is, no conversion is needed:
``-v gfpgan1.3 --model_path net_g_latest.pth`` builds the architecture recorded in the file.
"""
import argparse
import math
import os.path as osp
import sys
from collections import OrderedDict

import torch

import panininet  # noqa: F401  (compat before basicsr / gfpgan)
from panininet.atomic import torch_save_atomic
from panininet.weights.checkpoint import load_checkpoint_file, pick_params

# GFP-GAN's v1 training options (options/train_gfpgan_v1.yml, network_g) for files that do not record ``arch``
V1_ARCH = dict(out_size=512, num_style_feat=512, channel_multiplier=1, num_mlp=8, lr_mlp=0.01, input_is_latent=True,
               different_w=True, narrow=1, sft_half=True)
# GFPGANv1Clean arguments that exist on the trained archs
CLEAN_ARGS = ('out_size', 'num_style_feat', 'channel_multiplier', 'num_mlp', 'input_is_latent', 'different_w',
              'narrow', 'sft_half')
SQRT2 = math.sqrt(2)
# trained type -> whether the clean architecture computes the same function
CONVERTIBLE = {'GFPGANBilinear': True, 'GFPGANv1': False}


def _fan_in(w):
    return w[0].numel()  # (c_out, c_in, k, k) -> c_in * k * k; (c_out, c_in) -> c_in


def _decoder(key, v, lr_mlp):
    """Clean name and value of a ``stylegan_decoder.*`` entry (key without that prefix)."""
    parts = key.split('.')
    if parts[0] == 'style_mlp':  # EqualLinear + fused leaky ReLU at odd indices 1..n -> Linear at 1, 3, ..., 2n - 1
        i, var = int(parts[1]), parts[2]
        gain = lr_mlp * SQRT2 / (math.sqrt(_fan_in(v)) if var == 'weight' else 1)
        return f'style_mlp.{2 * i - 1}.{var}', v * gain
    if 'modulation' in parts:  # EqualLinear, lr_mul 1, no activation
        return key, v / math.sqrt(_fan_in(v)) if parts[-1] == 'weight' else v
    if parts[-2:] == ['modulated_conv', 'weight']:  # (1, c_out, c_in, k, k)
        return key, v / math.sqrt(v[0, 0].numel())
    if parts[0] in ('style_conv1', 'style_convs'):
        if parts[-2:] == ['activate', 'bias']:  # fused leaky ReLU's bias and sqrt(2) gain -> StyleConv.bias
            return '.'.join(parts[:-2] + ['bias']), (v * SQRT2).view(1, -1, 1, 1)
        if parts[-1] == 'weight':  # noise strength, before the same sqrt(2) gain
            return key, v * SQRT2
    return key, v  # constant input, noises, ToRGB biases


def _body(key, v):
    """Clean name and value of a U-Net / SFT entry."""
    parts = key.split('.')
    if parts[0] in ('conv_body_first', 'final_conv'):  # ConvLayer: EqualConv2d (0) + fused leaky ReLU bias (1)
        var = parts[-1]
        return f'{parts[0]}.{var}', v * SQRT2 / (math.sqrt(_fan_in(v)) if var == 'weight' else 1)
    if parts[0] in ('conv_body_down', 'conv_body_up'):
        block, layer, var = parts[1], parts[2], parts[-1]
        name = f'{parts[0]}.{block}.{layer}.{var}'
        scale = 1 / math.sqrt(_fan_in(v)) if var == 'weight' else 1
        if layer == 'conv1':  # its activation's sqrt(2) gain
            return name, v * scale * SQRT2
        if layer == 'skip':  # the block's (out + skip) / sqrt(2) and conv2's sqrt(2) gain cancel only for conv2
            return name, v * scale / SQRT2
        return name, v * scale
    if parts[0] == 'toRGB' or parts[0] == 'final_linear':
        return key, v / math.sqrt(_fan_in(v)) if parts[-1] == 'weight' else v
    if parts[0] in ('condition_scale', 'condition_shift'):  # EqualConv2d, ScaledLeakyReLU (gain sqrt(2)), EqualConv2d
        layer, var = parts[2], parts[3]
        scale = 1 / math.sqrt(_fan_in(v)) if var == 'weight' else 1
        return key, v * scale * (SQRT2 if layer == '0' else 1)
    raise KeyError(f'unexpected GFPGANv1 entry {key!r}')


def clean_state_dict(state_dict, lr_mlp=0.01):
    """GFPGANv1 / GFPGANBilinear weights -> GFPGANv1Clean weights.

    Args:
        state_dict (dict): Trained generator (GFP-GAN's key names, no ``module.`` prefix).
        lr_mlp (float): The mapping MLP's learning-rate multiplier of the trained network. Default: 0.01.

    Returns:
        OrderedDict: State dict for ``GFPGANv1Clean`` (float values in the input's dtype).
    """
    out = OrderedDict()
    for key, v in state_dict.items():
        prefix = 'stylegan_decoder.'
        if key.startswith(prefix):
            name, value = _decoder(key[len(prefix):], v, lr_mlp)
            out[prefix + name] = value
        else:
            name, value = _body(key, v)
            out[name] = value
    return out


def trained_arch(obj, overrides=None, src='<checkpoint>'):
    """The trained generator's ``type`` and arguments: the recorded ``arch``, else GFP-GAN's v1 options; then
    ``overrides`` (``from_type`` sets the type)."""
    arch = dict(V1_ARCH, type=None)
    recorded = obj.get('arch') if isinstance(obj, dict) else None
    arch.update(recorded or {})
    overrides = dict(overrides or {})
    if overrides.get('from_type'):
        arch['type'] = overrides.pop('from_type')
    arch.update({k: v for k, v in overrides.items() if v is not None})
    if arch['type'] not in CONVERTIBLE:
        raise ValueError(f'{src}: records no GFPGANv1 / GFPGANBilinear arch ({arch["type"]!r}); give --from_type '
                         'GFPGANBilinear (exact) or GFPGANv1 (approximate, with --approximate)')
    return arch


def convert_file(src, dst, overrides=None, approximate=False):
    """Convert ``src`` and write ``dst`` atomically.

    Args:
        src (str): ``net_g_*.pth`` of a GFPGANBilinear (exact) or GFPGANv1 (approximate) training.
        dst (str): Output file (not ``src``).
        overrides (dict | None): ``from_type`` and architecture arguments given on the command line.
        approximate (bool): Convert a GFPGANv1 although the clean network differs from it. Default: False.

    Returns:
        tuple[dict, float | None]: The written dict, and for GFPGANv1 the largest output difference (else None).
    """
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean
    if osp.abspath(src) == osp.abspath(dst):
        raise ValueError('the output path equals the input path; choose another output file')
    obj = load_checkpoint_file(src)
    state = pick_params(obj, src)
    if 'stylegan_decoder.constant_input.weight' not in state or 'conv_body_first.0.weight' not in state:
        raise ValueError(f'{src}: not a GFPGANv1 generator (no stylegan_decoder.* / conv_body_first.0.* entries); '
                         'give a net_g_*.pth of options/train_gfpgan_v1.yml')
    arch = trained_arch(obj, overrides, src)
    if not CONVERTIBLE[arch['type']] and not approximate:
        raise ValueError(f'{src} is a GFPGANv1, which resamples with blur kernels where GFPGANv1Clean interpolates '
                         'bilinearly: no clean network equals it. Run it as it is (-v gfpgan1.3 --model_path '
                         f'{src}), train with network_g type GFPGANBilinear for an exact conversion, or give '
                         '--approximate')
    clean_arch = {k: arch[k] for k in CLEAN_ARGS}
    net = GFPGANv1Clean(**clean_arch, decoder_load_path=None, fix_decoder=False)
    try:
        net.load_state_dict(clean_state_dict(state, arch['lr_mlp']), strict=True)
    except RuntimeError as err:
        raise ValueError(f'{src}: does not fit GFPGANv1Clean{clean_arch} ({str(err).splitlines()[1].strip()}); '
                         'give the training arguments (--out_size, --channel_multiplier, --narrow, ...)') from None
    out = {'params_ema': net.state_dict(), 'arch': dict(clean_arch, type='GFPGANv1Clean')}
    diff = None if CONVERTIBLE[arch['type']] else max_difference(state, arch, net)
    torch_save_atomic(out, dst)
    return out, diff


def max_difference(state, arch, clean_net, seed=0):
    """Largest |trained - converted| output on a random face with the same fixed noise (both in [-1, 1] scale)."""
    from basicsr.utils.registry import ARCH_REGISTRY
    trained = ARCH_REGISTRY.get(arch['type'])(
        **{k: v for k, v in arch.items() if k != 'type'}, decoder_load_path=None, fix_decoder=False)
    trained.load_state_dict(state, strict=True)
    x = torch.rand(1, 3, arch['out_size'], arch['out_size'], generator=torch.Generator().manual_seed(seed)) * 2 - 1
    with torch.no_grad():
        a = trained.eval()(x, return_rgb=False, randomize_noise=False)[0]
        b = clean_net.eval()(x, return_rgb=False, randomize_noise=False)[0]
    return (a - b).abs().max().item()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('input', help='net_g_*.pth of a GFPGANv1 training (options/train_gfpgan_v1.yml)')
    p.add_argument('output', help='GFPGANv1Clean file to write (params_ema + arch)')
    for name, kind in (('out_size', int), ('num_style_feat', int), ('channel_multiplier', int), ('narrow', float),
                       ('lr_mlp', float)):
        p.add_argument(f'--{name}', type=kind, help='only for files without a recorded arch (default: GFP-GAN v1)')
    p.add_argument('--from_type', choices=sorted(CONVERTIBLE), help='trained arch, for files that do not record it')
    p.add_argument('--approximate', action='store_true', help='convert a GFPGANv1 anyway (prints the difference)')
    args = p.parse_args(argv)
    overrides = {k: getattr(args, k) for k in ('from_type', 'out_size', 'num_style_feat', 'channel_multiplier',
                                               'narrow', 'lr_mlp')}
    try:
        out, diff = convert_file(args.input, args.output, overrides, approximate=args.approximate)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(f'wrote {args.output}: GFPGANv1Clean {out["arch"]}')
    if diff is not None:
        print(f'approximate: largest output difference, trained GFPGANv1 vs converted (random face in [-1, 1], '
              f'fixed noise): {diff:.3g}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
