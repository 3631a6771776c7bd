"""The page's work, without the page: networks loaded once, one job per network, photo and video jobs, cancelling.

Everything here calls the same pipeline as ``inference_panini.py``: :class:`panininet.restorer.PaniniRestorer`
(``enhance_batch`` for photos, ``enhance_video`` for clips), :func:`panininet.image_io.read_image`,
:func:`~panininet.image_io.fit_for_format` and :func:`~panininet.image_io.write_image`, so a photo restored here
with the same settings is the same file the CLI writes (``restored_imgs/NAME.EXT``, the input's format: alpha,
16 bits and gray kept).

* :class:`Network` is one choice of the page's network list (:func:`available_networks`): a ``-v`` family with
  its release file (present or downloadable) or a file given to the server (``.onnx``: the onnxruntime backend).
* :class:`RestorerCache` loads each network once and keeps it (the least recently used one goes when more than
  ``max_networks`` are loaded); a restorer per (network, upscale, background, detector, colour fix) shares it.
  Each network has a lock: one job runs on it at a time, the others wait in turn (:meth:`RestorerCache.hold`).
* :func:`restore_photos` and :func:`restore_clip` report progress through ``progress(fraction, text)`` and stop
  when their ``cancel`` event is set (:class:`Cancelled`); every problem of one input becomes a note for the page
  (no exception reaches it).
* :class:`Sessions`: one temporary folder per browser session under the server's own temporary folder, removed
  when the session ends and when the server stops.
"""
import contextlib
import os
import os.path as osp
import shutil
import tempfile
import threading
import time
import uuid
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field

import cv2

from panininet.families import build_family, family_names, validate_weight
from panininet.pipeline.background import BG_UPSAMPLERS, build_background_upsampler
from panininet.pipeline.color import COLOR_FIX_METHODS
from panininet.pipeline.face_detection import DETECTORS
from panininet.pipeline.image_io import (
    DEFAULT_MAX_OUTPUT_PIXELS,
    fit_for_format,
    output_extension,
    read_image,
    to_bgr8,
    why_unreadable,
    write_image,
)
from panininet.pipeline.restorer import PaniniRestorer
from panininet.weights.releases import RELEASES, WeightsNotFoundError, weights_root

_WARNINGS_LOCK = threading.Lock()  # warnings.catch_warnings changes process state: one recorder at a time
_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))  # panininet/


@contextlib.contextmanager
def _our_warnings():
    """Record the warnings given inside the block; yields a list that holds, after it, the messages that are ours.

    ``warnings.catch_warnings(record=True)`` records every warning of the process while it is open, also those of
    the server's other threads and of the garbage collector (asyncio's ``ResourceWarning: unclosed event loop``
    when one of Gradio's loops is collected, a library's DeprecationWarning). Only a ``UserWarning`` attributed to a
    file of this package (our ``warnings.warn`` calls point at their caller in panininet) is a note for the user.
    One recorder at a time (it changes process state).

    Yields:
        list[str]: Empty inside the block; afterwards our warnings' messages, in order.
    """
    messages = []
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        yield messages
    messages += [str(w.message) for w in caught if issubclass(w.category, UserWarning) and
                 osp.abspath(w.filename).startswith(_PACKAGE_DIR + os.sep)]


class Cancelled(Exception):
    """The user pressed Cancel; raised from a progress callback to stop a job between steps."""


@dataclass(frozen=True)
class Network:
    """One network of the page's list.

    Attributes:
        version (str): The ``-v`` family name.
        model_path (str | None): Weights file; None: the family's release file.
        backend (str): 'pytorch', or 'onnxruntime' for an ``.onnx`` file.
        label (str): What the page shows.
    """
    version: str
    model_path: str = None
    backend: str = 'pytorch'
    label: str = ''


