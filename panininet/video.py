"""Restore every face of a video clip, streaming: constant memory, sound and timing kept, no jitter.

:func:`restore_video` (also :meth:`panininet.restorer.PaniniRestorer.enhance_video`) runs four stages at once, each
in its own thread, joined by bounded queues (``queue_size`` items each), so memory does not grow with the clip:

1. **decode** (PyAV): video frames in presentation order, turned upright per the stream's rotation metadata;
2. **analyse**: :meth:`~panininet.restorer.PaniniRestorer.detect_landmarks` on each frame, then (unless
   ``smooth=False``) :class:`panininet.tracking.FaceTracker` (faces tracked by box overlap, landmarks smoothed over
   a short centred window, brief misses filled from the track), then
   :meth:`~panininet.restorer.PaniniRestorer.align_faces` with those landmarks;
3. **restore** (the calling thread): the faces of consecutive frames go through the network together
   (:meth:`~panininet.restorer.PaniniRestorer.restore_faces`, ``batch_size`` faces per call), then
   :meth:`~panininet.restorer.PaniniRestorer.finish_faces` (colour fix, gray film) and
   :meth:`~panininet.restorer.PaniniRestorer.paste_back` per frame;
4. **encode + mux** (PyAV): every frame with its own timestamp and duration (same frame count, frame rate and
   duration), H.264 yuv420p by default; every audio stream copied packet for packet when the output container takes
   its codec, else re-encoded to AAC; audio is read by a second demuxer of the input, in step with the video, so it
   never piles up in memory. Subtitle and data streams are dropped with a warning.

The output is written under a temporary name beside ``output_path`` (``.NAME.XXXX.part.EXT``) and renamed when
complete (:func:`panininet.fileio.atomic_path`); an error or an interrupt removes it.
"""
import os.path as osp
import queue
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from basicsr.utils import get_root_logger

from panininet.color import is_gray
from panininet.fileio import atomic_path
from panininet.tracking import FaceTracker

VIDEO_EXTENSIONS = ('.mp4', '.m4v', '.mov', '.mkv', '.webm', '.avi', '.mpg', '.mpeg', '.ts', '.mts', '.m2ts', '.wmv',
                    '.flv', '.3gp', '.ogv')
# encoders whose quality is set by a constant rate factor
CRF_CODECS = ('libx264', 'libx264rgb', 'libx265', 'libvpx-vp9', 'libsvtav1', 'libaom-av1')
_END = object()


class VideoError(ValueError):
    """A clip that cannot be read or written; the message is one line naming the file and the problem."""


@dataclass
class VideoSummary:
    """What :func:`restore_video` did.

    Attributes:
        frames (int): Frames written (equal to the frames decoded).
        faces (int): Faces restored, summed over the frames.
        seconds (float): Wall time.
        audio (list[str]): One entry per audio stream: 'copied <codec>' or 're-encoded <codec> -> aac'.
        dropped (list[str]): Streams not carried over (subtitles, data).
        size (tuple[int, int]): Output width, height.
    """
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    audio: list = field(default_factory=list)
    dropped: list = field(default_factory=list)
    size: tuple = (0, 0)


def is_video_file(path):
    """True when ``path``'s extension is one of :data:`VIDEO_EXTENSIONS`."""
    return osp.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def import_av():
    """PyAV, or an ImportError saying how to install it."""
    try:
        import av
    except ImportError as err:
        raise ImportError('Restoring videos needs PyAV: pip install "panininet[video]" (or pip install av).') from err
    return av


def check_video_codec(name):
    """Raise ValueError (one line) unless ``name`` is a video encoder this PyAV has."""
    av = import_av()
    try:
        codec = av.codec.Codec(name, 'w')
    except Exception as err:  # noqa: BLE001  (PyAV raises several types for an unknown codec)
        raise ValueError(f'--video_codec {name}: no such encoder in this PyAV/FFmpeg ({err}); try libx264.') from err
    if codec.type != 'video':
        raise ValueError(f'--video_codec {name} is a {codec.type} codec, not a video one; try libx264.')
    return codec


