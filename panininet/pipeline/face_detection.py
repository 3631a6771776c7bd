"""Face detection backends and a facexlib ``FaceRestoreHelper`` that never downloads behind your back.

Everything we do around facexlib 0.3.0 lives here:

* ``FaceRestoreHelper.__init__`` downloads RetinaFace *and* ParseNet unconditionally (into site-packages when no
  root is given). :func:`build_face_helper` runs that constructor with facexlib's two ``init_*_model`` functions
  replaced by ours: RetinaFace/ParseNet weights are taken from ``<weights root>/facexlib`` (downloaded there only when
  allowed, otherwise a clear :class:`~panininet.weights.releases.WeightsNotFoundError`), the dlib backend loads nothing
  from the network, and ParseNet is built only when ``use_parse=True``.
* An offline detector, :class:`DlibFaceDetector` (dlib HOG + the 5-point landmark predictor shipped in the
  ``face-recognition-models`` wheel). It answers ``detect_faces`` in RetinaFace's format, so facexlib's landmark,
  ``only_center_face`` and alignment code runs unchanged.
* ``face_recognition_models`` imports ``pkg_resources`` (gone from recent setuptools): we locate its model files
  without importing it (:func:`dlib_model_path`).

dlib's 5 points are two corners per eye and the base of the nose, not RetinaFace's eye centres / nose tip / mouth
corners. They are mapped onto facexlib's FFHQ template through :data:`DLIB5_TEMPLATE_512`: the mean position of
dlib's 5 points on FFHQ-style aligned faces (calibrated on the five CelebA-HQ ground-truth faces of the Panini-Net
examples resized to 512, not on the GFPGAN crops used to test the alignment). For
each face we fit (least squares) the similarity ``S`` taking that template onto dlib's points and report
``S(FFHQ_TEMPLATE_512)`` as the face's 5 landmarks, so facexlib's ``estimateAffinePartial2D(landmarks,
face_template)`` recovers ``S^-1``.
"""
import contextlib
import importlib.util
import os.path as osp

import numpy as np

from panininet.weights.releases import FACEXLIB_RELEASES, resolve_release_file, weights_root

DETECTORS = ('retinaface_resnet50', 'retinaface_mobile0.25', 'dlib', 'dlib_cnn')
DLIB_DETECTORS = ('dlib', 'dlib_cnn')

# facexlib's FFHQ 5-point template for 512 crops: eye centres (image left, right), nose tip, mouth corners
FFHQ_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                              [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float64)

# dlib's 5 points (image-right eye outer/inner corner, image-left eye outer/inner corner, nose base) on 512 FFHQ-style
# crops: mean over the 5 CelebA-HQ faces in panini_examples/GT resized to 512 (HOG upsample 1; spread 1-4 px, nose x
# 6.6 px).
DLIB5_TEMPLATE_512 = np.array([[343.2, 245.2], [293.4, 249.2], [168.4, 246.6], [217.2, 249.6], [259.6, 340.6]],
                              dtype=np.float64)


def dlib_model_path(name='shape_predictor_5_face_landmarks.dat'):
    """Path of a model file inside the ``face_recognition_models`` package, found without importing it.

    Raises:
        ImportError: The package is missing (install ``pip install panininet[offline]``).
    """
    spec = importlib.util.find_spec('face_recognition_models')
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('The dlib detector needs the face-recognition-models package: '
                          'pip install "panininet[offline]" (dlib-bin + face-recognition-models).')
    path = osp.join(list(spec.submodule_search_locations)[0], 'models', name)
    if not osp.isfile(path):
        raise ImportError(f'{path} is missing from face-recognition-models; reinstall it.')
    return path