@dataclass
class ServerConfig:
    """Settings of the server, the same for every request (the CLI's flags of the same names).

    Attributes:
        device (str): 'auto', 'cpu', 'cuda' or 'mps'. Default: 'auto'.
        weights_dir (str | None): Weights root. Default: None.
        allow_download (bool): Download missing release / detector weights. Default: True.
        batch_size (int): Faces per network call (and photos per ``enhance_batch``). Default: 4.
        dlib_upsample (int): HOG upsampling passes of the dlib detectors. Default: 1.
        bg_tile (int): Tile size of the background upsampler. Default: 400.
        max_output_pixels (float): Largest restored photo (width x height after upscale). Default: 200 MP.
        max_upload_mb (float): Largest uploaded file in MB. Default: 200.
        max_networks (int): Networks kept loaded at once. Default: 2.
    """
    device: str = 'auto'
    weights_dir: str = None
    allow_download: bool = True
    batch_size: int = 4
    dlib_upsample: int = 1
    bg_tile: int = 400
    max_output_pixels: float = DEFAULT_MAX_OUTPUT_PIXELS
    max_upload_mb: float = 200.0
    max_networks: int = 2


@dataclass(frozen=True)
class PhotoSettings:
    """What the page's photo controls ask for (the CLI's flags of the same names)."""
    network: Network
    weight: float = 0.5
    upscale: float = 2.0
    bg_upsampler: str = 'none'
    color_fix: str = 'none'
    detector: str = 'retinaface_resnet50'
    only_center_face: bool = False
    aligned: bool = False

    def check(self):
        """Refuse values the CLI refuses (ValueError with the reason)."""
        validate_weight(self.weight)
        if not self.upscale > 0:
            raise ValueError(f'upscale {self.upscale:g}: give a value > 0.')
        for name, value, allowed in (('background', self.bg_upsampler, BG_UPSAMPLERS),
                                     ('colour fix', self.color_fix, COLOR_FIX_METHODS),
                                     ('detector', self.detector, DETECTORS)):
            if value not in allowed:
                raise ValueError(f'{name} {value!r}: choose one of {", ".join(allowed)}.')


@dataclass
class PhotoResult:
    """One restored photo: files under the job folder, and 8-bit views for the page."""
    name: str
    output: str  # the full-size result (restored_imgs/NAME.EXT; aligned input: restored_faces/NAME_00.png)
    before: str  # 8-bit PNG: the input at the output's size
    after: str  # 8-bit PNG view of ``output``
    faces: list = field(default_factory=list)  # restored_faces/NAME_XX.png


@dataclass
class PhotoReport:
    """What a photo job produced: results, the zip of all of them, and one note per problem."""
    results: list = field(default_factory=list)
    zip_path: str = None
    notes: list = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class VideoReport:
    output: str = None
    frames: int = 0
    faces: int = 0
    notes: list = field(default_factory=list)
    seconds: float = 0.0


def parse_network_spec(spec):
    """A server's ``--model VERSION=PATH`` as a :class:`Network` (an ``.onnx`` file runs on onnxruntime).

    Raises:
        ValueError: No ``=``, an unknown version, or no such file.
    """
    version, sep, path = spec.partition('=')
    if not sep or not path:
        raise ValueError(f'--model {spec}: give VERSION=PATH, e.g. --model mfr=weights/panini_mfr.pth.')
    if version not in family_names():
        raise ValueError(f'--model {spec}: unknown version {version!r}; choose one of {", ".join(family_names())}.')
    path = osp.abspath(osp.expanduser(path))
    if not osp.isfile(path):
        raise ValueError(f'--model {spec}: no such file.')
    backend = 'onnxruntime' if path.lower().endswith('.onnx') else 'pytorch'
    runtime = ', onnxruntime' if backend == 'onnxruntime' else ''
    return Network(version, path, backend, f'{version}: {osp.basename(path)}{runtime}')


def available_networks(extra=(), weights_dir=None, allow_download=True):
    """The page's network list: the given files first, then every family whose release file is present in the
    weights root or can be downloaded.

    Args:
        extra (Sequence[Network]): Networks given to the server (:func:`parse_network_spec`). Default: ().
        weights_dir (str | None): Weights root. Default: None.
        allow_download (bool): Whether release files may be downloaded. Default: True.

    Returns:
        list[Network]
    """
    networks = list(extra)
    root = weights_root(weights_dir)
    for name in family_names():
        release = RELEASES.get(name)
        if release is None:
            continue
        if osp.isfile(osp.join(root, release.file_name)):
            networks.append(Network(name, None, 'pytorch', f'{name} (release file)'))
        elif allow_download:
            networks.append(Network(name, None, 'pytorch', f'{name} (release, downloaded on first use)'))
    return networks


