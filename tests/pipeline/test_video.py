"""Video restoration: frames, timing and sound kept, faces restored in every frame, tracking removes jitter.

The clips are made here: a photo of ../shared/testdata seen through a window that pans and zooms smoothly (so the
true motion of the face is known: the affine ``source -> frame`` of each frame), with a sine tone, in two containers
(mp4 with AAC audio: copied; mkv with 8-bit PCM audio, which mp4 cannot hold: re-encoded to AAC). The detector is
dlib's (offline); the network a tiny PaniniNet saved in our weights format.
"""
import fractions
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO_ROOT, psnr

from panininet.pipeline.restorer import PaniniRestorer
from panininet.pipeline.tracking import FaceTracker, box_iou, landmark_box, local_linear

av = pytest.importorskip('av')
pytest.importorskip('dlib')

from panininet.pipeline.video import VideoError, probe_frame_count, restore_video  # noqa: E402  (needs av)

N_FRAMES, FACE_FRAMES, FPS, SIZE, RATE = 20, 16, 25, (160, 120), 16000  # frames FACE_FRAMES.. show no face
NOISE_PX = 2.0  # synthetic landmark noise (std, pixels per coordinate) for the jitter test: dlib is too steady here
MISSED = 8  # the frame where the detector is made to miss the face


def motion(t):
    """source -> frame affine (2, 3) of frame t: a window over the photo that pans right/down and zooms in."""
    cx, cy, width = 470 + 3.0 * t, 211 + 1.0 * t, 420 - 3.0 * t
    s = SIZE[0] / width
    return np.array([[s, 0, SIZE[0] / 2 - s * cx], [0, s, SIZE[1] / 2 - s * cy]])


def source_photo(shared_dir):
    img = cv2.imread(osp.join(shared_dir, 'testdata', 'whole_imgs', 'Blake_Lively.jpg'))
    return cv2.GaussianBlur(img, (0, 0), 1.0)  # against aliasing when the window shrinks it


