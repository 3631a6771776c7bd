"""Restore every face in photos and videos with Panini-Net (detect -> align -> restore -> paste back).

    python inference_panini.py -i photos/ -o results/
    python inference_panini.py -i clip.mp4 -o results/

Photos: writes ``cropped_faces/``, ``restored_faces/``, ``cmp/`` and ``restored_imgs/`` under ``-o`` (GFPGAN's
layout). Videos (mp4, mov, mkv, avi, webm, ...; needs PyAV: ``pip install "panininet[video]"``): writes
``restored_videos/NAME.mp4`` with every frame, the frame rate, the duration and the sound of the input.
A folder may mix both. Run with ``-h`` for every flag.
"""
import argparse
import glob
import os
import os.path as osp
import signal
import sys
import tempfile
import threading
import time
import warnings

import cv2
import numpy as np

import panininet  # noqa: F401  (compat before basicsr)
from panininet.families import BACKENDS, family_names, validate_weight
from panininet.pipeline.color import COLOR_FIX_METHODS
from panininet.pipeline.face_detection import DETECTORS
from panininet.pipeline.image_io import read_image, why_unreadable, write_image
from panininet.pipeline.restorer import PaniniRestorer
from panininet.platform.allocator import reuse_freed_memory
from panininet.weights.releases import REALESRGAN_X2, WeightsNotFoundError, resolve_release_file, weights_root

OUTPUT_SUBFOLDERS = ('cropped_faces', 'restored_faces', 'cmp', 'restored_imgs', 'restored_videos')


# exit status: every input restored / the run finished but some inputs were skipped (listed in the summary) /
# nothing was done (bad flag, input, output folder or weights file: one line on stderr says what to do)
EXIT_OK, EXIT_SKIPPED, EXIT_USAGE = 0, 1, 2
DEFAULT_MAX_OUTPUT_PIXELS = 200_000_000  # 200 MP, e.g. 17,300 x 11,500: about 0.6 GB for an 8-bit canvas


class UsageError(ValueError):
    """A flag, input or output the run cannot work with; ``str(err)`` is the one line for the user."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('-i', '--input', required=True, help='input image, video or folder (photos and videos may mix)')
    p.add_argument('-o', '--output', required=True, help='output folder')
    p.add_argument('-v', '--version', default='mfr', choices=family_names(),
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
                   help='face detector (dlib: HOG; dlib_cnn: MMOD CNN, also side and small faces, 25-100x slower; '
                        'both offline, no download)')
    p.add_argument('--dlib_upsample', type=int, default=1, help='upsampling passes of the dlib detectors')
    p.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda', 'mps'))
    p.add_argument('--weights_dir', default=None,
                   help=f'weights folder (default: ${{PANINI_WEIGHTS_DIR}}, else {weights_root(None)})')
    p.add_argument('--batch_size', type=int, default=4,
                   help='faces per network call; photos are read in groups of this size so faces of several photos '
                        'share a call')
    p.add_argument('--no_download', action='store_true', help='never download weights')
    p.add_argument('--no_memory_reuse', action='store_true',
                   help='CPU: let freed tensor memory go back to the system after each face (slower: page faults; '
                        'by default the process keeps and reuses it, README "Performance")')
    p.add_argument('--color_fix', default='none', choices=COLOR_FIX_METHODS,
                   help="give each restored face its input crop's low-frequency colour before pasting it back")
    p.add_argument('--max_output_pixels', type=float, default=DEFAULT_MAX_OUTPUT_PIXELS,
                   help='largest restored photo (width x height after -s); a larger one is skipped with a warning')
    p.add_argument('--no_smooth', action='store_true',
                   help='videos: restore every frame on its own (no face tracking, no landmark smoothing)')
    p.add_argument('--video_codec', default='libx264',
                   help='videos: FFmpeg encoder of the output (libx264: H.264 yuv420p in .mp4; a codec mp4 cannot '
                   'hold is written as .mkv)')
    p.add_argument('--video_crf', type=int, default=18,
                   help='videos: constant rate factor of libx264/libx265/libvpx-vp9/libsvtav1 (lower: better, bigger)')
    half = p.add_mutually_exclusive_group()
    half.add_argument('--fp16', action='store_true', help='network in fp16 autocast (GPU only)')
    half.add_argument('--bf16', action='store_true', help='network in bf16 autocast (GPU or CPU)')
    return p.parse_args(argv)


def list_inputs(path):
    """Files to process: the file itself, or the visible files and links of a folder (sorted)."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'-i {path}: no such file or folder.')
    # links are kept even when broken, so that a dangling one is reported rather than silently left out
    return sorted(f for f in glob.glob(osp.join(path, '*'))
                  if (osp.isfile(f) or osp.islink(f)) and not osp.basename(f).startswith('.'))