class RestorerCache:
    """Networks loaded once and reused; restorers keyed by the settings that build them; one job per network.

    Args:
        config (ServerConfig): Device, weights folder, batch size, ...
        loader (callable | None): ``loader(network, config)`` -> a RestorationFamily; default
            :func:`panininet.families.build_family` (tests count its calls). Default: None.
    """

    def __init__(self, config, loader=None):
        self.config = config
        self.loader = loader or _load_family
        self._networks = OrderedDict()  # Network -> (family, lock), least recently used first
        self._restorers = {}  # (Network, upscale, bg, detector, colour fix) -> (PaniniRestorer, notes)
        self._guard = threading.Lock()

    def loaded(self):
        """The networks loaded now (least recently used first)."""
        with self._guard:
            return list(self._networks)

    def _family(self, network):
        if network in self._networks:
            self._networks.move_to_end(network)
            return self._networks[network]
        entry = (self.loader(network, self.config), threading.Lock())
        self._networks[network] = entry
        while len(self._networks) > max(1, self.config.max_networks):
            old, _ = self._networks.popitem(last=False)  # a job still running on it keeps its own reference
            self._restorers = {k: v for k, v in self._restorers.items() if k[0] != old}
        return entry

    def get(self, settings):
        """(restorer, lock, notes) for ``settings``: the network loaded once, the restorer built once.

        Raises:
            ValueError, WeightsNotFoundError, ImportError: The network cannot be loaded (the message says why).
        """
        key = (settings.network, float(settings.upscale), settings.bg_upsampler,
               None if settings.aligned else settings.detector, settings.color_fix)
        with self._guard:
            family, lock = self._family(settings.network)
            if key not in self._restorers:
                cfg = self.config
                with _our_warnings() as recorded:
                    bg = build_background_upsampler(settings.bg_upsampler, cfg.bg_tile, cfg.weights_dir,
                                                    cfg.allow_download, cfg.device)
                    restorer = PaniniRestorer(
                        upscale=settings.upscale, version=settings.network.version, bg_upsampler=bg,
                        device=family.device, detector=key[3], weights_dir=cfg.weights_dir,
                        batch_size=cfg.batch_size, allow_download=cfg.allow_download,
                        dlib_upsample=cfg.dlib_upsample, net=family, color_fix=settings.color_fix)
                self._restorers[key] = (restorer, [m.splitlines()[0] for m in recorded])
            restorer, notes = self._restorers[key]
        return restorer, lock, list(notes)


def _load_family(network, config):
    return build_family(network.version, network.model_path, config.device, weights_dir=config.weights_dir,
                        allow_download=config.allow_download, backend=network.backend)


def load_message(err, network):
    """One line for the page when ``network`` cannot be loaded."""
    if isinstance(err, (WeightsNotFoundError, ImportError, ValueError, FileNotFoundError)):
        return f'{network.label or network.version}: {str(err).strip()}'
    where = network.model_path or f'the {network.version} release file'
    return (f'{where} cannot be used as -v {network.version} weights ({first_line(err)}); give a panininet or '
            'official checkpoint of that version.')


def first_line(err):
    """``Type: first line`` of an exception."""
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0]}' if text else type(err).__name__


def hold(lock, cancel, progress):
    """Take ``lock`` (the network's), telling the user while another job has it; Cancelled if cancelled meanwhile."""
    if lock.acquire(blocking=False):
        return
    progress(0.0, 'waiting: another job is running on this network')
    while not lock.acquire(timeout=0.2):
        if cancel is not None and cancel.is_set():
            raise Cancelled()


