"""Restore every face in photos and videos with Panini-Net (detect -> align -> restore -> paste back).

    python inference_panini.py -i photos/ -o results/
    python inference_panini.py -i clip.mp4 -o results/

Photos: writes ``cropped_faces/``, ``restored_faces/``, ``cmp/`` and ``restored_imgs/`` under ``-o`` (GFPGAN's
layout). Videos (mp4, mov, mkv, avi, webm, ...; needs PyAV: ``pip install "panininet[video]"``): writes
``restored_videos/NAME.mp4`` with every frame, the frame rate, the duration and the sound of the input.
A folder may mix both. Run with ``-h`` for every flag.
"""
import argparse
import functools
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
from panininet.archive import (
    ArchiveError,
    Handlers,
    InputSkipped,
    Options,
    file_identity,
    is_main_process,
    rank_device,
    run_archive,
    share_cores,
    speed_line,
    start_ranks,
    stop_ranks,
    summarize,
)
from panininet.families import BACKENDS, family_names, family_summary, validate_weight
from panininet.pipeline.background import build_background_upsampler
from panininet.pipeline.color import COLOR_FIX_METHODS
from panininet.pipeline.face_detection import DETECTORS
from panininet.pipeline.image_io import (
    DEFAULT_MAX_OUTPUT_PIXELS,
    fit_for_format,
    output_extension,
    read_image,
    read_metadata,
    why_unreadable,
    write_image,
)
from panininet.pipeline.restorer import PaniniRestorer
from panininet.platform.allocator import reuse_freed_memory
from panininet.platform.cpu_bf16 import cpu_bf16_units, cpu_has_bf16
from panininet.weights.releases import WeightsNotFoundError, weights_root

OUTPUT_SUBFOLDERS = ('cropped_faces', 'restored_faces', 'cmp', 'restored_imgs', 'restored_videos')


