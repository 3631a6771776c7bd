"""Restore every face in photos with Panini-Net (detect -> align -> restore -> paste back), like inference_gfpgan.py.

    python inference_panini.py -i photos/ -o results/

Writes ``cropped_faces/``, ``restored_faces/``, ``cmp/`` and ``restored_imgs/`` under ``-o`` (GFPGAN's layout).
Run with ``-h`` for every flag.
"""
import argparse
import glob
import os.path as osp
import sys
import time
import warnings

import cv2
import numpy as np

import panininet  # noqa: F401  (compat before basicsr)
from panininet.face_detection import DETECTORS
from panininet.families import BACKENDS
from panininet.restorer import VERSIONS, PaniniRestorer, read_image, weight_to_mask_bias, write_image
from panininet.weights import REALESRGAN_X2, WeightsNotFoundError, resolve_release_file, weights_root


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('-i', '--input', required=True, help='input image or folder')
    p.add_argument('-o', '--output', required=True, help='output folder')
    p.add_argument('-v', '--version', default='mfr', choices=VERSIONS,
                   help='mfr: Panini-Net 512->1024 restoration; sr16: 16x face SR (64->1024); gfpgan1.3/1.4: '
                   "GFPGAN's released models (needs the gfpgan package)")
    p.add_argument('--model_path', default=None,
                   help='weights file (ours, or an official checkpoint: converted once and cached); '
                   'default: the release file in the weights folder, downloaded if missing')
    p.add_argument('--backend', default='pytorch', choices=tuple(BACKENDS),
                   help='onnxruntime: --model_path is an .onnx file written by scripts/export_onnx.py '
                   '(needs the [onnx] extra)')
    p.add_argument('-s', '--upscale', type=float, default=2, help='final upsampling scale of the whole photo')
    p.add_argument('--bg_upsampler', default='none', choices=('none', 'realesrgan'),
                   help='background upsampler (realesrgan: needs the realesrgan package; else Lanczos)')
    p.add_argument('--bg_tile', type=int, default=400, help='tile size of the background upsampler, 0: no tiles')
    p.add_argument('--suffix', default=None, help='suffix of the restored faces and photos')
    p.add_argument('--only_center_face', action='store_true', help='restore only the centre face')
    p.add_argument('--aligned', action='store_true', help='inputs are aligned faces (no detection, no paste back)')
    p.add_argument('--ext', default='auto', choices=('auto', 'jpg', 'png'),
                   help='format of restored_imgs: auto keeps the input extension')
    p.add_argument('-w', '--weight', type=float, default=0.5,
                   help='fidelity in [0, 1]: 1 keeps the most of the input, 0 takes the most from the GAN prior, '
                   '0.5 is the network as trained')
    p.add_argument('--detector', default='retinaface_resnet50', choices=DETECTORS,
                   help='face detector (dlib: offline, no download)')
    p.add_argument('--dlib_upsample', type=int, default=1, help='HOG upsampling passes of the dlib detector')
    p.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda', 'mps'))
    p.add_argument('--weights_dir', default=None,
                   help=f'weights folder (default: ${{PANINI_WEIGHTS_DIR}}, else {weights_root(None)})')
    p.add_argument('--batch_size', type=int, default=4,
                   help='faces per network call; photos are read in groups of this size so faces of several photos '
                        'share a call')
    p.add_argument('--no_download', action='store_true', help='never download weights')
    half = p.add_mutually_exclusive_group()
    half.add_argument('--fp16', action='store_true', help='network in fp16 autocast (GPU only)')
    half.add_argument('--bf16', action='store_true', help='network in bf16 autocast (GPU or CPU)')
    return p.parse_args(argv)