def _stage_reporter(progress, cancel, first, n_photos, total):
    """enhance_batch's ``progress(stage, done, count)`` -> the page's ``progress(fraction, text)``, checking cancel."""
    share = {'detect': 0.0, 'restore': 1 / 3, 'paste': 2 / 3}

    def report(stage, done, count):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if stage == 'restore':
            within, text = share[stage], f'restore ({count} face(s))'
        else:
            within = share[stage] + (done / max(count, 1)) / 3
            text = f'{stage} (photo {first + done + 1} of {total})'
        progress((first + within * n_photos) / max(total, 1), text)
    return report


VIEW_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # the page's views: fast to write, read once by the browser


def view_png(img, path):
    """Write the 8-bit view of a photo that the page shows (BGR, or BGRA when it has alpha) as PNG."""
    view = to_bgr8(img)
    if img.ndim == 3 and img.shape[2] == 4:
        alpha = img[:, :, 3]
        alpha = alpha if alpha.dtype == 'uint8' else to_bgr8(alpha)[:, :, 0]
        view = cv2.merge([*cv2.split(view), alpha])
    write_image(view, path, VIEW_PNG)
    return path


def output_stems(names):
    """Name stem of each upload's outputs: its stem, or ``stem_ext`` when uploads share one (as the CLI names them)."""
    stems = [osp.splitext(n)[0] for n in names]
    return [s if stems.count(s) == 1 else f'{s}_{osp.splitext(n)[1].lstrip(".").lower()}'
            for n, s in zip(names, stems)]


def _read(path, name, settings, config, notes):
    """The photo, or None with a note saying why not (unreadable, too large)."""
    try:
        size = os.path.getsize(path)
        if size > config.max_upload_mb * 1e6:
            notes.append(f'{name}: {size / 1e6:.0f} MB is over the upload limit of {config.max_upload_mb:g} MB; '
                         'skipped.')
            return None
        img = read_image(path)
    except OSError as err:
        notes.append(f'{name}: cannot be read ({err.strerror or err}); skipped.')
        return None
    if img is None:
        notes.append(f'{name}: {why_unreadable(path)}; skipped.')
        return None
    h, w = img.shape[:2]
    pixels = h * w * settings.upscale ** 2
    if not settings.aligned and pixels > config.max_output_pixels:
        notes.append(f'{name}: at upscale {settings.upscale:g} the result would be {w * settings.upscale:.0f} x '
                     f'{h * settings.upscale:.0f} = {pixels / 1e6:.0f} MP, over the limit of '
                     f'{config.max_output_pixels / 1e6:g} MP; skipped (lower the upscale).')
        return None
    return img


def restore_photos(cache, settings, files, out_dir, progress=None, cancel=None):
    """Restore uploaded photos as the CLI does, writing its layout under ``out_dir`` and a zip of the results.

    Args:
        cache (RestorerCache): Where the network comes from.
        settings (PhotoSettings): The page's controls.
        files (list[tuple[str, str]]): (path, name shown to the user) of each upload.
        out_dir (str): The job's folder (created).
        progress (callable | None): ``progress(fraction, text)``. Default: None.
        cancel (threading.Event | None): Set to stop the job between steps. Default: None.

    Returns:
        PhotoReport: Never raises for a bad input, a network that cannot load or a cancel; each is a note.
    """
    start = time.time()
    progress = progress or (lambda fraction, text: None)
    report = PhotoReport()
    try:
        settings.check()
    except ValueError as err:
        report.notes.append(f'Error: {err}')
        return report
    if not files:
        report.notes.append('Error: no photo given; upload one or more photos first.')
        return report
    progress(0.0, f'loading {settings.network.label or settings.network.version}')
    try:
        restorer, lock, build_notes = cache.get(settings)
    except Exception as err:  # noqa: BLE001  (the page shows one line, never a traceback)
        report.notes.append(f'Error: {load_message(err, settings.network)}')
        return report
    report.notes += build_notes
    names = [name for _, name in files]
    stems = output_stems(names)
    try:
        hold(lock, cancel, progress)
    except Cancelled:
        report.notes.append('Cancelled before it started; nothing was restored.')
        return report
    try:
        step = cache.config.batch_size
        for first in range(0, len(files), step):
            group = []
            for (path, name), stem in zip(files[first:first + step], stems[first:first + step]):
                img = _read(path, name, settings, cache.config, report.notes)
                if img is not None:
                    group.append((path, name, stem, img))
            reporter = _stage_reporter(progress, cancel, first, len(files[first:first + step]), len(files))
            for item, result in _enhance(restorer, group, settings, reporter, report.notes):
                report.results.append(_write_result(restorer, item, result, settings, out_dir, report.notes))
    except Cancelled:
        done = len(report.results)
        report.notes.append(f'Cancelled: {done} photo(s) finished before, the rest was not restored.')
    finally:
        lock.release()
    if report.results:
        report.zip_path = _zip_results(report.results, osp.join(out_dir, 'restored.zip'))
    report.seconds = time.time() - start
    progress(1.0, 'done')
    return report


