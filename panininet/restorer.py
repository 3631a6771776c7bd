"""PaniniRestorer: restore every face in a whole photo (detect -> align -> restore -> paste back).

A drop-in alongside GFPGAN's ``GFPGANer``: same constructor pattern and the same ``enhance`` signature and return
values, so an application switches by changing the constructor line.

Pipeline (``enhance``):

1. The photo is brought to 8-bit BGR for detection (grayscale, RGBA and 16-bit inputs keep their own form for the
   output; see :func:`to_bgr8`).
2. facexlib's ``FaceRestoreHelper`` (built by :func:`panininet.face_detection.build_face_helper`, which never
   downloads unasked) finds 5 landmarks per face and warps each face onto the FFHQ 5-point template as a 512x512
   crop (``face_size``). The network input is that crop resized to the network's ``in_size`` (512 for the MFR
   model; 64 for the 16x SR model, downsampled with area averaging, as the SR model was trained on downsampled
   FFHQ-aligned faces).
3. Crops go through the network ``batch_size`` at a time (RGB in [-1, 1]; output ``(y + 1) / 2`` clamped and
   rounded, as the official demo). A batch that fails is retried face by face; a face that still fails falls back to
   its input crop with a warning, as GFPGAN does.
4. Each restored face (``out_size``, 1024 for Panini-Net) is area-downsampled to the size it will occupy in the
   output photo and warped back with the exact inverse of the alignment (pixel-centre convention), blended with a
   feathered square mask (or a face-parsing mask when ``use_parse``), only inside the face's own bounding box of
   the output: the background keeps its dtype (uint8/uint16) and is never converted to float as a whole, so large
   photos cost little beyond the upscaled image itself.

``weight`` (``-w`` in the CLI) is Panini-Net's fidelity knob: see :func:`weight_to_mask_bias`.
"""
import os.path as osp
import warnings

import cv2
import numpy as np
import torch
from basicsr.utils import get_root_logger

from panininet.face_detection import build_face_helper
from panininet.fileio import write_bytes_atomic
from panininet.weights import RELEASES, prepare_model_file, resolve_model_path

VERSIONS = ('mfr', 'sr16', 'gfpgan1.3', 'gfpgan1.4')
ALIGN_SIZE = 512  # facexlib's FFHQ template is defined on 512 crops
# mask_bias reached at weight 0 (most prior) and, negated, at weight 1 (most input); see weight_to_mask_bias
MASK_BIAS_RANGE = 4.0
# used when a weights file does not say its architecture (official files always do: derived from the shapes)
DEFAULT_ARCH = {'mfr': {}, 'sr16': {'in_size': 64, 'condition': 'learned', 'rrdb_channels': 64, 'num_rrdbs': 23,
                             'cbam_reduction': 8}}


# network arithmetic -> autocast dtype (None: fp32, no autocast)
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def weight_to_mask_bias(weight):
    """Map the user's fidelity weight to PaniniNet's ``mask_bias``.

    ``weight`` 1.0 keeps the most of the input (every DAFI mask pushed toward the input features,
    ``mask_bias = -MASK_BIAS_RANGE``); 0.0 takes the most from the GAN prior (``+MASK_BIAS_RANGE``); 0.5 (GFPGAN's
    default) and None leave the network as trained (``mask_bias = 0``). Linear in between.

    Args:
        weight (float | None): In [0, 1], or None.

    Returns:
        float: mask_bias.

    Raises:
        ValueError: weight outside [0, 1].
    """
    if weight is None:
        return 0.0
    weight = float(weight)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f'weight must be in [0, 1] (1 keeps the most of the input, 0 the most of the prior), '
                         f'got {weight}.')
    return MASK_BIAS_RANGE * (1.0 - 2.0 * weight)


def select_device(device=None):
    """``None``/'auto' -> cuda, else mps, else cpu; anything else is passed to ``torch.device``."""
    if device is None or device == 'auto':
        if torch.cuda.is_available():
            return torch.device('cuda')
        if getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available():
            return torch.device('mps')
        return torch.device('cpu')
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError('--device cuda was asked for but CUDA is not available; use --device cpu or auto.')
    return device