def dlib_points_to_ffhq5(points):
    """Map dlib's 5 landmarks of one face onto RetinaFace-style FFHQ 5 landmarks.

    Args:
        points (np.ndarray): (5, 2) dlib points, x, y in image pixels.

    Returns:
        np.ndarray: (5, 2) eye centres, nose tip, mouth corners in image pixels (facexlib's order).
    """
    # fit image -> template (the direction facexlib aligns in), then map the FFHQ template back into the image
    fit = np.vstack([similarity_lstsq(np.asarray(points, np.float64), DLIB5_TEMPLATE_512), [0.0, 0.0, 1.0]])
    sim = np.linalg.inv(fit)[:2]
    return FFHQ_TEMPLATE_512 @ sim[:, :2].T + sim[:, 2]


def similarity_lstsq(src, dst):
    """Least-squares similarity (Umeyama) taking ``src`` points onto ``dst``.

    Least squares over all 5 points, not cv2's LMEDS: with 5 points LMEDS fits a 2-point subset and
    follows the noise of single landmarks (up to 14 px drift at the crop corners, against 8 with least squares).

    Args:
        src (np.ndarray): (n, 2).
        dst (np.ndarray): (n, 2).

    Returns:
        np.ndarray: (2, 3) matrix M with ``dst ~ src @ M[:, :2].T + M[:, 2]``.
    """
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    flip = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rot = u @ flip @ vt
    scale = np.trace(np.diag(sig) @ flip) * len(src) / (s**2).sum()
    out = np.empty((2, 3))
    out[:, :2] = scale * rot
    out[:, 2] = mu_d - scale * rot @ mu_s
    return out


class DlibFaceDetector:
    """dlib face detector (HOG, or the CNN/MMOD model) + 5-point landmarks, answering like facexlib's RetinaFace.

    Both detectors and the 5-point predictor ship inside the ``face-recognition-models`` wheel. The CNN
    (``mmod_human_face_detector.dat``) also finds side views and small faces that HOG misses, at 25-100x HOG's CPU
    time (README, "dlib detector and alignment").

    Args:
        upsample (int): Upsampling passes (1 finds faces down to about 40 px; 0 is 4x faster). Default: 1.
        score_threshold (float): Drop detections scoring below this. HOG scores are SVM margins (real faces about 1
            and more, false positives about 0.1); the CNN's confidences are about 1.0-1.1 on real faces. Default: 0.5.
        cnn (bool): Use the CNN (MMOD) detector instead of HOG. Default: False.
    """

    def __init__(self, upsample=1, score_threshold=0.5, cnn=False):
        try:
            import dlib
        except ImportError as err:
            raise ImportError('The dlib detector needs dlib: pip install "panininet[offline]"') from err
        self.upsample = int(upsample)
        self.score_threshold = float(score_threshold)
        self.cnn = bool(cnn)
        if self.cnn:
            self.detector = dlib.cnn_face_detection_model_v1(dlib_model_path('mmod_human_face_detector.dat'))
        else:
            self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(dlib_model_path())

    def _boxes(self, rgb):
        """[(dlib.rectangle, score)] of the faces in an RGB uint8 image."""
        if self.cnn:
            return [(d.rect, d.confidence) for d in self.detector(rgb, self.upsample)]
        rects, scores, _ = self.detector.run(rgb, self.upsample, 0.0)
        return list(zip(rects, scores))

    def detect_faces(self, image, conf_threshold=None):
        """Detect faces.

        Args:
            image (np.ndarray): (h, w, 3) BGR uint8 (or float in [0, 255]).
            conf_threshold (float | None): Ignored (facexlib passes RetinaFace's 0.97); see ``score_threshold``.

        Returns:
            np.ndarray: (n, 15) float32 rows ``x1, y1, x2, y2, score, then 5 (x, y) landmarks`` (FFHQ semantics).
        """
        rgb = np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8)[:, :, ::-1])
        rows = []
        for rect, score in self._boxes(rgb):
            if score < self.score_threshold:
                continue
            shape = self.predictor(rgb, rect)
            pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            lms = dlib_points_to_ffhq5(pts)
            rows.append([rect.left(), rect.top(), rect.right(), rect.bottom(), score, *lms.reshape(-1)])
        return np.array(rows, dtype=np.float32).reshape(-1, 15)