def _enhance(restorer, group, settings, reporter, notes):
    """[(item, result)] of enhance_batch over ``group``; after a failure each photo alone (as the CLI does)."""
    if not group:
        return []
    kwargs = dict(has_aligned=settings.aligned, only_center_face=settings.only_center_face, paste_back=True,
                  weight=settings.weight, progress=reporter)
    try:
        return list(zip(group, restorer.enhance_batch([item[3] for item in group], **kwargs)))
    except Cancelled:
        raise
    except Exception as err:  # noqa: BLE001  (one note per photo; the others still run)
        if len(group) == 1:
            notes.append(f'{group[0][1]}: restoring failed ({first_line(err)}); skipped.')
            return []
    return [done for item in group for done in _enhance(restorer, [item], settings, reporter, notes)]


def _write_result(restorer, item, result, settings, out_dir, notes):
    path, name, stem, img = item
    _, restored, whole = result
    faces = []
    for idx, face in enumerate(restored):
        faces.append(osp.join(out_dir, 'restored_faces', f'{stem}_{idx:02d}.png'))
        write_image(face, faces[-1])
    views = osp.join(out_dir, 'views')
    if whole is None:  # aligned input: the restored face is the result
        output, before_img = faces[0], cv2.resize(to_bgr8(img), restored[0].shape[:2][::-1],
                                                  interpolation=cv2.INTER_LANCZOS4)
        after_img = restored[0]
    else:
        ext = output_extension(name)
        with _our_warnings() as recorded:
            fitted = fit_for_format(whole, ext, name)
        notes += [m.replace('--ext png', 'a PNG input') for m in recorded]
        output = osp.join(out_dir, 'restored_imgs', f'{stem}.{ext}')
        write_image(fitted, output)
        h, w = whole.shape[:2]
        before_img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LANCZOS4)
        after_img = whole
        if not restored:
            notes.append(f'{name}: no face found; the photo is returned as it came (only scaled by '
                         f'{settings.upscale:g}).')
    before = view_png(before_img, osp.join(views, f'{stem}_before.png'))
    if output.endswith('.png') and after_img.dtype == 'uint8' and after_img.ndim == 3:  # the result is its own view
        after = osp.join(views, f'{stem}_after.png')
        shutil.copyfile(output, after)
    else:
        after = view_png(after_img, osp.join(views, f'{stem}_after.png'))
    return PhotoResult(name, output, before, after, faces)


def _zip_results(results, dest):
    """restored_imgs/ and restored_faces/ of every result in one zip (written atomically)."""
    tmp = f'{dest}.part'
    with zipfile.ZipFile(tmp, 'w', zipfile.ZIP_STORED) as zf:
        for r in results:
            for f in dict.fromkeys([r.output, *r.faces]):
                zf.write(f, osp.join(osp.basename(osp.dirname(f)), osp.basename(f)))
    os.replace(tmp, dest)
    return dest


