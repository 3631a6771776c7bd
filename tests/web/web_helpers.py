"""Helpers of the web page's tests (fixtures are in this folder's conftest.py): the CLI's fast flags, a short clip
with sound, and what a clip holds."""
import fractions
import importlib.util
import os.path as osp

import cv2
import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_ARCH = dict(in_size=64, out_size=128, narrow=0.25, channel_multiplier=1, num_style_feat=64, dre_num_feat=16,
                 dre_in_size=64)
# the CLI's flags for the settings the tests give the page (dlib: offline, no detector download)
CLI_FAST = ['--detector', 'dlib', '--dlib_upsample', '0', '--device', 'cpu', '--no_download']


def load_cli():
    spec = importlib.util.spec_from_file_location('inference_panini', osp.join(REPO_ROOT, 'inference_panini.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_clip(path, frames, fps=25, rate=16000):
    """H.264 mp4 of ``frames`` (BGR) with a mono AAC tone as long as the clip."""
    import av

    out = av.open(str(path), 'w', format='mp4')
    v = out.add_stream('libx264', rate=fps)
    v.height, v.width = frames[0].shape[:2]
    v.pix_fmt = 'yuv420p'
    a = out.add_stream('aac', rate=rate, layout='mono')
    for img in frames:
        for p in v.encode(av.VideoFrame.from_ndarray(img, format='bgr24')):
            out.mux(p)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate * len(frames) // fps) / rate)).astype(np.float32)
    step = a.codec_context.frame_size or 1024
    for pos in range(0, len(tone), step):
        frame = av.AudioFrame.from_ndarray(tone[None, pos:pos + step], format='fltp', layout='mono')
        frame.sample_rate, frame.pts, frame.time_base = rate, pos, fractions.Fraction(1, rate)
        for p in a.encode(frame):
            out.mux(p)
    for stream in (v, a):
        for p in stream.encode(None):
            out.mux(p)
    out.close()
    return str(path)


def clip_frames(face, n=6):
    """``n`` 174 x 232 frames panning over the face photo by 2 px a frame."""
    return [cv2.warpAffine(face, np.float32([[1, 0, -2 * t], [0, 1, 0]]), (174, 232), borderMode=cv2.BORDER_REFLECT)
            for t in range(n)]


def probe_clip(path):
    """(frames decoded, [audio codec names]) of a clip."""
    import av

    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(c.streams.video[0]))
        audio = [s.codec_context.name for s in c.streams.audio]
    return frames, audio