# --------------------------------------------------------------------------------------------------------- image I/O
def to_bgr8(img):
    """8-bit 3-channel BGR view of any photo, for detection and the network.

    Args:
        img (np.ndarray): (h, w) gray, (h, w, 1|3|4) BGR[A]; uint8, uint16 or float in [0, 1].

    Returns:
        np.ndarray: (h, w, 3) uint8 BGR.
    """
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    if img.ndim == 2 or img.shape[2] == 1:
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3])
    return img


def _exif_orientation(path):
    try:
        from PIL import Image

        with Image.open(path) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001  (no EXIF / not readable by PIL: no rotation)
        return 1


def apply_exif_orientation(img, orientation):
    """Rotate/flip ``img`` so it displays upright (EXIF tag 0x0112 values 1-8)."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 1)[::-1, ::-1],
           8: lambda a: np.rot90(a, 1)}
    return np.ascontiguousarray(ops[orientation](img)) if orientation in ops else img


def read_image(path):
    """Read a photo as stored (depth, alpha, gray kept), upright per its EXIF orientation.

    Args:
        path (str): Image file.

    Returns:
        np.ndarray | None: (h, w) or (h, w, 3|4) uint8/uint16 BGR[A]; None when the file is not a readable image.
    """
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        return None
    if img.dtype not in (np.uint8, np.uint16):
        return None
    return apply_exif_orientation(img, _exif_orientation(path))


def write_image(img, path, params=None):
    """Write ``img`` atomically (temp file in the same folder, then ``os.replace``); never writes a partial file.

    Args:
        img (np.ndarray): Image as cv2 expects it.
        path (str): Destination; its extension picks the format. The folder is created.
        params (list | None): cv2.imencode parameters. Default: None.
    """
    ok, buf = cv2.imencode(osp.splitext(path)[1], img, params or [])
    if not ok:
        raise OSError(f'could not encode {path}')
    write_bytes_atomic(path, buf.tobytes())


def match_format(face_bgr8, like):
    """Convert an 8-bit BGR face to ``like``'s channels (gray / BGR) and depth, as float32 values."""
    face = face_bgr8.astype(np.float32)
    if like.ndim == 2 or like.shape[2] == 1:
        face = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)[:, :, None]
    if like.dtype == np.uint16:
        face = face * 257.0
    return face


# ------------------------------------------------------------------------------------------------------- paste back
def restored_to_output_affine(affine, restored_size, align_size, scale_xy):
    """2x3 matrix taking restored-face pixels to output-photo pixels (pixel-centre convention).

    ``affine`` takes input-photo pixels to ``align_size`` crop pixels; the restored face has ``restored_size`` pixels
    over the same crop; the output photo is the input scaled by ``scale_xy``.

    Args:
        affine (np.ndarray): (2, 3) input -> crop.
        restored_size (int): Side of the restored face.
        align_size (int): Side of the aligned crop.
        scale_xy (tuple[float, float]): Output / input size along x and y.

    Returns:
        np.ndarray: (2, 3) float64.
    """
    k = align_size / restored_size
    # restored r -> crop c = k * r + (k - 1) / 2
    to_crop = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1]], dtype=np.float64)
    inv = np.vstack([cv2.invertAffineTransform(np.asarray(affine, np.float64)), [0, 0, 1]])
    sx, sy = scale_xy
    # input p -> output u = s * p + (s - 1) / 2
    to_out = np.array([[sx, 0, (sx - 1) / 2], [0, sy, (sy - 1) / 2], [0, 0, 1]], dtype=np.float64)
    return (to_out @ inv @ to_crop)[:2]