# exit status: every input restored / the run finished but some inputs were skipped (listed in the summary) /
# nothing was done (bad flag, input, output folder or weights file: one line on stderr says what to do); under torchrun
# a run that finished exits 0 (torchrun reports any other status as a crash), its skipped inputs are in the manifest
EXIT_OK, EXIT_SKIPPED, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """A flag, input or output the run cannot work with; ``str(err)`` is the one line for the user."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help (when it has one worth saying); the epilog's lines kept as written."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS) or '%(default)' in (action.help or ''):
            return action.help
        return f'{action.help} (default: %(default)s)'


def epilog():
    """The -v networks one line each (from the family registry), examples and exit statuses."""
    width = max(len(n) for n in family_names())
    lines = ['networks (-v):'] + [f'  {n:<{width}}  {family_summary(n)}' for n in family_names()]
    lines += ['', 'examples:',
              '  python inference_panini.py -i inputs/whole_imgs -o results',
              '  python inference_panini.py -i photos/ -o results/ -w 0.8 --color_fix wavelet',
              '  python inference_panini.py -i clip.mp4 -o results/ --detector dlib',
              '  python inference_panini.py -i faces64/ -o results/ -v sr16 --aligned',
              '', 'precision: fp32 unless --bf16 / --fp16 (--bf16 on a CPU with bf16 units: docs/cpu_bf16.md).',
              'exit status: 0 all restored; 1 finished, some inputs skipped (listed); 2 nothing done',
              '(one Error: line says what to do).',
              'More: docs/inference.md.']
    return '\n'.join(lines)


def build_parser():
    """The CLI's options, in groups (input/output, network, faces, background, video, performance)."""
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=epilog(),
                                formatter_class=HelpFormatter)
    io = p.add_argument_group('input and output')
    io.add_argument('-i', '--input', required=True, help='input image, video or folder (photos and videos may mix)')
    io.add_argument('-o', '--output', required=True, help='output folder')
    io.add_argument('--suffix', default=None, help='suffix of the restored faces and photos')
    io.add_argument('--ext', default='auto', choices=('auto', 'jpg', 'png'),
                    help='format of restored_imgs: auto keeps the input format (HEIC, AVIF, ... when they can be '
                    'written here, else PNG)')
    io.add_argument('--strip_metadata', action='store_true',
                    help='restored_imgs without the ICC colour profile and EXIF (date, camera, GPS) of their input; '
                    'by default both are kept, EXIF orientation reset to 1 since pixels are stored upright')
    io.add_argument('--resume', action='store_true',
                    help='skip the inputs -o/manifest.jsonl records as done with the same settings whose outputs '
                    'exist, redo the rest; other settings are refused (docs/archive.md)')
    io.add_argument('--max_output_pixels', type=float, default=DEFAULT_MAX_OUTPUT_PIXELS,
                    help='largest restored photo (width x height after -s); a larger one is skipped with a warning')

    net = p.add_argument_group('network')
    net.add_argument('-v', '--version', default='mfr', choices=family_names(),
                     help='the restoration network (one line each below, "networks")')
    net.add_argument('--model_path', default=None,
                     help='weights file (ours, or an official checkpoint: converted once and cached); '
                     'default: the release file in the weights folder, downloaded if missing')
    net.add_argument('-w', '--weight', type=float, default=0.5,
                     help='fidelity in [0, 1]: 1 keeps the most of the input, 0 takes the most from the GAN prior, '
                     '0.5 is the network as trained (Panini-Net only; the others have no such knob)')
    net.add_argument('--backend', default='pytorch', choices=tuple(BACKENDS),
                     help='onnxruntime: --model_path is an .onnx file written by scripts/export_onnx.py '
                     '(needs the [onnx] extra)')
    net.add_argument('--weights_dir', default=None,
                     help=f'weights folder (default: ${{PANINI_WEIGHTS_DIR}}, else {weights_root(None)})')
    net.add_argument('--no_download', action='store_true', help='never download weights (offline)')

    faces = p.add_argument_group('faces')
    faces.add_argument('--detector', default='retinaface_resnet50', choices=DETECTORS,
                       help='face detector: retinaface_* (facexlib, weights downloaded once); dlib: HOG; dlib_cnn: '
                       'MMOD CNN, also side and small faces, 25-100x slower (both dlib: offline, no download)')
    faces.add_argument('--dlib_upsample', type=int, default=1,
                       help='upsampling passes of the dlib detectors (0: 4x faster, faces of 80 px and more)')
    faces.add_argument('--only_center_face', action='store_true', help='restore only the centre face')
    faces.add_argument('--aligned', action='store_true', help='inputs are aligned faces (no detection, no paste back)')
    faces.add_argument('--color_fix', default='none', choices=COLOR_FIX_METHODS,
                       help="give each restored face its input crop's low-frequency colour before pasting it back "
                       '(wavelet keeps it within about 3 delta-E)')

    bg = p.add_argument_group('background')
    bg.add_argument('-s', '--upscale', type=float, default=2, help='final upsampling scale of the whole photo')
    bg.add_argument('--bg_upsampler', default='none', choices=('none', 'realesrgan'),
                    help='background upsampler (realesrgan: needs the realesrgan package; else Lanczos)')
    bg.add_argument('--bg_tile', type=int, default=400, help='tile size of the background upsampler, 0: no tiles')

    video = p.add_argument_group('video')
    video.add_argument('--no_smooth', action='store_true',
                       help='restore every frame on its own (no face tracking, no landmark smoothing)')
    video.add_argument('--video_codec', default='libx264',
                       help='FFmpeg encoder of the output (libx264: H.264 yuv420p in .mp4; a codec mp4 cannot hold '
                       'is written as .mkv)')
    video.add_argument('--video_crf', type=int, default=18,
                       help='constant rate factor of libx264/libx265/libvpx-vp9/libsvtav1 (lower: better, bigger)')

    perf = p.add_argument_group('performance')
    perf.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda', 'mps'),
                      help='where the network runs: auto takes CUDA, else Apple MPS, else the CPU')
    half = perf.add_mutually_exclusive_group()
    half.add_argument('--fp16', action='store_true',
                      help='network in fp16 autocast, weights kept fp32 (GPU only; default: fp32)')
    half.add_argument('--bf16', action='store_true',
                      help='network in bf16 (GPU, or a CPU with AVX-512 BF16 / AMX units, end to end there: '
                      'docs/cpu_bf16.md; default: fp32)')
    perf.add_argument('--batch_size', type=int, default=4,
                      help='faces per network call; photos are read in groups of this size so faces of several '
                      'photos share a call')
    perf.add_argument('--no_memory_reuse', action='store_true',
                      help='CPU: let freed tensor memory go back to the system after each face (slower: page faults; '
                      'by default the process keeps and reuses it, docs/performance.md)')
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv)


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
    return build_background_upsampler(args.bg_upsampler, args.bg_tile, args.weights_dir, not args.no_download,
                                      args.device)