def _facexlib_loader(weights_dir, allow_download):
    """Stand-ins for facexlib's ``init_detection_model`` / ``init_parsing_model`` reading from our weights root."""
    folder = osp.join(weights_root(weights_dir), 'facexlib')

    def load(name, build):
        from panininet.weights.checkpoint import load_checkpoint_file, strip_prefix

        path = resolve_release_file(FACEXLIB_RELEASES[name], folder, allow_download, model_path_hint=False)
        model = build()
        model.load_state_dict(strip_prefix(load_checkpoint_file(path), 'module.'), strict=True)
        return model.eval()

    def init_detection_model(model_name, half=False, device='cpu', model_rootpath=None):
        from facexlib.detection.retinaface import RetinaFace

        network = {'retinaface_resnet50': 'resnet50', 'retinaface_mobile0.25': 'mobile0.25'}[model_name]
        return load(model_name, lambda: RetinaFace(network_name=network, half=half, device=device)).to(device)

    def init_parsing_model(model_name='parsenet', half=False, device='cpu', model_rootpath=None):
        from facexlib.parsing.parsenet import ParseNet

        return load('parsenet', lambda: ParseNet(in_size=512, out_size=512, parsing_ch=19)).to(device)

    return init_detection_model, init_parsing_model


@contextlib.contextmanager
def _patched_facexlib_init(detection_fn, parsing_fn):
    from facexlib.utils import face_restoration_helper as frh

    saved = frh.init_detection_model, frh.init_parsing_model
    frh.init_detection_model, frh.init_parsing_model = detection_fn, parsing_fn
    try:
        yield
    finally:
        frh.init_detection_model, frh.init_parsing_model = saved


def build_face_helper(upscale_factor, face_size=512, detector='retinaface_resnet50', device='cpu', weights_dir=None,
                      allow_download=True, use_parse=False, dlib_upsample=1):
    """A facexlib ``FaceRestoreHelper`` whose construction downloads nothing unasked.

    Args:
        upscale_factor (float): Output scale of the whole photo.
        face_size (int): Side of the aligned crops (the network's ``in_size``). Default: 512.
        detector (str): 'retinaface_resnet50' | 'retinaface_mobile0.25' | 'dlib' (HOG) | 'dlib_cnn' (MMOD).
            Default: 'retinaface_resnet50'.
        device (str | torch.device): Device of the RetinaFace/ParseNet networks. Default: 'cpu'.
        weights_dir (str | None): Weights root; facexlib files go to ``<root>/facexlib``. Default: None.
        allow_download (bool): Download missing RetinaFace/ParseNet weights there. Default: True.
        use_parse (bool): Build ParseNet for parsing-mask blending (needs its weights). Default: False.
        dlib_upsample (int): ``DlibFaceDetector.upsample``. Default: 1.

    Returns:
        facexlib.utils.face_restoration_helper.FaceRestoreHelper: With ``face_det`` set; ``face_parse`` is None
        unless ``use_parse``.

    Raises:
        ValueError: Unknown detector.
        panininet.weights.releases.WeightsNotFoundError: RetinaFace/ParseNet weights missing and not downloadable.
    """
    from facexlib.utils.face_restoration_helper import FaceRestoreHelper

    if detector not in DETECTORS:
        raise ValueError(f'Unknown detector {detector!r}; choose one of {DETECTORS}.')
    init_det, init_parse = _facexlib_loader(weights_dir, allow_download)
    if detector in DLIB_DETECTORS:
        dlib_det = DlibFaceDetector(upsample=dlib_upsample, cnn=detector == 'dlib_cnn')

        def init_det(*args, **kwargs):  # noqa: F811  (replaces RetinaFace)
            return dlib_det

    parse_fn = init_parse if use_parse else (lambda *args, **kwargs: None)
    with _patched_facexlib_init(init_det, parse_fn):
        helper = FaceRestoreHelper(
            upscale_factor, face_size=face_size, crop_ratio=(1, 1), det_model=detector if detector not in DLIB_DETECTORS
            else 'retinaface_resnet50', save_ext='png', use_parse=use_parse, device=device)
    return helper