def upright(img, rotation):
    """Turn a decoded frame the way a player shows it: ``rotation`` degrees counter-clockwise (PyAV's
    ``VideoFrame.rotation``, from the stream's display matrix), in multiples of 90."""
    k = int(round((rotation or 0) / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


class _Pipeline:
    """Stop flag, first error and bounded hand-over between the stage threads."""

    def __init__(self):
        self.stop = threading.Event()
        self.error = None

    def fail(self, err):
        if self.error is None:
            self.error = err
        self.stop.set()

    def put(self, q, item):
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q):
        """Next item, or _END when the pipeline stops."""
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _END

    def thread(self, target, *args):
        def run():
            try:
                target(*args)
            except BaseException as err:  # noqa: BLE001  (handed to the calling thread, which raises it)
                self.fail(err)
        t = threading.Thread(target=run, daemon=True, name=getattr(target, '__name__', 'stage'))
        t.start()
        return t


def _open_input(av, path):
    try:
        container = av.open(path, 'r')
    except (av.error.FFmpegError, OSError) as err:
        raise VideoError(f'{path}: not a readable video ({_short(err)}).') from err
    if not container.streams.video:
        container.close()
        raise VideoError(f'{path}: has no video stream.')
    return container


def _short(err):
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def restore_video(restorer, input_path, output_path, weight=0.5, only_center_face=False, smooth=True,
                  video_codec='libx264', crf=18, queue_size=8, progress=None, tracker=None):
    """Restore the faces of every frame of one clip and write it, with its sound, to ``output_path``.

    Args:
        restorer (panininet.restorer.PaniniRestorer): Built with a detector.
        input_path (str): Any container/codec FFmpeg decodes (mp4, mov, mkv, avi, webm, ...).
        output_path (str): Destination; its extension picks the container (``.mp4`` in the CLI).
        weight (float | None): Fidelity, as in :meth:`~panininet.restorer.PaniniRestorer.enhance`. Default: 0.5.
        only_center_face (bool): Restore only the face closest to the centre of each frame. Default: False.
        smooth (bool): Track faces and smooth their landmarks (:class:`~panininet.tracking.FaceTracker`); False
            treats every frame as an independent photo. Default: True.
        video_codec (str): FFmpeg encoder. Default: 'libx264'.
        crf (int): Constant rate factor for the encoders in :data:`CRF_CODECS` (lower is better). Default: 18.
        queue_size (int): Items each stage may hold ahead of the next. Default: 8.
        progress (callable | None): Called with 1 after each frame written. Default: None.
        tracker (panininet.tracking.FaceTracker | None): The tracker to use when ``smooth`` (default settings when
            None). Default: None.

    Returns:
        VideoSummary: Frames, faces, time, what happened to each audio stream.

    Raises:
        VideoError: The input is not a readable video (bad, truncated, no video stream) or the output cannot be
            written; nothing is left under ``output_path``.
        ImportError: PyAV is not installed.
    """
    av = import_av()
    codec = check_video_codec(video_codec)
    from panininet.restorer import weight_to_mask_bias

    weight_to_mask_bias(weight)  # a bad -w fails here, not in a thread
    if restorer.face_helper is None:
        raise ValueError('This PaniniRestorer was built with detector=None (aligned faces only); videos need a '
                         'detector.')
    if osp.abspath(input_path) == osp.abspath(output_path):
        raise VideoError(f'{output_path} is the input; refusing to overwrite it.')
    start = time.time()
    source = _open_input(av, input_path)
    summary = VideoSummary()
    pipe = _Pipeline()
    frames_q, aligned_q, done_q = (queue.Queue(maxsize=max(1, queue_size)) for _ in range(3))
    logger = get_root_logger()
    vstream = source.streams.video[0]
    vstream.thread_type = 'AUTO'
    for s in source.streams:
        if s.type not in ('video', 'audio') or (s.type == 'video' and s.index != vstream.index):
            summary.dropped.append(f'{s.type} stream #{s.index} ({s.codec_context.name if s.codec_context else "?"})')
    if summary.dropped:
        warnings.warn(f'{input_path}: dropping {", ".join(summary.dropped)} (only the video and the audio are kept).',
                      stacklevel=2)
    metadata = {k: v for k, v in source.metadata.items() if k != 'encoder'}

    rate = vstream.average_rate or vstream.guessed_rate or 25

    def decode():
        index = -1
        try:
            for index, frame in enumerate(source.decode(vstream)):
                img = upright(frame.to_ndarray(format='bgr24'), getattr(frame, 'rotation', 0))
                pts, tb = frame.pts, frame.time_base or vstream.time_base
                if pts is None:  # no timestamps (some avi): frame index at the stream's rate
                    pts, tb = index, 1 / rate
                if not pipe.put(frames_q, (pts, tb, frame.duration, img)):
                    return
        except av.error.FFmpegError as err:
            raise VideoError(f'{input_path}: broken or truncated video ({_short(err)}).') from err
        expected = vstream.frames
        if expected and index + 1 < expected * 0.98:
            raise VideoError(f'{input_path}: truncated video (decoded {index + 1} of {expected} frames).')
        pipe.put(frames_q, _END)

    def analyse():
        track = (tracker or FaceTracker()) if smooth else None
        held = {}  # frames waiting for the tracker's look-ahead
        index = 0

        def send(item, landmarks):
            crops, affines = restorer.align_faces(item[3], landmarks) if len(landmarks) else ([], [])
            return pipe.put(aligned_q, (*item, crops, affines))

        while True:
            item = pipe.get(frames_q)
            if item is _END:
                break
            landmarks = restorer.detect_landmarks(item[3], only_center_face=only_center_face)
            if track is None:
                if not send(item, landmarks):
                    return
                continue
            held[index] = item
            index += 1
            for f, faces in track.push(landmarks):
                if not send(held.pop(f), np.array([lm for _, lm in faces]).reshape(-1, 5, 2)):
                    return
        if pipe.stop.is_set():
            return
        for f, faces in (track.flush() if track is not None else []):
            if not send(held.pop(f), np.array([lm for _, lm in faces]).reshape(-1, 5, 2)):
                return
        pipe.put(aligned_q, _END)

    def encode(tmp):
        _encode_stage(av, pipe, done_q, input_path, tmp, metadata, rate, codec.name, crf, summary, progress, logger)

    with atomic_path(output_path) as tmp:
        threads = [pipe.thread(decode), pipe.thread(analyse), pipe.thread(encode, tmp)]
        try:
            _restore_stage(restorer, pipe, aligned_q, done_q, weight, summary)
        except BaseException as err:  # KeyboardInterrupt included: stop the stages, then let atomic_path clean up
            pipe.fail(err)
        finally:
            if pipe.error is not None:
                pipe.stop.set()
            for t in threads:
                t.join()
            source.close()
        if pipe.error is not None:
            err = pipe.error
            if isinstance(err, av.error.FFmpegError):
                raise VideoError(f'{input_path}: {_short(err)}.') from err
            raise err
    summary.seconds = time.time() - start
    return summary


def _restore_stage(restorer, pipe, aligned_q, done_q, weight, summary):
    """Gather consecutive frames until they hold ``batch_size`` faces, restore them in one go, paste, hand on."""
    max_frames = max(restorer.batch_size, 4)
    batch, n_faces, finished = [], 0, False
    while not finished:
        item = pipe.get(aligned_q)
        if item is _END:
            if pipe.stop.is_set():
                return
            finished = True
        else:
            batch.append(item)
            n_faces += len(item[4])
        if batch and (finished or n_faces >= restorer.batch_size or len(batch) >= max_frames):
            restored = restorer.restore_faces([c for it in batch for c in it[4]], weight) if n_faces else []
            i = 0
            for pts, tb, duration, img, crops, affines in batch:
                faces = restored[i:i + len(crops)]
                i += len(crops)
                if faces:  # colour fix (--color_fix), gray faces for a black-and-white film
                    faces = restorer.finish_faces(faces, crops, is_gray(img))
                out = restorer.paste_back(img, affines, faces) if faces else restorer.upsample_background(img)
                summary.faces += len(faces)
                if not pipe.put(done_q, (pts, tb, duration, out)):
                    return
            batch, n_faces = [], 0
    pipe.put(done_q, _END)


class _AudioPump:
    """Carries the input's audio streams into the output, in step with the video, read by a second demuxer."""

    def __init__(self, av, input_path, output, summary, logger):
        self.output = output
        self.streams = {}  # input index -> (output stream, decoder, or None to copy the packets)
        self.demuxer = av.open(input_path, 'r')
        for s in self.demuxer.streams.audio:
            name = s.codec_context.name
            out = None
            if name in output.supported_codecs:
                try:
                    out = output.add_stream_from_template(s)
                    summary.audio.append(f'copied {name}')
                    self.streams[s.index] = (out, None)
                except ValueError:
                    out = None
            if out is None:
                layout = _layout_name(s.codec_context)
                out = output.add_stream('aac', rate=s.codec_context.sample_rate or 48000, layout=layout)
                summary.audio.append(f're-encoded {name} -> aac')
                logger.info(f'{input_path}: audio stream #{s.index} ({name}) re-encoded to AAC for {output.name}')
                self.streams[s.index] = (out, s.codec_context)
            if s.metadata.get('language'):
                out.metadata['language'] = s.metadata['language']
        self.packets = (self.demuxer.demux([self.demuxer.streams[i] for i in self.streams])
                        if self.streams else iter(()))
        self.pending = None

    def until(self, seconds):
        """Mux the audio up to ``seconds`` (None: all of it)."""
        while True:
            if self.pending is None:
                self.pending = next(self.packets, None)
                if self.pending is None:
                    return
            pkt = self.pending
            t = pkt.dts if pkt.dts is not None else pkt.pts
            if seconds is not None and t is not None and float(t * pkt.time_base) > seconds:
                return
            self.pending = None
            self._mux(pkt)

    def _mux(self, pkt):
        out, decoder = self.streams[pkt.stream.index]
        if pkt.dts is None:  # the demuxer's end-of-stream marker (decoders are flushed in close)
            return
        if decoder is None:
            pkt.stream = out
            self.output.mux(pkt)
            return
        for frame in decoder.decode(pkt):
            for p in out.encode(frame):  # the decoded timestamps are kept: the output starts where the input did
                self.output.mux(p)

    def close(self):
        for out, decoder in self.streams.values():
            if decoder is not None:
                for frame in decoder.decode(None):
                    for p in out.encode(frame):
                        self.output.mux(p)
                for p in out.encode(None):
                    self.output.mux(p)


def _layout_name(ctx):
    """A channel layout the AAC encoder takes: the input's when it has a named one, else the usual one for its
    channel count (PCM in Matroska often says only '1 channels')."""
    name = ctx.layout.name if ctx.layout else ''
    if name and not name.endswith('channels'):
        return name
    return {1: 'mono', 2: 'stereo', 3: '2.1', 4: 'quad', 5: '5.0', 6: '5.1', 7: '6.1', 8: '7.1'}.get(ctx.channels,
                                                                                                   'stereo')


def _encode_stage(av, pipe, done_q, input_path, tmp, metadata, rate, codec, crf, summary, progress, logger):
    output = pump = stream = None
    try:
        while True:
            item = pipe.get(done_q)
            if item is _END:
                break
            pts, tb, duration, img = item
            if output is None:
                output = av.open(tmp, 'w')
                output.metadata.update(metadata)
                stream = output.add_stream(codec, rate=rate)
                h, w = img.shape[:2]
                stream.width, stream.height = w + w % 2, h + h % 2  # 4:2:0 needs even sides
                formats = [f.name for f in (stream.codec_context.codec.video_formats or [])]
                stream.pix_fmt = 'yuv420p' if not formats or 'yuv420p' in formats else formats[0]
                stream.time_base = tb
                stream.codec_context.time_base = tb
                if codec in CRF_CODECS:
                    stream.codec_context.options = {'crf': str(crf), **({'b': '0'} if codec == 'libvpx-vp9' else {})}
                summary.size = (stream.width, stream.height)
                pump = _AudioPump(av, input_path, output, summary, logger)
            if img.shape[0] % 2 or img.shape[1] % 2:
                img = np.pad(img, ((0, img.shape[0] % 2), (0, img.shape[1] % 2), (0, 0)), mode='edge')
            frame = av.VideoFrame.from_ndarray(img, format='bgr24')
            frame.pts, frame.time_base = pts, tb
            if duration:
                frame.duration = duration
            for packet in stream.encode(frame):
                output.mux(packet)
            pump.until(float(pts * tb) + 0.5)
            summary.frames += 1
            if progress is not None:
                progress(1)
        if output is None:
            if not pipe.stop.is_set():
                raise VideoError(f'{input_path}: no video frame could be decoded.')
            return
        if pipe.stop.is_set():
            return
        for packet in stream.encode(None):
            output.mux(packet)
        pump.until(None)
        pump.close()
    finally:
        if pump is not None:
            pump.demuxer.close()
        if output is not None:
            try:
                output.close()
            except Exception:  # noqa: BLE001  (closing after an abort: the temporary file is removed anyway)
                if not pipe.stop.is_set():
                    raise
