"""Restore every face of a video clip, streaming: constant memory, sound and timing kept, no jitter.

:func:`restore_video` (also :meth:`panininet.pipeline.restorer.PaniniRestorer.enhance_video`) runs four stages at once,
each in its own thread, joined by bounded queues (``queue_size`` items each), so memory does not grow with the clip:

1. **decode** (PyAV): video frames in presentation order, turned upright per the stream's rotation metadata;
2. **analyse**: :meth:`~panininet.pipeline.restorer.PaniniRestorer.detect_landmarks` on each frame, then (unless
   ``smooth=False``) :class:`panininet.pipeline.tracking.FaceTracker` (faces tracked by box overlap, landmarks smoothed
   over a short centred window, brief misses filled from the track), then
   :meth:`~panininet.pipeline.restorer.PaniniRestorer.align_faces` with those landmarks;
3. **restore** (the calling thread): the faces of consecutive frames go through the network together
   (:meth:`~panininet.pipeline.restorer.PaniniRestorer.restore_faces`, ``batch_size`` faces per call), then
   :meth:`~panininet.pipeline.restorer.PaniniRestorer.finish_faces` (colour fix, gray film) and
   :meth:`~panininet.pipeline.restorer.PaniniRestorer.paste_back` per frame;
4. **encode + mux** (PyAV): every frame with its own timestamp and duration (same frame count, frame rate and
   duration), H.264 yuv420p by default; every audio stream copied packet for packet when the output container takes
   its codec, else re-encoded to AAC; audio is read by a second demuxer of the input, in step with the video, so it
   never piles up in memory. Subtitle and data streams are dropped with a warning.

The PyAV side (opening, encoding, muxing, the audio) is :mod:`panininet.pipeline.video_io`. The output is written under
a temporary name beside ``output_path`` (``.NAME.XXXX.part.EXT``) and renamed when
complete (:func:`panininet.atomic.atomic_path`); an error or an interrupt removes it.
"""
import os.path as osp
import queue
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from basicsr.utils import get_root_logger