def check_args(args):
    """Refuse out-of-range flags before anything loads (raises UsageError naming the flag and its range)."""
    validate_weight(args.weight)  # -w in [0, 1]
    if not args.upscale > 0:
        raise UsageError(f'-s {args.upscale:g}: the upscale must be > 0 (e.g. -s 2).')
    if args.batch_size < 1:
        raise UsageError(f'--batch_size {args.batch_size}: give at least 1.')
    if args.bg_tile < 0:
        raise UsageError(f'--bg_tile {args.bg_tile}: give 0 (no tiles) or a tile size in pixels.')
    if args.dlib_upsample < 0:
        raise UsageError(f'--dlib_upsample {args.dlib_upsample}: give 0, 1 or 2.')
    if not args.max_output_pixels > 0:
        raise UsageError(f'--max_output_pixels {args.max_output_pixels:g}: give a positive number of pixels.')


def check_output(out_root, files):
    """Refuse an ``-o`` that is a file or holds inputs of this run, before anything is created (UsageError)."""
    if osp.exists(out_root) and not osp.isdir(out_root):
        raise UsageError(f'-o {out_root} is a file; give a folder (it is created if missing).')
    subfolders = {osp.join(out_root, sub) for sub in OUTPUT_SUBFOLDERS}
    inside = [f for f in files if osp.dirname(osp.abspath(f)) in subfolders]
    if inside:
        raise UsageError(f'{inside[0]} is in the output folder -o {out_root}, whose files this run writes; '
                         'choose another -o.')


def prepare_output(out_root):
    """Create ``-o`` and check that a file can be written in it (raises UsageError naming the reason)."""
    try:
        os.makedirs(out_root, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_root):
            pass
    except OSError as err:
        raise UsageError(f'-o {out_root} cannot be written ({err.strerror or err}); choose a folder you can write '
                         'to.') from None


def output_stems(files):
    """Name stem of each input's outputs: its file stem, or ``<stem>_<ext>`` when inputs of the run share a stem.

    ``a.png`` and ``a.jpg`` in one run write ``restored_faces/a_png_00.png`` and ``a_jpg_00.png`` (and
    ``restored_imgs/a_png.png``, ``a_jpg.jpg``), so neither replaces the other; a stem used once keeps GFPGAN's names.
    """
    stems = [osp.splitext(osp.basename(f))[0] for f in files]
    counts = {s: stems.count(s) for s in stems}
    return {f: s if counts[s] == 1 else f'{s}_{osp.splitext(f)[1].lstrip(".").lower()}' for f, s in zip(files, stems)}


