"""The PyAV side of video restoration: opening a clip, the encode + mux stage, the audio carried over.

* :func:`open_container` is the one call of ``av.open`` (a path of any kind, given to PyAV as a plain ``str``);
  :func:`open_input` opens a clip (one-line :class:`VideoError` for a file that is not a readable video);
  :func:`upright` applies the stream's rotation to a decoded frame.
* :func:`encode_stage` encodes the restored frames with their own timestamps (H.264 yuv420p by default; odd sizes
  padded by one pixel) and, through :class:`AudioPump`, muxes every audio stream of the input in step with them:
  packets copied as they are when the output container takes their codec, else re-encoded to AAC.
* :class:`Pipeline`: the stop flag, first error and bounded hand-over between the stage threads of
  :func:`panininet.pipeline.video.restore_video`.
"""
import os
import os.path as osp
import queue
import threading

import numpy as np

VIDEO_EXTENSIONS = ('.mp4', '.m4v', '.mov', '.mkv', '.webm', '.avi', '.mpg', '.mpeg', '.ts', '.mts', '.m2ts', '.wmv',
                    '.flv', '.3gp', '.ogv')
# encoders whose quality is set by a constant rate factor
CRF_CODECS = ('libx264', 'libx264rgb', 'libx265', 'libvpx-vp9', 'libsvtav1', 'libaom-av1')
END = object()  # the item that closes a stage's queue


class VideoError(ValueError):
    """A clip that cannot be read or written; the message is one line naming the file and the problem."""


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


class Pipeline:
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
        """Next item, or END when the pipeline stops."""
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return END

    def thread(self, target, *args):
        def run():
            try:
                target(*args)
            except BaseException as err:  # noqa: BLE001  (handed to the calling thread, which raises it)
                self.fail(err)
        t = threading.Thread(target=run, daemon=True, name=getattr(target, '__name__', 'stage'))
        t.start()
        return t


def open_container(av, path, mode='r', **kwargs):
    """``av.open(path, mode, **kwargs)`` for a path of any kind.

    PyAV 19 (what pip installs on Python >= 3.12) takes only an exact ``str`` or a path-like: a ``str`` subclass such as
    Gradio's upload name (``gradio.utils.NamedString``) raises ``TypeError: Expected str, got ...``. The path is
    passed as a plain ``str``, which every PyAV release takes.

    Args:
        av (module): The imported ``av`` package.
        path (str | os.PathLike): The clip.
        mode (str): 'r' or 'w'. Default: 'r'.
        **kwargs: Passed on (``format``, ``options``, ...).

    Returns:
        av.container.Container
    """
    return av.open(str(os.fspath(path)), mode, **kwargs)


def open_input(av, path):
    try:
        container = open_container(av, path, 'r')
    except (av.error.FFmpegError, OSError) as err:
        raise VideoError(f'{path}: not a readable video ({short_error(err)}).') from err
    if not container.streams.video:
        container.close()
        raise VideoError(f'{path}: has no video stream.')
    return container


def short_error(err):
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


class AudioPump:
    """Carries the input's audio streams into the output, in step with the video, read by a second demuxer."""

    def __init__(self, av, input_path, output, summary, logger):
        self.output = output
        self.streams = {}  # input index -> (output stream, decoder, or None to copy the packets)
        self.demuxer = open_container(av, input_path, 'r')
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


def encode_stage(av, pipe, done_q, input_path, tmp, metadata, rate, codec, crf, summary, progress, logger):
    output = pump = stream = None
    try:
        while True:
            item = pipe.get(done_q)
            if item is END:
                break
            pts, tb, duration, img = item
            if output is None:
                output = open_container(av, tmp, 'w')
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
                pump = AudioPump(av, input_path, output, summary, logger)
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