from panininet.atomic import atomic_path
from panininet.families.panini_family import weight_to_mask_bias
from panininet.pipeline.color import monochrome_tone
from panininet.pipeline.tracking import FaceTracker
from panininet.pipeline.video_io import (  # noqa: F401  (VIDEO_EXTENSIONS, is_video_file, VideoError: the public names here)
    CRF_CODECS,
    END,
    VIDEO_EXTENSIONS,
    Pipeline,
    VideoError,
    check_video_codec,
    encode_stage,
    import_av,
    is_video_file,
    open_container,
    open_input,
    short_error,
    upright,
)


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
        announced (int): Frames the clip's header announces (0 when it does not say).
        stopped_early (str): Why decoding stopped before the announced frames ('' when it did not): the frames
            decoded so far are restored and written, and the caller reports the clip as incomplete.
    """
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    audio: list = field(default_factory=list)
    dropped: list = field(default_factory=list)
    size: tuple = (0, 0)
    announced: int = 0
    stopped_early: str = ''

    @property
    def incomplete(self):
        """One phrase for a clip that stopped decoding early (frames decoded / announced), else ''."""
        if not self.stopped_early:
            return ''
        announced = f'{self.announced} announced' if self.announced else 'the clip announces no frame count'
        return f'decoding stopped early ({self.stopped_early}): {self.frames} frames decoded, {announced}'


def probe_frame_count(path):
    """Frames the clip says it has (for a progress bar's total), or None when it does not say or cannot be read."""
    try:
        av = import_av()
        with open_container(av, path) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return stream.frames
            if container.duration and stream.average_rate:
                return int(round(container.duration / 1e6 * float(stream.average_rate)))
    except Exception:  # noqa: BLE001  (a bad clip is reported by restore_video)
        return None
    return None


def restore_video(restorer, input_path, output_path, weight=0.5, only_center_face=False, smooth=True,
                  video_codec='libx264', crf=18, queue_size=8, progress=None, tracker=None):
    """Restore the faces of every frame of one clip and write it, with its sound, to ``output_path``.

    Args:
        restorer (panininet.pipeline.restorer.PaniniRestorer): Built with a detector.
        input_path (str): Any container/codec FFmpeg decodes (mp4, mov, mkv, avi, webm, ...).
        output_path (str): Destination; its extension picks the container (``.mp4`` in the CLI).
        weight (float | None): Fidelity, as in :meth:`~panininet.pipeline.restorer.PaniniRestorer.enhance`. Default:
            0.5.
        only_center_face (bool): Restore only the face closest to the centre of each frame. Default: False.
        smooth (bool): Track faces and smooth their landmarks (:class:`~panininet.pipeline.tracking.FaceTracker`); False
            treats every frame as an independent photo. Default: True.
        video_codec (str): FFmpeg encoder. Default: 'libx264'.
        crf (int): Constant rate factor for the encoders in :data:`CRF_CODECS` (lower is better). Default: 18.
        queue_size (int): Items each stage may hold ahead of the next. Default: 8.
        progress (callable | None): Called with 1 after each frame written. Default: None.
        tracker (panininet.pipeline.tracking.FaceTracker | None): The tracker to use when ``smooth`` (default settings
            when None). Default: None.

    Returns:
        VideoSummary: Frames, faces, time, what happened to each audio stream.

    Raises:
        VideoError: The input is not a readable video (bad, no video stream, no frame decodable) or the output
            cannot be written; nothing is left under ``output_path``. A clip that stops decoding early is not an
            error: its decoded frames are written and :attr:`VideoSummary.incomplete` says how many of how many.
        ImportError: PyAV is not installed.
    """
    av = import_av()
    codec = check_video_codec(video_codec)
    weight_to_mask_bias(weight)  # a bad -w fails here, not in a thread
    if restorer.face_helper is None:
        raise ValueError('This PaniniRestorer was built with detector=None (aligned faces only); videos need a '
                         'detector.')
    if osp.abspath(input_path) == osp.abspath(output_path):
        raise VideoError(f'{output_path} is the input; refusing to overwrite it.')
    start = time.time()
    source = open_input(av, input_path)
    summary = VideoSummary()
    pipe = Pipeline()
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

    summary.announced = vstream.frames or 0

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
            if index < 0:
                raise VideoError(f'{input_path}: broken or truncated video ({short_error(err)}).') from err
            summary.stopped_early = f'broken data after frame {index + 1}: {short_error(err)}'
        if not summary.stopped_early and summary.announced and index + 1 < summary.announced * 0.98:
            summary.stopped_early = 'truncated file'
        pipe.put(frames_q, END)  # what was decoded is restored and written; the caller reports the clip

    def analyse():
        track = (tracker or FaceTracker()) if smooth else None
        held = {}  # frames waiting for the tracker's look-ahead
        index = 0

        def send(item, landmarks):
            crops, affines = restorer.align_faces(item[3], landmarks) if len(landmarks) else ([], [])
            return pipe.put(aligned_q, (*item, crops, affines))

        while True:
            item = pipe.get(frames_q)
            if item is END:
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
        pipe.put(aligned_q, END)

    def encode(tmp):
        encode_stage(av, pipe, done_q, input_path, tmp, metadata, rate, codec.name, crf, summary, progress, logger)

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
                raise VideoError(f'{input_path}: {short_error(err)}.') from err
            raise err
    summary.seconds = time.time() - start
    if summary.incomplete:
        logger.warning(f'{input_path}: {summary.incomplete}; {output_path} holds the frames decoded.')
    return summary


def _restore_stage(restorer, pipe, aligned_q, done_q, weight, summary):
    """Gather consecutive frames until they hold ``batch_size`` faces, restore them in one go, paste, hand on."""
    max_frames = max(restorer.batch_size, 4)
    batch, n_faces, finished = [], 0, False
    while not finished:
        item = pipe.get(aligned_q)
        if item is END:
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
                if faces:  # colour fix (--color_fix), a black-and-white / tinted film's tone
                    faces = restorer.finish_faces(faces, crops, monochrome_tone(img))
                out = restorer.paste_back(img, affines, faces) if faces else restorer.upsample_background(img)
                summary.faces += len(faces)
                if not pipe.put(done_q, (pts, tb, duration, out)):
                    return
            batch, n_faces = [], 0
    pipe.put(done_q, END)