def first_line(err):
    """``Type: first line of the message`` of an exception, for a one-line warning."""
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0]}' if text else type(err).__name__


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
    """Formats that cannot hold what the photo has: convert (with a warning) rather than fail.

    Only TIFF holds 32-bit float (float photos become 16 bits in PNG, 8 in the others, values clipped to [0, 1]);
    JPEG, WebP and BMP hold neither alpha nor 16 bits.
    """
    if np.issubdtype(img.dtype, np.floating) and ext not in ('tif', 'tiff'):
        depth = 16 if ext == 'png' else 8
        warnings.warn(f'{name}: {ext} cannot hold 32-bit float; writing {depth} bits (give a TIFF input and keep '
                      '--ext auto to keep them).', stacklevel=2)
        top = 65535 if depth == 16 else 255
        img = np.clip(np.round(img * top), 0, top).astype(np.uint16 if depth == 16 else np.uint8)
    if ext in ('jpg', 'jpeg', 'webp', 'bmp'):
        if img.dtype == np.uint16:
            warnings.warn(f'{name}: {ext} cannot hold 16 bits; writing 8 bits (use --ext png to keep them).',
                          stacklevel=2)
            img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
        if img.ndim == 3 and img.shape[2] == 4:
            warnings.warn(f'{name}: {ext} cannot hold alpha; dropping it (use --ext png to keep it).', stacklevel=2)
            img = np.ascontiguousarray(img[:, :, :3])
    return img


def build_restorer(args):
    """The PaniniRestorer the flags ask for; a weights file it cannot use raises UsageError with the reason."""
    try:
        return PaniniRestorer(
            model_path=args.model_path, upscale=args.upscale, version=args.version,
            bg_upsampler=build_bg_upsampler(args), device=args.device,
            detector=None if args.aligned else args.detector,
            weights_dir=args.weights_dir, batch_size=args.batch_size, allow_download=not args.no_download,
            dlib_upsample=args.dlib_upsample, precision='fp16' if args.fp16 else 'bf16' if args.bf16 else 'fp32',
            color_fix=args.color_fix, backend=args.backend)
    except (WeightsNotFoundError, ImportError, ValueError, FileNotFoundError):
        raise
    except (RuntimeError, OSError, EOFError, KeyError, AttributeError, TypeError) as err:
        # truncated or foreign files, pickles the safe loader refuses, state dicts of the wrong shapes
        where = args.model_path or f'the {args.version} release file'
        raise UsageError(f'{where} cannot be used as -v {args.version} weights ({first_line(err)}); give a '
                         'panininet or official checkpoint of that version (README, "Weights").') from None


def read_group(paths, args, skipped):
    """(path, image) of the readable photos of ``paths``; the others are warned about and added to ``skipped``."""
    group = []
    for path in paths:
        try:
            img = read_image(path)
        except OSError as err:
            warnings.warn(f'{path}: cannot be read ({err.strerror or err}); skipped.', stacklevel=2)
            skipped.append(osp.basename(path))
            continue
        if img is None:
            warnings.warn(f'{path}: {why_unreadable(path)}; skipped.', stacklevel=2)
            skipped.append(osp.basename(path))
            continue
        h, w = img.shape[:2]
        out_pixels = h * w * args.upscale ** 2
        if not args.aligned and out_pixels > args.max_output_pixels:
            warnings.warn(f'{path}: at -s {args.upscale:g} the output would be {w * args.upscale:.0f} x '
                          f'{h * args.upscale:.0f} = {out_pixels / 1e6:.0f} MP, over --max_output_pixels '
                          f'{args.max_output_pixels:.0f}; skipped (lower -s or raise --max_output_pixels).',
                          stacklevel=2)
            skipped.append(osp.basename(path))
            continue
        group.append((path, img))
    return group


def restore_group(restorer, group, args, skipped):
    """enhance_batch over ``group``; if it fails, each photo alone, so one bad photo costs only itself."""
    if not group:
        return []
    kwargs = dict(has_aligned=args.aligned, only_center_face=args.only_center_face, paste_back=True,
                  weight=args.weight)
    try:
        return list(zip(group, restorer.enhance_batch([img for _, img in group], **kwargs)))
    except Exception as err:  # noqa: BLE001  (reported, counted, skipped: the rest of the folder still runs)
        if len(group) == 1:
            warnings.warn(f'{group[0][0]}: restoring failed ({first_line(err)}); skipped.', stacklevel=2)
            skipped.append(osp.basename(group[0][0]))
            return []
    return [done for item in group for done in restore_group(restorer, [item], args, skipped)]