def output_ext(args, in_path):
    return output_extension(in_path, args.ext)


def build_restorer(args, device=None):
    """The PaniniRestorer the flags ask for (on ``device``, default ``--device``); a weights file it cannot use
    raises UsageError with the reason."""
    try:
        return PaniniRestorer(
            model_path=args.model_path, upscale=args.upscale, version=args.version,
            bg_upsampler=build_bg_upsampler(args), device=device or args.device,
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
                         'panininet or official checkpoint of that version (docs/install.md, "Weights").') from None


def read_photo(args, path):
    """The photo at ``path``; raises InputSkipped (the reason) for one that cannot be read or would be too large."""
    try:
        img = read_image(path)
    except OSError as err:
        raise InputSkipped(f'cannot be read ({err.strerror or err})') from None
    if img is None:
        raise InputSkipped(why_unreadable(path))
    h, w = img.shape[:2]
    out_pixels = h * w * args.upscale ** 2
    if not args.aligned and out_pixels > args.max_output_pixels:
        size = f'{w * args.upscale:.0f} x {h * args.upscale:.0f} = {out_pixels / 1e6:.0f} MP'
        raise InputSkipped(f'output of {size} over --max_output_pixels {args.max_output_pixels:.0f}',
                           warning=f'{path}: at -s {args.upscale:g} the output would be {size}, over '
                           f'--max_output_pixels {args.max_output_pixels:.0f}; skipped (lower -s or raise '
                           '--max_output_pixels).')
    return img


def save_photo(args, out_root, inputs_abs, path, stem, result):
    """Write the outputs of one restored photo (atomically); returns their paths (OSError when one fails)."""
    written = []
    metadata = None if args.strip_metadata else read_metadata(path)  # ICC profile, EXIF (upright)
    for image, dest in output_targets(path, stem, result, args, out_root):
        if dest in inputs_abs:
            raise OSError(f'{dest} is an input of this run; not overwriting it')
        whole = osp.basename(osp.dirname(dest)) == 'restored_imgs'
        write_image(image, dest, metadata=metadata if whole else None)
        written.append(dest)
    return written


# flags that shape the outputs: resuming with other values is refused (the weights file is added by run_settings)
OUTPUT_SETTINGS = ('version', 'backend', 'upscale', 'bg_upsampler', 'bg_tile', 'suffix', 'only_center_face',
                   'aligned', 'ext', 'weight', 'detector', 'dlib_upsample', 'color_fix', 'max_output_pixels',
                   'no_smooth', 'video_codec', 'video_crf', 'fp16', 'bf16', 'strip_metadata')