def frames_of(shared_dir):
    src = source_photo(shared_dir)
    frames = [cv2.warpAffine(src, motion(t), SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
              for t in range(N_FRAMES)]
    rng = np.random.default_rng(0)
    for t in range(FACE_FRAMES, N_FRAMES):  # the face has gone: a smooth faceless texture
        frames[t] = cv2.GaussianBlur(rng.integers(0, 255, (*SIZE[::-1], 3), dtype=np.uint8), (0, 0), 4)
    return frames


def write_clip(path, frames, fmt, vcodec, acodec, rotation=0, subtitles=False, options=None):
    """Encode ``frames`` (BGR) at FPS with a 440 Hz tone lasting exactly the clip's duration (and an empty SubRip
    subtitle stream when ``subtitles``); ``options`` go to the muxer (e.g. ``{'movflags': 'faststart'}``)."""
    out = av.open(path, 'w', format=fmt, options=options or {})
    if subtitles:
        sub = out.add_stream('subrip')
        sub.time_base = sub.codec_context.time_base = fractions.Fraction(1, 1000)
        sub.codec_context.subtitle_header = b'[Script Info]\r\n'  # (the encoder will not open without one)
    v = out.add_stream(vcodec, rate=FPS)
    h, w = frames[0].shape[:2]
    v.width, v.height, v.pix_fmt = w, h, 'yuv420p'
    if vcodec == 'libx264':
        v.codec_context.options = {'crf': '12'}
    if rotation:
        v.set_display_rotation(rotation)
    a = out.add_stream(acodec, rate=RATE, layout='mono')
    for img in frames:
        for p in v.encode(av.VideoFrame.from_ndarray(img, format='bgr24')):
            out.mux(p)
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE * len(frames) // FPS) / RATE)
    fmt_a = a.codec_context.format.name
    step = a.codec_context.frame_size or 1024
    for pos in range(0, len(tone), step):
        chunk = tone[pos:pos + step]
        arr = (chunk * 127 + 128).astype(np.uint8) if fmt_a.startswith('u8') else chunk.astype(np.float32)
        frame = av.AudioFrame.from_ndarray(arr[None], format=fmt_a, layout='mono')
        frame.sample_rate, frame.pts, frame.time_base = RATE, pos, fractions.Fraction(1, RATE)
        for p in a.encode(frame):
            out.mux(p)
    for stream in (v, a):
        for p in stream.encode(None):
            out.mux(p)
    out.close()
    return path


def probe(path):
    """Decoded frames (BGR, upright), video duration in s, and per audio stream (codec, rate, duration, packets)."""
    with av.open(path) as c:
        v = c.streams.video[0]
        frames, last = [], None
        for f in c.decode(v):
            frames.append(np.rot90(f.to_ndarray(format='bgr24'), round(f.rotation / 90) % 4))
            last = f
        duration = float((last.pts + last.duration) * last.time_base) - float((v.start_time or 0) * v.time_base)
    audio = []
    with av.open(path) as c:
        for s in c.streams.audio:
            packets = [bytes(p) for p in c.demux(s) if p.size]
            audio.append((s.codec_context.name, s.codec_context.sample_rate, packets))
    with av.open(path) as c:  # audio duration: the stream's (mp4: after the encoder delay is trimmed), else decoded
        for i, s in enumerate(c.streams.audio):
            seconds = float(s.duration * s.time_base) if s.duration else sum(
                fr.samples for fr in c.decode(s)) / s.codec_context.sample_rate
            audio[i] = (*audio[i], seconds)
    return frames, duration, audio


@pytest.fixture(scope='module', autouse=True)
def _one_thread():
    """Tiny convolutions on 2 shared cores: one torch thread is several times faster (see helpers)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def restorer(tiny_model):
    return PaniniRestorer(model_path=tiny_model, upscale=2, detector='dlib', device='cpu', batch_size=4,
                          allow_download=False)


@pytest.fixture(scope='module')
def clips(shared_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp('clips')
    frames = frames_of(shared_dir)
    return {'frames': frames,
            'mp4': write_clip(str(folder / 'pan.mp4'), frames, 'mp4', 'libx264', 'aac'),
            'mkv': write_clip(str(folder / 'pan.mkv'), frames, 'matroska', 'mpeg4', 'pcm_u8', subtitles=True)}


class Recorder:
    """Wraps a restorer's detect/align steps: adds seeded landmark noise, misses a frame, records the crops."""

    def __init__(self, restorer, noise=0.0, miss=None):
        self.restorer, self.noise, self.miss = restorer, noise, miss
        self.rng = np.random.default_rng(1)
        self.frame = -1
        self.affines = []  # per aligned frame: list of (2, 3)

    def __enter__(self):
        r = self.restorer
        detect, align = r.detect_landmarks, r.align_faces

        def noisy_detect(img, only_center_face=False):
            self.frame += 1
            lms = detect(img, only_center_face)
            if self.frame == self.miss:
                return lms[:0]
            return lms + self.rng.normal(0, self.noise, lms.shape).astype(np.float32) if self.noise else lms

        def recording_align(img, landmarks):
            crops, affines = align(img, landmarks)
            self.affines.append(affines)
            return crops, affines

        r.detect_landmarks, r.align_faces = noisy_detect, recording_align
        return self

    def __exit__(self, *exc):
        del self.restorer.detect_landmarks, self.restorer.align_faces


def crop_centres(affines):
    """Centre of each frame's (first) aligned crop, in frame pixels."""
    return np.array([cv2.invertAffineTransform(a[0]) @ [255.5, 255.5, 1.0] for a in affines])


def face_region(frame_index, scale=2):
    """Boolean mask of the output frame around the face (its known position), for face-only comparisons."""
    m = motion(frame_index)
    x, y = m @ [500.0, 211.0, 1.0] * scale
    half = 0.2 * SIZE[0] / (420 - 3.0 * frame_index) * 186 * scale
    sel = np.zeros((SIZE[1] * scale, SIZE[0] * scale), bool)
    sel[int(y - half):int(y + half), int(x - half):int(x + half)] = True
    return sel


@pytest.fixture(scope='module')
def smooth_run(restorer, clips, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('smooth') / 'pan.mp4')
    with Recorder(restorer, noise=NOISE_PX, miss=MISSED) as rec:
        summary = restore_video(restorer, clips['mp4'], out)
    return out, summary, rec


def test_frames_timing_and_audio_copied(clips, smooth_run):
    out, summary, _ = smooth_run
    in_frames, in_duration, in_audio = probe(clips['mp4'])
    frames, duration, audio = probe(out)
    assert summary.frames == len(frames) == len(in_frames) == N_FRAMES
    assert frames[0].shape == (2 * SIZE[1], 2 * SIZE[0], 3)
    assert duration == pytest.approx(in_duration, abs=1e-3) and duration == pytest.approx(N_FRAMES / FPS, abs=1e-3)
    with av.open(out) as c:
        assert c.streams.video[0].codec_context.name == 'h264'
        assert c.streams.video[0].codec_context.pix_fmt == 'yuv420p'
        assert c.streams.video[0].average_rate == FPS
    assert summary.audio == ['copied aac']
    assert len(audio) == 1 and audio[0][:2] == ('aac', RATE)
    assert audio[0][2] == in_audio[0][2]  # every audio packet bit for bit
    assert not [f for f in os.listdir(osp.dirname(out)) if f != 'pan.mp4']  # no temporary file left


def test_faces_restored_in_every_frame_and_faceless_frames_pass_through(clips, smooth_run):
    out, summary, rec = smooth_run
    frames, _, _ = probe(out)
    in_frames, _, _ = probe(clips['mp4'])
    # the missed frame is filled from the track: every frame with a face has it restored, the faceless ones none
    assert [len(a) for a in rec.affines] == [1] * FACE_FRAMES  # (frames without a face are not aligned)
    assert summary.faces == FACE_FRAMES
    for t, (frame, src) in enumerate(zip(frames, in_frames)):
        plain = cv2.resize(src, frame.shape[1::-1], interpolation=cv2.INTER_LANCZOS4)
        if t < FACE_FRAMES:
            assert psnr(frame, plain, face_region(t)) < 25, t  # the tiny network's face, not the input's
        else:
            assert psnr(frame, plain) > 35, t  # passed through (H.264 losses only)


def test_smoothing_removes_jitter(shared_dir, restorer, clips, smooth_run, tmp_path):
    """Frame-to-frame jitter of the aligned crop centre against the known motion, with and without tracking.

    The detector's landmarks get seeded Gaussian noise (NOISE_PX): on this synthetic pan dlib alone is too steady
    to show a difference. The error ``e_t`` is the crop centre minus the true centre (the source photo's crop
    centre moved by ``motion(t)``); jitter is the RMS of ``e_t - e_{t-1}``, what a viewer sees as shaking.
    """
    _, _, smooth = smooth_run
    with Recorder(restorer, noise=NOISE_PX, miss=MISSED) as raw:
        restore_video(restorer, clips['mp4'], str(tmp_path / 'raw.mp4'), smooth=False)
    assert len(raw.affines) == FACE_FRAMES - 1  # without tracking the missed frame has no face (not aligned)
    lms = restorer.detect_landmarks(source_photo(shared_dir))
    lms = lms[np.argmax(lms[:, :, 0].mean(1))]  # the face on the right, the one the window follows
    c_src = cv2.invertAffineTransform(restorer.align_faces(source_photo(shared_dir), lms[None])[1][0]) @ [
        255.5, 255.5, 1.0]  # its crop centre in the photo
    keep = [t for t in range(FACE_FRAMES) if t != MISSED]
    truth = np.array([motion(t) @ [*c_src, 1.0] for t in keep])

    def jitter(affines):
        err = crop_centres(affines) - truth
        return float(np.sqrt(np.mean(np.sum(np.diff(err, axis=0) ** 2, axis=1))))

    j_smooth, j_raw = jitter([smooth.affines[t] for t in keep]), jitter(raw.affines)
    print(f'crop-centre jitter: {j_raw:.2f} px without tracking, {j_smooth:.2f} px with')
    assert j_raw > 1.0  # the noise is there
    assert j_smooth <= j_raw / 3


def test_photo_pipeline_equivalence_reencoded_audio_and_bad_inputs(cli, clips, tiny_model, restorer, tmp_path,
                                                                   capsys):
    """The CLI on a folder mixing a photo, an mkv clip (with subtitles), a bad and a truncated clip: the good ones
    are done, the subtitles dropped with a warning."""
    folder = tmp_path / 'in'
    folder.mkdir()
    (folder / 'pan.mkv').write_bytes(open(clips['mkv'], 'rb').read())
    cv2.imwrite(str(folder / 'still.png'), clips['frames'][0])
    (folder / 'bad.mp4').write_bytes(b'not a video at all')
    data = open(clips['mp4'], 'rb').read()
    (folder / 'cut.mp4').write_bytes(data[:len(data) // 2])
    out = tmp_path / 'out'
    with pytest.warns(UserWarning, match='Skipped|dropping subtitle') as record:
        rc = cli.main(['-i', str(folder), '-o', str(out), '--model_path', tiny_model, '-s', '2', '--no_smooth',
                       '--detector', 'dlib', '--device', 'cpu', '--no_download'])
    assert rc == cli.EXIT_SKIPPED  # the two bad clips were skipped, the rest restored
    messages = [str(w.message) for w in record]
    for name in ('bad.mp4', 'cut.mp4'):
        line = next(m for m in messages if name in m)
        assert 'Skipped' in line and '\n' not in line.strip()
    assert any('pan.mkv: dropping subtitle stream' in m for m in messages)
    assert 'Traceback' not in capsys.readouterr().err
    assert sorted(os.listdir(out / 'restored_videos')) == ['pan.mp4']
    assert sorted(os.listdir(out / 'restored_imgs')) == ['still.png']
    frames, duration, audio = probe(str(out / 'restored_videos' / 'pan.mp4'))
    in_frames, in_duration, in_audio = probe(clips['mkv'])
    with av.open(str(out / 'restored_videos' / 'pan.mp4')) as c:
        assert [st.type for st in c.streams] == ['video', 'audio']
    assert len(frames) == N_FRAMES and duration == pytest.approx(in_duration, abs=1e-3)
    (codec, rate, _, seconds), (_, in_rate, _, in_seconds) = audio[0], in_audio[0]
    assert (codec, rate) == ('aac', in_rate)  # pcm_u8 does not go in mp4: re-encoded, same rate and length
    assert seconds == pytest.approx(in_seconds, abs=1e-3)
    # without smoothing each frame is the photo pipeline's result on the same (decoded) frame
    for t in (0, MISSED, FACE_FRAMES - 1, N_FRAMES - 1):
        _, restored, expected = restorer.enhance(in_frames[t])
        assert len(restored) == (1 if t < FACE_FRAMES else 0)
        assert psnr(frames[t], expected) > 35, t


def test_rotation_metadata_is_honoured(restorer, clips, tmp_path):
    """A phone clip stored sideways with a 90-degree display rotation comes out upright with its faces."""
    sideways = [np.ascontiguousarray(np.rot90(f, -1)) for f in clips['frames'][:6]]
    path = write_clip(str(tmp_path / 'phone.mp4'), sideways, 'mp4', 'libx264', 'aac', rotation=90)
    summary = restore_video(restorer, path, str(tmp_path / 'out.mp4'))
    frames, _, _ = probe(str(tmp_path / 'out.mp4'))
    assert frames[0].shape == (2 * SIZE[1], 2 * SIZE[0], 3)  # upright: as wide as the original frames
    assert summary.faces == 6  # dlib finds upright faces only


def test_tracker_bridges_misses_and_starts_new_tracks():
    face = np.array([[40, 50], [60, 50], [50, 60], [42, 70], [58, 70]], np.float64)
    tracker = FaceTracker(radius=2, max_gap=2)
    out = []
    for t in range(12):
        dets = [face + [2.0 * t, 0]]
        if t in (4, 5):
            dets = []  # missed twice: filled in
        if t >= 8:
            dets.append(face + [200, 0])  # a second face appears: a new track
        out += tracker.push(np.array(dets).reshape(-1, 5, 2))
    out += tracker.flush()
    assert [f for f, _ in out] == list(range(12))
    assert all(len(faces) == 1 for f, faces in out if f < 8) and all(len(faces) == 2 for f, faces in out if f >= 8)
    # linear motion is followed without lag, also through the gap
    for f, faces in out:
        np.testing.assert_allclose(faces[0][1], face + [2.0 * f, 0], atol=1e-4)
    assert {tid for _, faces in out for tid, _ in faces} == {0, 1}


def test_tracker_drops_a_face_that_leaves():
    face = np.array([[40, 50], [60, 50], [50, 60], [42, 70], [58, 70]], np.float64)
    tracker = FaceTracker(radius=2, max_gap=2)
    out = []
    for t in range(8):
        out += tracker.push(np.array([face] if t < 3 else []).reshape(-1, 5, 2))
    out += tracker.flush()
    assert [len(faces) for _, faces in out] == [1, 1, 1, 0, 0, 0, 0, 0]


def test_tracking_helpers():
    assert box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    box = landmark_box(np.array([[40, 50], [60, 50], [50, 60], [42, 70], [58, 70]]))
    assert box[2] - box[0] == box[3] - box[1] > 20
    assert local_linear([0, 1, 2], np.array([1.0, 3.0, 5.0]), 3) == pytest.approx(7.0)


def test_bad_video_error(restorer, tmp_path):
    (tmp_path / 'x.mp4').write_bytes(b'\x00' * 100)
    with pytest.raises(VideoError, match=r'x\.mp4: not a readable video'):
        restore_video(restorer, str(tmp_path / 'x.mp4'), str(tmp_path / 'y.mp4'))
    assert os.listdir(tmp_path) == ['x.mp4']


def test_interrupt_leaves_no_partial_file(restorer, clips, tmp_path):
    """Ctrl-C (or SIGTERM, which the CLI turns into KeyboardInterrupt) mid-clip: the stages stop, nothing is left."""
    def interrupt_at_third_frame(_):
        interrupt_at_third_frame.n += 1
        if interrupt_at_third_frame.n == 3:
            raise KeyboardInterrupt

    interrupt_at_third_frame.n = 0
    with pytest.raises(KeyboardInterrupt):
        restore_video(restorer, clips['mp4'], str(tmp_path / 'out.mp4'), progress=interrupt_at_third_frame)
    assert os.listdir(tmp_path) == []


def test_kill_leaves_no_partial_file(clips, tiny_model, tmp_path):
    """``kill`` (SIGTERM) of the CLI while a clip is being written: exit 130, no file left in restored_videos."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / 'out'
    root = REPO_ROOT
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS='1')
    proc = subprocess.Popen([sys.executable, osp.join(root, 'inference_panini.py'), '-i', clips['mp4'], '-o',
                             str(out), '--model_path', tiny_model, '--detector', 'dlib', '--device', 'cpu',
                             '--no_download'], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder, deadline = out / 'restored_videos', time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if folder.is_dir() and any('.part' in f for f in os.listdir(folder)):
            break
        time.sleep(0.05)
    assert proc.poll() is None, 'the run ended before it could be interrupted'
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert 'Interrupted' in err and 'Traceback' not in err
    assert os.listdir(folder) == []


def test_clip_that_stops_decoding_early_is_written_warned_and_exit_1(cli, shared_dir, tiny_model, tmp_path, capsys):
    """A phone clip cut off in the middle (its header, written first, announces every frame): the frames decoded are
    restored and written, the warning gives frames decoded / announced, and the run exits with status 1."""
    frames = frames_of(shared_dir)
    full = write_clip(str(tmp_path / 'full.mp4'), frames, 'mp4', 'libx264', 'aac', options={'movflags': 'faststart'})
    folder = tmp_path / 'in'
    folder.mkdir()
    data = open(full, 'rb').read()
    (folder / 'cut.mp4').write_bytes(data[:int(len(data) * 0.6)])
    with av.open(str(folder / 'cut.mp4')) as c:
        announced = c.streams.video[0].frames
    assert announced == len(frames)
    out = tmp_path / 'out'
    with pytest.warns(UserWarning, match='decoding stopped early') as record:
        rc = cli.main(['-i', str(folder), '-o', str(out), '--model_path', tiny_model, '-s', '1', '--no_smooth',
                       '--detector', 'dlib', '--device', 'cpu', '--no_download'])
    assert rc == cli.EXIT_SKIPPED
    written = probe(str(out / 'restored_videos' / 'cut.mp4'))[0]
    assert 0 < len(written) < announced
    line = next(str(w.message) for w in record if 'decoding stopped early' in str(w.message))
    assert f'{len(written)} frames decoded, {announced} announced' in line and '\n' not in line.strip()
    assert 'incomplete (cut.mp4)' in capsys.readouterr().out


class UploadName(str):
    """A ``str`` subclass, as Gradio hands the web page's uploads over (``gradio.utils.NamedString``)."""


def test_paths_that_are_str_subclasses(restorer, clips, tmp_path):
    """PyAV 19 (what pip installs on Python >= 3.12) raises ``TypeError: Expected str, got ...`` for a ``str``
    subclass, which is what the web page passes; every ``av.open`` goes through ``open_container``."""
    source = UploadName(write_clip(str(tmp_path / 'upload.mp4'), clips['frames'][:4], 'mp4', 'libx264', 'aac'))
    if int(av.__version__.split('.')[0]) >= 19:
        with pytest.raises(TypeError, match='Expected str'):
            av.open(source)  # the failure absorbed (PyAV 18 takes the subclass as it is)
    assert probe_frame_count(source) == 4
    out = UploadName(str(tmp_path / 'out.mp4'))
    summary = restore_video(restorer, source, out)
    assert summary.frames == len(probe(str(out))[0]) == 4 and summary.faces == 4
