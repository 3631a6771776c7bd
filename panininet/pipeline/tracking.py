"""Temporal stability for video: faces tracked across frames, their landmarks smoothed, brief misses bridged.

Restoring every frame on its own makes faces jitter: the detector's 5 landmarks move by a pixel or two from frame
to frame although the face does not, so the aligned crop, the restored face and its pasted square wobble with them.
:class:`FaceTracker` removes that wobble:

* **Tracks.** Each frame's faces are matched to the tracks of the previous frames by the overlap (IoU) of their
  boxes, greedily from the best overlap down; a face that overlaps no track by ``iou_threshold`` starts a new one.
* **Smoothing.** A track's landmarks at frame ``t`` are a local linear fit (least squares in time, each of the 10
  coordinates) of its detections in the window ``t - radius .. t + radius``, evaluated at ``t``. A straight fit is
  exact for a steady pan or zoom (no lag, unlike a running average), and averages the detector's noise over up to
  ``2 * radius + 1`` frames. The window is centred, so frame ``t`` is ready only once ``t + lookahead`` has been seen:
  the video pipeline holds ``lookahead`` frames more, a bounded delay.
* **Brief misses.** A frame where a track's face is not detected, but the face is detected again within ``max_gap``
  frames, gets the track's landmarks (interpolated by the same fit) instead of flashing back to the unrestored face.
  A face that leaves for good is not carried on.

Landmarks are (5, 2) arrays in FFHQ order (eye centres, nose tip, mouth corners), as
:meth:`panininet.pipeline.restorer.PaniniRestorer.detect_landmarks` gives them.
"""
import numpy as np


def landmark_box(landmarks):
    """Square box ``(x0, y0, x1, y1)`` around one face's 5 landmarks (about the face's extent).

    Args:
        landmarks (np.ndarray): (5, 2).

    Returns:
        np.ndarray: (4,) float64.
    """
    lm = np.asarray(landmarks, np.float64)
    centre = lm.mean(0)
    eyes, mouth = lm[:2].mean(0), lm[3:].mean(0)
    half = max(np.linalg.norm(lm[1] - lm[0]), np.linalg.norm(mouth - eyes), 1.0) * 1.2
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])


def box_iou(a, b):
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def local_linear(times, values, t):
    """Least-squares line through ``(times, values)`` evaluated at ``t`` (the value itself for one sample).

    Args:
        times (np.ndarray): (n,) frame indices.
        values (np.ndarray): (n, ...) samples.
        t (float): Where to evaluate.

    Returns:
        np.ndarray: (...) the fitted value at ``t``.
    """
    times = np.asarray(times, np.float64)
    values = np.asarray(values, np.float64)
    if len(times) == 1:
        return values[0]
    dt = times - t
    design = np.stack([np.ones_like(dt), dt], axis=1)
    coef = np.linalg.lstsq(design, values.reshape(len(times), -1), rcond=None)[0]
    return coef[0].reshape(values.shape[1:])


class FaceTracker:
    """Track faces over a stream of frames and give each frame its smoothed, gap-filled landmarks.

    Feed one frame's detections at a time with :meth:`push`; it returns the frames that became ready (those
    ``lookahead`` frames back), and :meth:`flush` returns the rest at the end of the stream. Frames come out in
    order, every frame exactly once.

    Args:
        radius (int): Half width of the smoothing window, in frames (window ``2 * radius + 1``). Default: 4.
        max_gap (int): Longest run of frames where a tracked face may go undetected and still be filled in from its
            track. 0: no filling. Default: 4.
        iou_threshold (float): Least box overlap for a detection to continue a track. Default: 0.3.
    """

    def __init__(self, radius=4, max_gap=4, iou_threshold=0.3):
        if radius < 0 or max_gap < 0:
            raise ValueError(f'radius and max_gap must be >= 0, got {radius} and {max_gap}.')
        self.radius = int(radius)
        self.max_gap = int(max_gap)
        self.iou_threshold = float(iou_threshold)
        self.lookahead = max(self.radius, self.max_gap)
        self.tracks = []  # each: {'id', 'obs': {frame: (5, 2)}, 'last': frame}
        self.next_id = 0
        self.frame = -1  # last frame pushed
        self.emitted = -1  # last frame returned

    def push(self, landmarks):
        """Add the next frame's detections.

        Args:
            landmarks (np.ndarray): (n, 5, 2) this frame's faces (n may be 0).

        Returns:
            list[tuple[int, list[tuple[int, np.ndarray]]]]: Frames now ready: ``(frame_index, faces)`` with ``faces``
            a list of ``(track_id, (5, 2) landmarks)``, ordered by track id.
        """
        self.frame += 1
        self._match(self.frame, np.asarray(landmarks, np.float64).reshape(-1, 5, 2))
        ready = []
        while self.emitted < self.frame - self.lookahead:
            ready.append(self._emit(self.emitted + 1))
        return ready

    def flush(self):
        """The frames still held back, at the end of the stream (same form as :meth:`push`)."""
        ready = []
        while self.emitted < self.frame:
            ready.append(self._emit(self.emitted + 1))
        return ready

    def _match(self, t, detections):
        live = [tr for tr in self.tracks if t - tr['last'] <= self.max_gap + 1]
        boxes = [landmark_box(d) for d in detections]
        pairs = sorted(((box_iou(landmark_box(tr['obs'][tr['last']]), box), ti, di)
                        for ti, tr in enumerate(live) for di, box in enumerate(boxes)), reverse=True)
        used_tracks, used_dets = set(), set()
        for iou, ti, di in pairs:
            if iou < self.iou_threshold:
                break
            if ti in used_tracks or di in used_dets:
                continue
            used_tracks.add(ti)
            used_dets.add(di)
            live[ti]['obs'][t] = detections[di]
            live[ti]['last'] = t
        for di, det in enumerate(detections):
            if di not in used_dets:
                self.tracks.append({'id': self.next_id, 'obs': {t: det}, 'last': t})
                self.next_id += 1

    def _emit(self, f):
        faces = []
        for tr in self.tracks:
            obs = tr['obs']
            if f not in obs:
                before = [k for k in obs if k < f]
                after = [k for k in obs if f < k <= f + self.max_gap]
                if not before or not after or min(after) - max(before) - 1 > self.max_gap:
                    continue
            near = sorted(k for k in obs if abs(k - f) <= self.radius)
            if not near:  # a gap wider than the window: interpolate between its two ends
                near = [max(k for k in obs if k < f), min(k for k in obs if k > f)]
            faces.append((tr['id'], local_linear(near, [obs[k] for k in near], f).astype(np.float32)))
        self.emitted = f
        # forget what no later frame can use
        keep_from = f + 1 - max(self.radius, self.max_gap + 1)
        for tr in self.tracks:
            for k in [k for k in tr['obs'] if k < keep_from and k != tr['last']]:
                del tr['obs'][k]
        self.tracks = [tr for tr in self.tracks if tr['last'] >= f - self.max_gap - 1 or tr['last'] > f]
        return f, faces
