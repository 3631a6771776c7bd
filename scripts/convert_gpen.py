"""Convert GPEN's released weights (https://github.com/yangxy/GPEN) to BasicSR / panininet files.

Discriminator (``GPEN-BFR-512-D.pth``, or a GPEN training checkpoint's ``d``) -> ``{'params': BasicSR
StyleGAN2Discriminator state dict, 'arch': its kwargs}``, usable as ``path.pretrain_network_d`` of a BasicSR YAML
(MMRB-Net fine-tunes it with FreezeD)::

    python scripts/convert_gpen.py GPEN-BFR-512-D.pth experiments/pretrained_models/gpen512_d.pth

Generator (``GPEN-BFR-512.pth``, or a training checkpoint's ``g_ema``) -> ``{'params_ema': GPENNet state dict,
'arch': GPENNet kwargs}`` (``-v gpen512 --model_path``; GPEN's own file works there too)::

    python scripts/convert_gpen.py GPEN-BFR-512.pth experiments/pretrained_models/gpen512.pth

The kind of file is recognised from its keys. Files are read with ``torch.load(weights_only=True)``. MMRB-Net's
``prior_load_path`` takes GPEN's generator file directly (no conversion needed).
"""
import argparse
import os.path as osp
import sys

import panininet  # noqa: F401  (compat before basicsr)
from panininet.atomic import torch_save_atomic
from panininet.weights import gpen_checkpoint as gpen
from panininet.weights.checkpoint import load_checkpoint_file


def convert_file(src, dst):
    """Convert ``src`` (GPEN generator or discriminator) and write ``dst``; returns the written dict."""
    if osp.abspath(src) == osp.abspath(dst):
        raise ValueError('output path equals input path; choose another output file')
    obj = load_checkpoint_file(src)
    try:
        sd = gpen.pick_gpen_discriminator(obj, src)
    except ValueError:
        sd = None
    if sd is not None:
        out = {'params': gpen.gpen_discriminator_to_basicsr(sd, src), 'arch': gpen.gpen_discriminator_config(sd)}
    else:
        try:
            sd = gpen.pick_gpen_generator(obj, src)
        except ValueError:
            raise ValueError(f'{src}: neither a GPEN generator (generator.input.input) nor a GPEN discriminator '
                             '(convs.0.0.weight, final_conv.0.weight); give GPEN-BFR-512.pth or '
                             'GPEN-BFR-512-D.pth') from None
        from panininet.archs.gpen_arch import GPENNet

        net, arch = GPENNet.from_gpen_state(sd, src)
        out = {'params_ema': net.state_dict(), 'arch': arch}
    torch_save_atomic(out, dst)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='GPEN file (GPEN-BFR-512.pth or GPEN-BFR-512-D.pth)')
    parser.add_argument('output', help='file to write')
    args = parser.parse_args(argv)
    try:
        out = convert_file(args.input, args.output)
    except (OSError, ValueError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    state = out.get('params_ema', out.get('params'))
    n = sum(v.numel() for v in state.values())
    kind = 'GPENNet' if 'params_ema' in out else 'StyleGAN2Discriminator'
    print(f'wrote {args.output}: {kind}, {len(state)} entries, {n:,} values, arch {out["arch"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