def run_settings(args):
    """What a run's manifest records as its settings: the flags that shape the outputs and the weights file."""
    return dict({k: getattr(args, k) for k in OUTPUT_SETTINGS}, model_path=file_identity(args.model_path))


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
        device = rank_device(args.device, int(os.environ.get('LOCAL_RANK', '0')))  # torchrun: cuda:LOCAL_RANK
        restorer = build_restorer(args, device)  # before -o is created: a run that cannot start leaves nothing
        if restorer.device.type == 'cpu' and not args.no_memory_reuse:
            reuse_freed_memory()  # panininet.platform.allocator: no page faults per face on CPU
        if restorer.device.type == 'cpu' and restorer.precision == 'fp32' and args.backend == 'pytorch' and \
                cpu_has_bf16():
            print(f'Note: this CPU has bf16 units ({", ".join(cpu_bf16_units())}); --bf16 restores faces faster '
                  '(PSNR >= 40 dB against fp32, docs/cpu_bf16.md).')
        prepare_output(out_root)
        ranks = start_ranks(device)
    except (WeightsNotFoundError, ImportError, ValueError, FileNotFoundError) as err:
        if is_main_process():
            sys.stderr.write(f'Error: {err}\n')
        return EXIT_USAGE
    if restorer.device.type == 'cpu' and 'LOCAL_WORLD_SIZE' in os.environ:
        share_cores(ranks)  # torchrun: each rank its share of this machine's cores

    inputs_abs = {osp.abspath(f) for f in files}
    incomplete = []  # clips that stopped decoding early (exit status 1)
    handlers = Handlers(read_photo=functools.partial(read_photo, args),
                        save_photo=functools.partial(save_photo, args, out_root, inputs_abs),
                        restore_video=functools.partial(restore_video_file, args, restorer, out_root, inputs_abs,
                                                        incomplete),
                        stems=output_stems)
    options = Options(weight=args.weight, only_center_face=args.only_center_face, aligned=args.aligned,
                      batch_size=args.batch_size)
    start = time.time()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)  # kill: stop, remove the partial file, as Ctrl-C
    try:
        records, every, plan = run_archive(restorer, files, out_root, run_settings(args), handlers, options, ranks,
                                       is_video, resume=args.resume, subfolders=OUTPUT_SUBFOLDERS)
    except ArchiveError as err:
        if ranks.rank == 0:
            sys.stderr.write(f'Error: {err}\n')
        return EXIT_USAGE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        stop_ranks(ranks)
    if records is None:  # ranks > 0: rank 0 reports the whole run
        return EXIT_OK
    done = summarize(records, plan.run_id)
    skipped = done['skipped']
    video_part = f'{done["videos"]} video(s) ({done["frames"]} frames), ' if videos else ''
    earlier = f' ({done["earlier"]} file(s) recorded by an earlier run, not redone)' if done['earlier'] else ''
    print(f'Done: {done["photos"]} photo(s), {video_part}{done["faces"]} face(s) restored, {len(skipped)} file(s) '
          f'skipped{" (" + ", ".join(skipped) + ")" if skipped else ""}, {time.time() - start:.1f} s{earlier}. '
          f'Results in {out_root}')
    if photos and any(s['photos'] for s in every):
        print(speed_line(every))
    if incomplete and not ranks.distributed:  # clips that stopped decoding early: written with the frames decoded
        print(f'{len(incomplete)} clip(s) incomplete ({", ".join(incomplete)})')
        return EXIT_SKIPPED
    if skipped and not ranks.distributed:  # torchrun reports any non-zero status as a crash: 0 once it ran
        return EXIT_SKIPPED if done['photos'] or done['videos'] else EXIT_USAGE
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


def is_video(path):
    from panininet.pipeline.video import is_video_file

    return is_video_file(path)


def restore_video_file(args, restorer, out_root, inputs_abs, incomplete, path, stem, progress):
    """One clip through PaniniRestorer.enhance_video; returns (summary, [output]); InputSkipped for a bad clip.

    A clip that stops decoding early is written with the frames decoded, warned about and added to ``incomplete``.
    """
    from panininet.pipeline.video import VideoError

    dest = video_output_path(args, out_root, stem)
    if dest in inputs_abs:
        raise OSError(f'{dest} is an input of this run; not overwriting it')
    try:
        summary = restorer.enhance_video(path, dest, only_center_face=args.only_center_face, weight=args.weight,
                                         smooth=not args.no_smooth, video_codec=args.video_codec,
                                         crf=args.video_crf, progress=progress)
    except VideoError as err:  # names the file and the problem
        raise InputSkipped(str(err), warning=f'{err} Skipped.') from None
    if summary.incomplete:
        warnings.warn(f'{path}: {summary.incomplete}; {dest} holds those {summary.frames} frames.', stacklevel=1)
        if incomplete is not None:
            incomplete.append(osp.basename(path))
    audio = f', audio: {"; ".join(summary.audio)}' if summary.audio else ', no audio'
    print(f'{osp.basename(path)}: {summary.frames} frames, {summary.faces} face(s), {summary.seconds:.1f} s '
          f'({summary.frames / max(summary.seconds, 1e-9):.2f} frames/s){audio} -> {dest}')
    return summary, [dest]


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')


if __name__ == '__main__':
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.stderr.write('Interrupted: the clip being written was discarded (finished outputs are kept).\n')
        sys.exit(130)