def output_targets(path, stem, result, args, out_root):
    """[(image, destination)] of one restored photo, in GFPGAN's layout."""
    cropped, restored, restored_img = result
    suffix = f'_{args.suffix}' if args.suffix else ''
    targets = []
    for idx, (crop, face) in enumerate(zip(cropped, restored)):
        targets.append((crop, osp.join(out_root, 'cropped_faces', f'{stem}_{idx:02d}.png')))
        targets.append((face, osp.join(out_root, 'restored_faces', f'{stem}_{idx:02d}{suffix}.png')))
        crop_big = cv2.resize(crop, face.shape[:2][::-1], interpolation=cv2.INTER_CUBIC)
        if crop_big.ndim != face.ndim:
            crop_big = crop_big.reshape(face.shape)
        targets.append((np.concatenate([crop_big, face], axis=1),
                        osp.join(out_root, 'cmp', f'{stem}_{idx:02d}.png')))
    if restored_img is not None:
        ext = output_ext(args, path)
        targets.append((fit_for_format(restored_img, ext, osp.basename(path)),
                        osp.join(out_root, 'restored_imgs', f'{stem}{suffix}.{ext}')))
    return targets


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm

    warnings.simplefilter('always')
    warnings.formatwarning = lambda message, category, *a, **k: f'{category.__name__}: {message}\n'

    out_root = osp.abspath(args.output)
    try:
        check_args(args)
        files = list_inputs(args.input)
        photos, videos = split_videos(files)
        if videos:
            check_video_args(args)
        check_output(out_root, files)
        restorer = build_restorer(args)  # before -o is created: a run that cannot start leaves nothing behind
        if restorer.device.type == 'cpu' and not args.no_memory_reuse:
            reuse_freed_memory()  # panininet.platform.allocator: no page faults per face on CPU
        prepare_output(out_root)
    except (WeightsNotFoundError, ImportError, ValueError, FileNotFoundError) as err:
        sys.stderr.write(f'Error: {err}\n')
        return EXIT_USAGE

    inputs_abs = {osp.abspath(f) for f in files}
    stems = output_stems(files)
    n_images = n_faces = 0
    skipped = []
    start = time.time()
    bar = tqdm(total=len(photos), desc='photos', unit='img', disable=not photos)
    # photos go in groups of --batch_size, so that the faces of several photos share network calls
    for first in range(0, len(photos), args.batch_size):
        paths = photos[first:first + args.batch_size]
        for (path, _), result in restore_group(restorer, read_group(paths, args, skipped), args, skipped):
            try:
                for image, dest in output_targets(path, stems[path], result, args, out_root):
                    if dest in inputs_abs:
                        raise OSError(f'{dest} is an input of this run; not overwriting it')
                    write_image(image, dest)
            except OSError as err:
                warnings.warn(f'{path}: writing its results failed ({first_line(err)}); skipped.', stacklevel=1)
                skipped.append(osp.basename(path))
                continue
            n_images += 1
            n_faces += len(result[1])
        bar.update(len(paths))
    bar.close()
    n_videos, n_frames, n_video_faces = restore_videos(args, restorer, videos, out_root, inputs_abs, stems, skipped)
    elapsed = time.time() - start
    video_part = f'{n_videos} video(s) ({n_frames} frames), ' if videos else ''
    print(f'Done: {n_images} photo(s), {video_part}{n_faces + n_video_faces} face(s) restored, {len(skipped)} file(s) '
          f'skipped{" (" + ", ".join(skipped) + ")" if skipped else ""}, {elapsed:.1f} s. Results in {out_root}')
    if skipped:
        return EXIT_SKIPPED if n_images or n_videos else EXIT_USAGE
    return EXIT_OK