def list_inputs(path):
    """Files to process: the file itself, or the visible files of a folder (sorted)."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'-i {path}: no such file or folder.')
    return sorted(f for f in glob.glob(osp.join(path, '*')) if osp.isfile(f) and not osp.basename(f).startswith('.'))


def build_bg_upsampler(args):
    """Real-ESRGAN x2 (tiled) when asked for and available, else None (Lanczos) with a warning."""
    if args.bg_upsampler != 'realesrgan':
        return None
    try:
        from basicsr.archs.rrdbnet_arch import RRDBNet
        from realesrgan import RealESRGANer
    except ImportError:
        warnings.warn('--bg_upsampler realesrgan: the realesrgan package is not installed '
                      '(pip install --no-deps realesrgan); the background is resized with Lanczos.', stacklevel=2)
        return None
    try:
        path = resolve_release_file(REALESRGAN_X2, weights_root(args.weights_dir), not args.no_download,
                                    model_path_hint=False)
    except WeightsNotFoundError as err:
        warnings.warn(f'{err}\nThe background is resized with Lanczos.', stacklevel=2)
        return None
    import torch

    model = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=2)
    return RealESRGANer(scale=2, model_path=path, model=model, tile=args.bg_tile, tile_pad=10, pre_pad=0,
                        half=torch.cuda.is_available() and args.device in ('auto', 'cuda'))


def output_ext(args, in_path):
    if args.ext != 'auto':
        return args.ext
    ext = osp.splitext(in_path)[1].lower().lstrip('.')
    return 'jpg' if ext == 'jpeg' else ext if ext in ('png', 'jpg', 'bmp', 'tif', 'tiff', 'webp') else 'png'


def fit_for_format(img, ext, name):
    """JPEG holds neither alpha nor 16 bits: convert (with a warning) rather than fail."""
    if ext in ('jpg', 'jpeg', 'webp', 'bmp'):
        if img.dtype == np.uint16:
            warnings.warn(f'{name}: {ext} cannot hold 16 bits; writing 8 bits (use --ext png to keep them).',
                          stacklevel=2)
            img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
        if img.ndim == 3 and img.shape[2] == 4:
            warnings.warn(f'{name}: {ext} cannot hold alpha; dropping it (use --ext png to keep it).', stacklevel=2)
            img = np.ascontiguousarray(img[:, :, :3])
    return img


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm

    warnings.simplefilter('always')
    warnings.formatwarning = lambda message, category, *a, **k: f'{category.__name__}: {message}\n'

    try:
        weight_to_mask_bias(args.weight)  # validates -w before anything loads
        files = list_inputs(args.input)
        restorer = PaniniRestorer(
            model_path=args.model_path, upscale=args.upscale, version=args.version,
            bg_upsampler=build_bg_upsampler(args), device=args.device,
            detector=None if args.aligned else args.detector,
            weights_dir=args.weights_dir, batch_size=args.batch_size, allow_download=not args.no_download,
            dlib_upsample=args.dlib_upsample, precision='fp16' if args.fp16 else 'bf16' if args.bf16 else 'fp32',
            backend=args.backend)
    except (WeightsNotFoundError, ImportError, ValueError, FileNotFoundError) as err:
        sys.stderr.write(f'Error: {err}\n')
        return 2

    out_root = osp.abspath(args.output)
    inputs_abs = {osp.abspath(f) for f in files}
    suffix = f'_{args.suffix}' if args.suffix else ''
    n_images = n_faces = 0
    skipped = []
    start = time.time()
    bar = tqdm(total=len(files), desc='photos', unit='img')
    # photos go in groups of --batch_size, so that the faces of several photos share network calls
    for first in range(0, len(files), max(1, args.batch_size)):
        group = []
        for path in files[first:first + max(1, args.batch_size)]:
            img = read_image(path)
            if img is None:
                warnings.warn(f'{path}: not an image (or not readable); skipped.', stacklevel=1)
                skipped.append(osp.basename(path))
                bar.update(1)
                continue
            group.append((path, img))
        results = restorer.enhance_batch([img for _, img in group], has_aligned=args.aligned,
                                         only_center_face=args.only_center_face, paste_back=True, weight=args.weight)
        for (path, _), (cropped, restored, restored_img) in zip(group, results):
            name = osp.basename(path)
            basename = osp.splitext(name)[0]
            n_images += 1
            n_faces += len(restored)
            targets = []
            for idx, (crop, face) in enumerate(zip(cropped, restored)):
                targets.append((crop, osp.join(out_root, 'cropped_faces', f'{basename}_{idx:02d}.png')))
                targets.append((face, osp.join(out_root, 'restored_faces', f'{basename}_{idx:02d}{suffix}.png')))
                crop_big = cv2.resize(crop, face.shape[:2][::-1], interpolation=cv2.INTER_CUBIC)
                targets.append((np.concatenate([crop_big, face], axis=1),
                                osp.join(out_root, 'cmp', f'{basename}_{idx:02d}.png')))
            if restored_img is not None:
                ext = output_ext(args, path)
                targets.append((fit_for_format(restored_img, ext, name),
                                osp.join(out_root, 'restored_imgs', f'{basename}{suffix}.{ext}')))
            for image, dest in targets:
                if dest in inputs_abs:
                    bar.close()
                    sys.stderr.write(f'Error: {dest} is an input; refusing to overwrite it (choose another -o).\n')
                    return 2
                write_image(image, dest)
            bar.update(1)
    bar.close()
    elapsed = time.time() - start
    print(f'Done: {n_images} photo(s), {n_faces} face(s) restored, {len(skipped)} file(s) skipped'
          f'{" (" + ", ".join(skipped) + ")" if skipped else ""}, {elapsed:.1f} s. Results in {out_root}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