def restore_clip(cache, settings, path, name, out_dir, progress=None, cancel=None):
    """Restore a video clip with :meth:`PaniniRestorer.enhance_video` (sound kept), as the CLI does.

    Args:
        cache, settings, progress, cancel: As :func:`restore_photos` (``settings.aligned`` must be False).
        path (str): The uploaded clip.
        name (str): Its name as the user gave it.
        out_dir (str): The job's folder (the clip goes to ``restored_videos/STEM.mp4``).

    Returns:
        VideoReport: Never raises for a bad clip, a network that cannot load or a cancel; each is a note.
    """
    from panininet.pipeline.video import VideoError, probe_frame_count

    start = time.time()
    progress = progress or (lambda fraction, text: None)
    report = VideoReport()
    try:
        settings.check()
        if settings.aligned:
            raise ValueError('aligned input is for aligned face crops; it does not apply to videos.')
    except ValueError as err:
        report.notes.append(f'Error: {err}')
        return report
    if path is None:
        report.notes.append('Error: no clip given; upload a video first.')
        return report
    size = os.path.getsize(path)
    if size > cache.config.max_upload_mb * 1e6:
        report.notes.append(f'{name}: {size / 1e6:.0f} MB is over the upload limit of '
                            f'{cache.config.max_upload_mb:g} MB.')
        return report
    progress(0.0, f'loading {settings.network.label or settings.network.version}')
    try:
        restorer, lock, build_notes = cache.get(settings)
    except Exception as err:  # noqa: BLE001
        report.notes.append(f'Error: {load_message(err, settings.network)}')
        return report
    report.notes += build_notes
    total = probe_frame_count(path)
    count = [0]

    def on_frame(n):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        count[0] += n
        of = f' of {total}' if total else ''
        progress(min(count[0] / total, 1.0) if total else None, f'frame {count[0]}{of}')

    dest = osp.join(out_dir, 'restored_videos', f'{osp.splitext(name)[0]}.mp4')
    try:
        hold(lock, cancel, progress)
    except Cancelled:
        report.notes.append('Cancelled before it started; nothing was restored.')
        return report
    try:
        summary = restorer.enhance_video(path, dest, only_center_face=settings.only_center_face,
                                         weight=settings.weight, progress=on_frame)
    except Cancelled:
        report.notes.append(f'Cancelled after {count[0]} frame(s); the partial clip was discarded.')
        return report
    except VideoError as err:
        report.notes.append(str(err).replace(path, name))
        return report
    except Exception as err:  # noqa: BLE001  (one line for the page)
        report.notes.append(f'{name}: restoring the clip failed ({first_line(err)}).')
        return report
    finally:
        lock.release()
    report.output, report.frames, report.faces = dest, summary.frames, summary.faces
    audio = '; '.join(summary.audio) if summary.audio else 'no audio'
    report.notes.append(f'{name}: {summary.frames} frames, {summary.faces} face(s), audio: {audio}.')
    report.seconds = time.time() - start
    return report


class Sessions:
    """One temporary folder and one cancel flag per browser session, all under one folder of the server.

    Args:
        root (str | None): Parent folder; None: a new ``panininet-web-*`` folder in the system's temp folder.
            Default: None.
    """

    def __init__(self, root=None):
        self.root = root or tempfile.mkdtemp(prefix='panininet-web-')
        os.makedirs(self.root, exist_ok=True)
        self._cancel = {}
        self._guard = threading.Lock()

    def folder(self, session):
        return osp.join(self.root, 'sessions', str(session))

    def cancel_event(self, session):
        with self._guard:
            return self._cancel.setdefault(session, threading.Event())

    def new_job(self, session):
        """A fresh job folder of ``session`` (the session's earlier job folders are removed: the page shows one
        result at a time), and the session's cancel flag, cleared."""
        folder = self.folder(session)
        if osp.isdir(folder):
            for old in os.listdir(folder):
                shutil.rmtree(osp.join(folder, old), ignore_errors=True)
        job = osp.join(folder, uuid.uuid4().hex[:12])
        os.makedirs(job)
        event = self.cancel_event(session)
        event.clear()
        return job, event

    def cancel(self, session):
        self.cancel_event(session).set()

    def end(self, session):
        """The session has gone (tab closed): stop its job and remove its folder."""
        with self._guard:
            event = self._cancel.pop(session, None)
        if event is not None:
            event.set()
        shutil.rmtree(self.folder(session), ignore_errors=True)

    def close(self):
        """Remove every session's folder and the root (server stopping)."""
        with self._guard:
            for event in self._cancel.values():
                event.set()
            self._cancel.clear()
        shutil.rmtree(self.root, ignore_errors=True)
