"""Export a restoration network to ONNX (dynamic batch, ``mask_bias`` input, stored noise), for onnxruntime hosts.

    python scripts/export_onnx.py --model_path panini_mfr.pth -o panini_mfr.onnx            # -v mfr (default)
    python scripts/export_onnx.py -v sr16 --model_path panini_sr_latest.pth -o panini_sr16.onnx --check

``-v`` is a restoration family (``panininet/families``) whose network has an exporter
(``panininet/platform/onnx_export.py``:
PaniniNet, i.e. ``mfr`` and ``sr16``, and MMRB-Net, ``mmrb``); ``--model_path`` is read as that family reads
it: our weights file (``{'params_ema' | 'params': state dict, 'arch': {...}}``, the recorded architecture wins over
the variant's arguments) or an official Panini-Net checkpoint (converted once, cached in the weights root).

The ONNX model has the inputs ``input`` (batch, 3, S, S), RGB in [-1, 1], and, for DAFI PaniniNets, ``mask_bias``
(num_levels,) float32 (0 = the network as trained; the restorer maps ``-w`` to it), and the output ``output``
(batch, 3, out_size, out_size). The noise is the stored buffers (``randomize_noise=False``).

Opset 17 (``--opset``; onnxruntime >= 1.12), the TorchScript-based exporter (``torch.onnx.export(dynamo=False)``;
``--exporter dynamo`` uses torch's dynamo-based one, which needs the ``onnxscript`` package). The file is written
atomically; ``--check`` then runs it with onnxruntime (CPU) against PyTorch on a random batch of 2 and prints the
max abs difference. See ``panininet/platform/onnx_export.py`` for how the modulated convolutions are made exportable.
"""
import argparse
import os.path as osp
import sys

import panininet  # noqa: F401  (compat before basicsr)
from panininet.families import family_class, family_names
from panininet.platform.onnx_export import EXPORTERS, OPSET, export_onnx


def build_network(version, model_path):
    """The network of the restoration family ``version`` with the weights of ``model_path`` (eval mode, CPU)."""
    return family_class(version).from_file(version, model_path, device='cpu').net.eval()


def check(net, path, batch=2):
    """Max abs difference of onnxruntime (CPU) and PyTorch on a random (batch, 3, S, S) input, mask_bias 0.5."""
    import numpy as np
    import onnxruntime as ort
    import torch

    wrapper = EXPORTERS[type(net).__name__](net)[0].eval()  # the exported forward (stored noise)
    size = getattr(net, 'in_size', net.out_size)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    feeds, args = {'input': x.numpy()}, [x]
    if 'mask_bias' in {i.name for i in session.get_inputs()}:
        feeds['mask_bias'] = np.full(net.num_levels, 0.5, np.float32)
        args.append(torch.from_numpy(feeds['mask_bias']))
    with torch.no_grad():
        ref = wrapper(*args).numpy()
    return float(np.abs(session.run(['output'], feeds)[0] - ref).max())


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('-v', '--version', default='mfr',
                   help=f'restoration family: {", ".join(family_names())} (those with an exporter: '
                   f'networks {", ".join(EXPORTERS)})')
    p.add_argument('--model_path', required=True, help='weights file (ours or an official checkpoint)')
    p.add_argument('-o', '--output', required=True, help='ONNX file to write (.onnx)')
    p.add_argument('--opset', type=int, default=OPSET, help='ONNX opset (>= 14)')
    p.add_argument('--exporter', default='torchscript', choices=('torchscript', 'dynamo'),
                   help='torch.onnx exporter (dynamo needs the onnxscript package)')
    p.add_argument('--check', action='store_true', help='compare onnxruntime with PyTorch on a random batch of 2')
    return p.parse_args(argv)


def validate(args):
    """One line naming what is wrong with the arguments, or None."""
    if args.version not in family_names():
        return f'unknown -v {args.version!r}; choose one of {", ".join(family_names())}'
    if not osp.isfile(args.model_path):
        return f'--model_path {args.model_path}: no such file; give a weights file'
    if not args.output.endswith('.onnx'):
        return f'-o {args.output}: the output file must end in .onnx'
    if osp.isdir(args.output):
        return f'-o {args.output} is a folder; give a file name ending in .onnx'
    if osp.abspath(args.output) == osp.abspath(args.model_path):
        return '-o equals --model_path; choose another output file (inputs are never overwritten)'
    if args.opset < 14:
        return f'--opset {args.opset}: use 14 or later'
    if args.exporter == 'dynamo':
        try:
            import onnxscript  # noqa: F401
        except ImportError:
            return '--exporter dynamo needs the onnxscript package (pip install onnxscript), or use torchscript'
    try:
        import onnx  # noqa: F401
    except ImportError:
        return 'the onnx package is missing: pip install "panininet[onnx]"'
    return None


def main(argv=None):
    args = parse_args(argv)
    problem = validate(args)
    if problem:
        print(f'error: {problem}', file=sys.stderr)
        return 2
    try:
        net = build_network(args.version, args.model_path)
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f'error: --model_path {args.model_path}: cannot build -v {args.version} from it: {first}',
              file=sys.stderr)
        return 2
    if type(net).__name__ not in EXPORTERS:
        print(f'error: -v {args.version}: no ONNX exporter for {type(net).__name__} (exportable: '
              f'{", ".join(EXPORTERS)})', file=sys.stderr)
        return 2
    meta = export_onnx(net, args.output, opset=args.opset, exporter=args.exporter,
                       extra_meta={'variant': args.version, 'weights': osp.basename(args.model_path)})
    print(f'wrote {args.output}: {meta["family"]} {meta["in_size"]} -> {meta["out_size"]}, opset {args.opset}, '
          f'inputs {meta["inputs"]}')
    if args.check:
        print(f'onnxruntime vs PyTorch, batch 2: max abs diff {check(net, args.output):.2e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