def square_soft_mask(size):
    """(size, size) float32 mask: 1 inside, feathered to 0 over the outer ~10% of the face square."""
    margin = max(1, size // 20)
    mask = np.zeros((size, size), np.float32)
    mask[margin:size - margin, margin:size - margin] = 1.0
    sigma = max(0.5, size / 40.0)
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def paste_face(canvas, face_bgr8, matrix, mask):
    """Blend one restored face into ``canvas`` in place, touching only the face's bounding box.

    Args:
        canvas (np.ndarray): Output photo (h, w[, c]) uint8/uint16, gray/BGR/BGRA; modified in place.
        face_bgr8 (np.ndarray): (r, r, 3) uint8 BGR restored face.
        matrix (np.ndarray): (2, 3) face pixels -> canvas pixels.
        mask (np.ndarray): (r, r) float32 blend weight of the face.
    """
    h, w = canvas.shape[:2]
    r = face_bgr8.shape[0]
    corners = np.array([[-0.5, -0.5], [r - 0.5, -0.5], [-0.5, r - 0.5], [r - 0.5, r - 0.5]]) @ matrix[:, :2].T
    corners += matrix[:, 2]
    x0, y0 = np.floor(corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    m = matrix.copy()
    m[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(face_bgr8, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, m, size, flags=cv2.INTER_LINEAR, borderValue=0)[:, :, None]
    roi = canvas[y0:y1, x0:x1]
    roi3 = roi if roi.ndim == 3 else roi[:, :, None]
    color = roi3[:, :, :3].astype(np.float32)
    face = match_format(warped, roi)
    blended = alpha * face + (1.0 - alpha) * color
    info = np.iinfo(canvas.dtype)
    blended = np.clip(np.round(blended), info.min, info.max).astype(canvas.dtype)
    if roi.ndim == 2:
        canvas[y0:y1, x0:x1] = blended[:, :, 0]
    else:
        canvas[y0:y1, x0:x1, :blended.shape[2]] = blended


class PaniniRestorer:
    """Restore faces in photos with Panini-Net (or, when the gfpgan package is installed, GFPGAN's models).

    Args:
        model_path (str | None): Weights file: our format or an official MMEditing checkpoint (converted once and
            cached). None: the release file of ``version`` in the weights root, downloaded when missing and allowed.
            Default: None.
        upscale (float): Output scale of the whole photo. Default: 2.
        version (str): 'mfr' (512 -> 1024 restoration), 'sr16' (64 -> 1024), 'gfpgan1.3' | 'gfpgan1.4' (needs the
            gfpgan package). Default: 'mfr'.
        bg_upsampler (object | None): Background upsampler with Real-ESRGAN's ``enhance(img, outscale)``; None
            resizes the background (Lanczos). Default: None.
        device (str | torch.device | None): None/'auto' picks cuda, mps, then cpu. Default: None.
        detector (str | None): 'retinaface_resnet50' | 'retinaface_mobile0.25' | 'dlib' (offline), or None for
            aligned faces only (``enhance(..., has_aligned=True)``). Default: 'retinaface_resnet50'.
        weights_dir (str | None): Weights root (else env ``PANINI_WEIGHTS_DIR``, else ``~/.cache/panininet``).
            Default: None.
        batch_size (int): Faces per network call. Default: 4.
        allow_download (bool): Download missing release / detector weights. Default: True.
        use_parse (bool): Blend with a ParseNet face mask (needs its weights) instead of a feathered square.
            Default: False.
        dlib_upsample (int): HOG upsampling passes of the dlib detector. Default: 1.
        net (torch.nn.Module | None): Use this network instead of loading one (tests, benchmarks). It must have
            ``in_size`` and ``out_size`` attributes and take ``(x, mask_bias=...)``. Default: None.
        precision (str): Network arithmetic: 'fp32', or autocast to 'bf16' (CPU or GPU) or 'fp16' (GPU only);
            weights stay fp32. Default: 'fp32'.
    """

    def __init__(self, model_path=None, upscale=2, version='mfr', bg_upsampler=None, device=None,
                 detector='retinaface_resnet50', weights_dir=None, batch_size=4, allow_download=True,
                 use_parse=False, dlib_upsample=1, net=None, precision='fp32'):
        if version not in VERSIONS:
            raise ValueError(f'Unknown version {version!r}; choose one of {VERSIONS}.')
        if precision not in PRECISIONS:
            raise ValueError(f'Unknown precision {precision!r}; choose one of {tuple(PRECISIONS)}.')
        self.upscale = upscale
        self.version = version
        self.bg_upsampler = bg_upsampler
        self.device = select_device(device)
        if precision == 'fp16' and self.device.type == 'cpu':
            raise ValueError('fp16 (--fp16) needs a GPU; on the CPU use bf16 (--bf16) or fp32.')
        self.precision = precision
        bf16_native = getattr(getattr(torch.ops, 'mkldnn', None), '_is_mkldnn_bf16_supported', lambda: True)
        if precision == 'bf16' and self.device.type == 'cpu' and not bf16_native():
            # measured on an AVX2 CPU: a 3x3 conv runs ~100x slower in bf16 than in fp32
            get_root_logger().warning('bf16 on this CPU (no AVX512-BF16/AMX) is far slower than fp32; '
                                      'drop --bf16 unless the CPU has native bf16.')
        self.batch_size = max(1, int(batch_size))
        self.weights_dir = weights_dir
        self.logger = get_root_logger()
        self.is_gfpgan = version.startswith('gfpgan')
        if net is None:
            path = resolve_model_path(version, model_path, weights_dir, allow_download)
            net = self._build_gfpgan(path) if self.is_gfpgan else self._build_panini(path)
        self.net = net.to(self.device).eval()
        self.in_size = int(getattr(self.net, 'in_size', ALIGN_SIZE))
        self.out_size = int(getattr(self.net, 'out_size', ALIGN_SIZE))
        self.face_helper = None  # detector=None: aligned faces only (no detector weights needed)
        if detector is not None:
            self.face_helper = build_face_helper(upscale, face_size=ALIGN_SIZE, detector=detector,
                                                 device=self.device, weights_dir=weights_dir,
                                                 allow_download=allow_download, use_parse=use_parse,
                                                 dlib_upsample=dlib_upsample)

    # ---------------------------------------------------------------------------------------------- networks
    def _build_panini(self, path):
        from panininet.archs.panini_arch import PaniniNet

        state_dict, arch = prepare_model_file(path, self.weights_dir)
        opt = dict(DEFAULT_ARCH.get(self.version, {}))
        opt.update(arch or {})
        for key in ('decoder_load_path', 'dre_load_path'):
            opt[key] = None  # everything comes from this file
        net = PaniniNet(**opt)
        net.load_state_dict(state_dict, strict=True)
        return net

    def _build_gfpgan(self, path):
        try:
            from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean
        except ImportError as err:
            raise ImportError(f'-v {self.version} needs the gfpgan package: pip install "panininet[gfpgan]" '
                              '(or pip install gfpgan)') from err
        net = GFPGANv1Clean(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                            fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1,
                            sft_half=True)
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
        net.load_state_dict(ckpt.get('params_ema', ckpt.get('params', ckpt)), strict=True)
        net.in_size = net.out_size = 512
        return net

    @torch.no_grad()
    def restore_faces(self, faces, weight=None):
        """Run aligned crops through the network in batches.

        Args:
            faces (list[np.ndarray]): (s, s, 3) uint8 BGR aligned crops (512, or the network's in_size); each is
                resized to in_size (area averaging when shrinking).
            weight (float | None): Fidelity weight, see :func:`weight_to_mask_bias`. Default: None.

        Returns:
            list[np.ndarray]: (out_size, out_size, 3) uint8 BGR restored faces (the input crop, resized, for a
            face that failed).
        """
        mask_bias = weight_to_mask_bias(weight)
        if mask_bias != 0 and not self.is_gfpgan and getattr(self.net, 'fusion', 'dafi') != 'dafi':
            raise ValueError('weight (-w) acts on the DAFI masks; this model has none (fusion='
                             f"{self.net.fusion!r}). Leave -w at 0.5.")
        out = []
        for start in range(0, len(faces), self.batch_size):
            chunk = faces[start:start + self.batch_size]
            try:
                out += self._run_net(chunk, mask_bias, weight)
            except RuntimeError as error:
                if len(chunk) == 1:
                    warnings.warn(f'Failed to restore a face ({error}); keeping the input crop.', stacklevel=2)
                    self.logger.warning(f'Failed inference for a face: {error}; keeping the input crop.')
                    out.append(cv2.resize(chunk[0], (self.out_size, self.out_size), interpolation=cv2.INTER_CUBIC))
                else:  # retry face by face so that one bad face does not cost the batch
                    for face in chunk:
                        out += self.restore_faces([face], weight)
        return out

    def _run_net(self, faces, mask_bias, weight):
        size = (self.in_size, self.in_size)
        batch = np.stack([
            f if f.shape[:2] == size else cv2.resize(
                f, size, interpolation=cv2.INTER_AREA if f.shape[0] > self.in_size else cv2.INTER_CUBIC)
            for f in faces])
        x = torch.from_numpy(np.ascontiguousarray(batch[..., ::-1])).permute(0, 3, 1, 2).float().contiguous()
        x = (x.to(self.device) / 255.0 - 0.5) / 0.5
        dtype = PRECISIONS[self.precision]
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            if self.is_gfpgan:
                y = self.net(x, return_rgb=False, weight=weight if weight is not None else 0.5)[0]
            else:
                y = self.net(x, mask_bias=mask_bias)
        y = ((y.float().clamp(-1, 1) + 1) / 2 * 255.0).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        return [np.ascontiguousarray(f[..., ::-1]) for f in y]

    # ---------------------------------------------------------------------------------------------- enhance
    @torch.no_grad()
    def enhance(self, img, has_aligned=False, only_center_face=False, paste_back=True, weight=0.5):
        """Restore the faces of one photo (same signature and return values as ``GFPGANer.enhance``).

        Args:
            img (np.ndarray): (h, w) gray or (h, w, 3|4) BGR[A], uint8 or uint16 (as ``cv2.imread(...,
                IMREAD_UNCHANGED)`` gives).
            has_aligned (bool): ``img`` is one aligned face; no detection, no paste. A face of the network's
                ``in_size`` (64 for sr16) goes in untouched, others are resized to 512 first. Default: False.
            only_center_face (bool): Restore only the face closest to the centre. Default: False.
            paste_back (bool): Build the whole restored photo. Default: True.
            weight (float | None): Fidelity, 1 keeps the most of the input, 0 takes the most from the prior; 0.5 (and
                None) is the network as trained (:func:`weight_to_mask_bias`). Default: 0.5.

        Returns:
            tuple: ``(cropped_faces, restored_faces, restored_img)``: lists of (512, 512, 3) and (out_size,
            out_size, 3) uint8 BGR faces, and the whole photo scaled by ``upscale`` in ``img``'s own channels and
            dtype (None when ``has_aligned`` or not ``paste_back``).
        """
        return self.enhance_batch([img], has_aligned, only_center_face, paste_back, weight)[0]

    @torch.no_grad()
    def enhance_batch(self, imgs, has_aligned=False, only_center_face=False, paste_back=True, weight=0.5):
        """Restore the faces of several photos: all their faces go through the network together, in batches.

        Same arguments as :meth:`enhance`, applied to every photo; a folder of aligned faces (or of video frames)
        then fills every network call with ``batch_size`` faces instead of one.

        Args:
            imgs (list[np.ndarray]): Photos, each as :meth:`enhance` takes it.

        Returns:
            list[tuple]: One ``(cropped_faces, restored_faces, restored_img)`` per photo, as :meth:`enhance`.
        """
        prepared = [self._detect_and_align(img, has_aligned, only_center_face) for img in imgs]
        restored_all = self.restore_faces([face for p in prepared for face in p['net_inputs']], weight)
        results, i = [], 0
        for img, p in zip(imgs, prepared):
            restored = restored_all[i:i + len(p['net_inputs'])]
            i += len(p['net_inputs'])
            whole = None
            if paste_back and not has_aligned:
                whole = self.paste_back(img, p['affines'], restored)
            results.append((p['crops'], restored, whole))
        return results

    def enhance_video(self, input_path, output_path, only_center_face=False, weight=0.5, smooth=True,
                      video_codec='libx264', crf=18, progress=None):
        """Restore every face of a video clip and write it with its sound (see :func:`panininet.video.restore_video`).

        Args:
            input_path (str): Any clip FFmpeg decodes (mp4, mov, mkv, avi, webm, ...).
            output_path (str): Destination (its extension picks the container), written atomically.
            only_center_face (bool): Restore only the centre face of each frame. Default: False.
            weight (float | None): Fidelity, as in :meth:`enhance`. Default: 0.5.
            smooth (bool): Track faces and smooth their landmarks over time. Default: True.
            video_codec (str): FFmpeg encoder. Default: 'libx264' (H.264, yuv420p).
            crf (int): Constant rate factor of the encoder. Default: 18.
            progress (callable | None): Called with 1 after each frame written. Default: None.

        Returns:
            panininet.video.VideoSummary: Frames, faces, time, what happened to the audio.
        """
        from panininet.video import restore_video

        return restore_video(self, input_path, output_path, weight=weight, only_center_face=only_center_face,
                             smooth=smooth, video_codec=video_codec, crf=crf, progress=progress)

    def _helper(self):
        if self.face_helper is None:
            raise ValueError('This PaniniRestorer was built with detector=None: it restores aligned faces only '
                             '(has_aligned=True).')
        return self.face_helper

    def _detect_and_align(self, img, has_aligned, only_center_face, align=True):
        """Aligned 512 crops of one photo, what goes into the network for each, and their affine matrices."""
        img8 = to_bgr8(img)
        if has_aligned:
            net_input = img8  # a face of the network's in_size (64 for sr16) goes in untouched
            if img8.shape[:2] != (ALIGN_SIZE, ALIGN_SIZE):
                img8 = cv2.resize(img8, (ALIGN_SIZE, ALIGN_SIZE), interpolation=cv2.INTER_LINEAR)
            if net_input.shape[:2] != (self.in_size, self.in_size):
                net_input = img8
            return {'crops': [img8], 'net_inputs': [net_input], 'affines': []}
        helper = self._helper()
        helper.clean_all()
        helper.input_img = img8
        h, w = img8.shape[:2]
        resize = 3000 if min(h, w) > 3000 else None  # detect huge photos on a smaller copy
        helper.get_face_landmarks_5(only_center_face=only_center_face, resize=resize, eye_dist_threshold=5)
        if not align:
            return {'landmarks': np.array(helper.all_landmarks_5, np.float32).reshape(-1, 5, 2)}
        helper.align_warp_face()
        crops = list(helper.cropped_faces)
        return {'crops': crops, 'net_inputs': crops, 'affines': [np.array(m) for m in helper.affine_matrices]}

    def detect_landmarks(self, img, only_center_face=False):
        """The 5 FFHQ landmarks of every face of one photo (or video frame).

        Args:
            img (np.ndarray): A photo in any form :meth:`enhance` takes.
            only_center_face (bool): Keep only the face closest to the centre. Default: False.

        Returns:
            np.ndarray: (n, 5, 2) float32 eye centres, nose tip, mouth corners, in ``img``'s pixel coordinates.
        """
        p = self._detect_and_align(img, False, only_center_face, align=False)
        return p['landmarks']

    def align_faces(self, img, landmarks):
        """Warp each face given by its 5 landmarks onto the FFHQ template.

        Args:
            img (np.ndarray): The photo the landmarks belong to.
            landmarks (np.ndarray): (n, 5, 2) as :meth:`detect_landmarks` gives (possibly smoothed over time).

        Returns:
            tuple: ``(crops, affines)``: lists of (512, 512, 3) uint8 BGR crops and (2, 3) photo -> crop matrices.
        """
        helper = self._helper()
        helper.clean_all()
        helper.input_img = to_bgr8(img)
        helper.all_landmarks_5 = [np.asarray(lm, np.float32).reshape(5, 2) for lm in landmarks]
        helper.align_warp_face()
        return list(helper.cropped_faces), [np.array(m) for m in helper.affine_matrices]

    def upsample_background(self, img):
        """The whole photo scaled by ``upscale`` (Real-ESRGAN when given, else Lanczos), in its own dtype/channels."""
        h, w = img.shape[:2]
        size = (int(round(w * self.upscale)), int(round(h * self.upscale)))
        if self.bg_upsampler is not None:
            bg = self.bg_upsampler.enhance(img, outscale=self.upscale)[0]
            if bg.shape[:2] != size[::-1]:
                bg = cv2.resize(bg, size, interpolation=cv2.INTER_LANCZOS4)
            return bg
        if size == (w, h):
            return img.copy()
        return cv2.resize(img, size, interpolation=cv2.INTER_LANCZOS4)

    def paste_back(self, img, affine_matrices, restored_faces):
        """Paste restored faces into the upscaled photo.

        Args:
            img (np.ndarray): The input photo (any supported form).
            affine_matrices (list[np.ndarray]): (2, 3) input -> 512-crop matrices, one per face.
            restored_faces (list[np.ndarray]): (r, r, 3) uint8 BGR faces.

        Returns:
            np.ndarray: ``img`` scaled by ``upscale``, same dtype and channels, faces blended in.
        """
        canvas = self.upsample_background(img)
        if canvas.ndim == 3 and canvas.shape[2] == 1:
            canvas = canvas[:, :, 0]
        h, w = img.shape[:2]
        scale_xy = (canvas.shape[1] / w, canvas.shape[0] / h)
        for affine, face in zip(affine_matrices, restored_faces):
            # the restored face is area-downsampled to the size it covers in the output (never upsampled here)
            crop_scale = np.sqrt(abs(np.linalg.det(np.asarray(affine)[:, :2])))  # crop px per input px
            target = int(np.clip(round(ALIGN_SIZE * max(scale_xy) / crop_scale), 16, face.shape[0]))
            if target < face.shape[0]:
                face = cv2.resize(face, (target, target), interpolation=cv2.INTER_AREA)
            matrix = restored_to_output_affine(affine, face.shape[0], ALIGN_SIZE, scale_xy)
            paste_face(canvas, face, matrix, self._blend_mask(face))
        return canvas

    def _blend_mask(self, face):
        parse = getattr(self.face_helper, 'face_parse', None) if self.face_helper is not None else None
        if parse is None:
            return square_soft_mask(face.shape[0])
        x = cv2.resize(face, (512, 512), interpolation=cv2.INTER_LINEAR)[..., ::-1].astype(np.float32) / 255.0
        x = (torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None] - 0.5) / 0.5
        labels = parse(x.to(self.device))[0].argmax(dim=1).squeeze().cpu().numpy()
        keep = np.array([0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255, 0, 0, 0])
        mask = keep[labels].astype(np.float32)  # facexlib's colour map: face parts 255, background/neck/cloth 0
        mask = cv2.GaussianBlur(cv2.GaussianBlur(mask, (101, 101), 11), (101, 101), 11)
        mask[:10], mask[-10:], mask[:, :10], mask[:, -10:] = 0, 0, 0, 0
        return cv2.resize(mask / 255.0, face.shape[:2][::-1])


__all__ = ['PaniniRestorer', 'RELEASES', 'weight_to_mask_bias', 'read_image', 'write_image', 'to_bgr8']