# ----------------------------------------------------------------------------------------------------------- videos
def split_videos(files):
    """(photos, videos) of the input list: videos by their extension (panininet.pipeline.video.VIDEO_EXTENSIONS)."""
    from panininet.pipeline.video import is_video_file

    videos = {f for f in files if is_video_file(f)}
    return [f for f in files if f not in videos], [f for f in files if f in videos]


def check_video_args(args):
    """Refuse video flags that cannot work, before anything loads (UsageError / ImportError naming the fix)."""
    from panininet.pipeline.video import check_video_codec

    if args.aligned:
        raise UsageError('--aligned is for folders of aligned face crops; it does not apply to videos.')
    check_video_codec(args.video_codec)  # also raises ImportError with the install line when PyAV is missing


def video_output_path(args, out_root, stem):
    """restored_videos/<stem>[_suffix].mp4, or .mkv when mp4 cannot hold --video_codec."""
    suffix = f'_{args.suffix}' if args.suffix else ''
    ext = 'mp4' if args.video_codec in ('libx264', 'h264', 'libx265', 'hevc', 'mpeg4', 'libvpx-vp9', 'libsvtav1',
                                        'libaom-av1', 'av1', 'mjpeg', 'ffv1') else 'mkv'
    return osp.join(out_root, 'restored_videos', f'{stem}{suffix}.{ext}')


def restore_videos(args, restorer, videos, out_root, inputs_abs, stems, skipped):
    """Each clip through PaniniRestorer.enhance_video with a progress bar in frames; a clip that fails is warned
    about (one line), added to ``skipped``, and the next one runs.

    Returns:
        tuple: (clips done, frames, faces).
    """
    previous = None
    if videos and threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)  # kill: stop and remove the partial file, as Ctrl-C
    try:
        return _restore_each_video(args, restorer, videos, out_root, inputs_abs, stems, skipped)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _restore_each_video(args, restorer, videos, out_root, inputs_abs, stems, skipped):
    from tqdm import tqdm

    from panininet.pipeline.video import VideoError

    n_videos = n_frames = n_faces = 0
    for path in videos:
        name = osp.basename(path)
        dest = video_output_path(args, out_root, stems[path])
        with tqdm(desc=name, unit='frame', total=probe_frame_count(path)) as bar:
            try:
                if dest in inputs_abs:
                    raise OSError(f'{dest} is an input of this run; not overwriting it')
                summary = restorer.enhance_video(path, dest, only_center_face=args.only_center_face,
                                                 weight=args.weight, smooth=not args.no_smooth,
                                                 video_codec=args.video_codec, crf=args.video_crf,
                                                 progress=bar.update)
            except VideoError as err:  # names the file and the problem
                bar.close()
                warnings.warn(f'{err} Skipped.', stacklevel=1)
                skipped.append(name)
                continue
            except Exception as err:  # noqa: BLE001  (reported, counted, skipped: the other inputs still run)
                bar.close()
                warnings.warn(f'{path}: restoring the clip failed ({first_line(err)}); skipped.', stacklevel=1)
                skipped.append(name)
                continue
        n_videos, n_frames, n_faces = n_videos + 1, n_frames + summary.frames, n_faces + summary.faces
        audio = f', audio: {"; ".join(summary.audio)}' if summary.audio else ', no audio'
        print(f'{name}: {summary.frames} frames, {summary.faces} face(s), {summary.seconds:.1f} s '
              f'({summary.frames / max(summary.seconds, 1e-9):.2f} frames/s){audio} -> {dest}')
    return n_videos, n_frames, n_faces


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')


def probe_frame_count(path):
    """Frames the clip says it has (for the progress bar's ETA), or None when it does not say."""
    try:
        import av

        with av.open(path) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return stream.frames
            if container.duration and stream.average_rate:
                return int(round(container.duration / 1e6 * float(stream.average_rate)))
    except Exception:  # noqa: BLE001  (a bad clip is reported by enhance_video)
        return None
    return None


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.stderr.write('Interrupted: the clip being written was discarded (finished outputs are kept).\n')
        sys.exit(130)
