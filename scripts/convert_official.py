"""Convert official Panini-Net checkpoints to panininet files.

Panini file (``panini_mfr_latest.pth`` / ``panini_sr_latest.pth``, MMEditing layout) ->
``{'params_ema': PaniniNet state dict, 'arch': PaniniNet kwargs}``::

    python scripts/convert_official.py panini_mfr_latest.pth experiments/pretrained_models/panini_mfr.pth

MoCo file of the UDRL pre-training (``moco_checkpoint_0199.pth.tar``) -> ``{'params': DegradationEncoder state
dict}`` (usable as ``dre_load_path``)::

    python scripts/convert_official.py --moco moco_checkpoint_0199.pth.tar experiments/pretrained_models/dre.pth

Files are read with ``torch.load(weights_only=True)``. Conversion is not required for inference or training
(our loaders convert official files on the fly), but a converted file is smaller (no discriminator, VGG,
optimizer) and states its architecture.
"""
import argparse
import os.path as osp
import sys

import panininet  # noqa: F401  (compat before basicsr)
from panininet.atomic import torch_save_atomic
from panininet.weights import official
from panininet.weights.checkpoint import load_checkpoint_file
from panininet.weights.panini_checkpoint import extract_dre_state


def convert_file(src, dst, moco=False):
    """Convert ``src`` (official Panini or MoCo checkpoint) and write ``dst``; returns the written dict."""
    if osp.abspath(src) == osp.abspath(dst):
        raise ValueError('output path equals input path; choose another output file')
    ckpt = load_checkpoint_file(src)
    if moco:
        if not official.is_official_moco_checkpoint(ckpt):
            raise ValueError(f'{src}: not an official MoCo checkpoint (no module.encoder_q.* keys)')
        out = {'params': extract_dre_state(ckpt, src)}
    else:
        if not official.is_official_panini_checkpoint(ckpt):
            raise ValueError(f'{src}: not an official Panini checkpoint (no generator.encoder.* keys); '
                             'use --moco for a MoCo file')
        state, arch = official.convert_official_checkpoint(ckpt)
        out = {'params_ema': state, 'arch': arch}
    torch_save_atomic(out, dst)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='official checkpoint (.pth / .pth.tar)')
    parser.add_argument('output', help='panininet checkpoint to write')
    parser.add_argument('--moco', action='store_true', help='input is the MoCo (UDRL) checkpoint: write the DRE')
    args = parser.parse_args(argv)
    try:
        out = convert_file(args.input, args.output, moco=args.moco)
    except (OSError, ValueError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    state = out.get('params_ema', out.get('params'))
    n = sum(v.numel() for v in state.values() if v.is_floating_point())
    print(f'wrote {args.output}: {len(state)} entries, {n:,} values' +
          (f", arch {out['arch']}" if 'arch' in out else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
