"""PaniniRestorer: restore every face in a whole photo (detect -> align -> restore -> paste back).

A drop-in alongside GFPGAN's ``GFPGANer``: same constructor pattern and the same ``enhance`` signature and return
values, so an application switches by changing the constructor line.

Pipeline (``enhance``), one step per concern:

1. :meth:`PaniniRestorer.detect_landmarks`: the photo is brought to 8-bit BGR (grayscale, RGBA and 16-bit inputs
   keep their own form for the output; :func:`panininet.pipeline.image_io.to_bgr8`) and facexlib's ``FaceRestoreHelper``
   (built by :func:`panininet.pipeline.face_detection.build_face_helper`, which never downloads unasked) finds 5
   landmarks per face.
2. :meth:`PaniniRestorer.align_faces`: each face is warped onto the FFHQ 5-point template as a 512x512 crop, as
   facexlib does. The network input is that crop resized to the family's ``in_size`` (512 for the MFR model; 64
   for the 16x SR model, downsampled with area averaging, as the SR model was trained on downsampled FFHQ-aligned
   faces).
3. :meth:`PaniniRestorer.restore_faces`: crops go through the restoration family (:mod:`panininet.families`,
   chosen by ``version``) ``batch_size`` at a time (RGB in [-1, 1]; output ``(y + 1) / 2`` clamped and rounded, as
   the official demo). A batch that fails is retried face by face; a face that still fails falls back to its input
   crop with a warning, as GFPGAN does.
4. Finishing each face (:mod:`panininet.pipeline.color`): with ``color_fix`` the restored face takes its input crop's
   low-frequency colour; a gray photo (one channel, or three equal within a small tolerance: :func:`is_gray`) gets
   gray faces, so it comes back gray.
5. :meth:`PaniniRestorer.paste_back`: each restored face is blended into the upscaled photo with the exact inverse
   of the alignment (:mod:`panininet.pipeline.paste`).

``weight`` (``-w`` in the CLI) is the family's fidelity knob: for Panini-Net see :func:`weight_to_mask_bias`.
"""
import warnings

import cv2
import numpy as np
import torch
from basicsr.utils import get_root_logger

from panininet.families import (
    FAMILIES,
    PRECISIONS,
    RestorationFamily,
    build_family,
    family_class,
    family_names,
    select_device,
)
from panininet.families.panini_family import MASK_BIAS_RANGE, weight_to_mask_bias
from panininet.pipeline.color import COLOR_FIX_METHODS, color_fix, is_gray, to_gray_bgr
from panininet.pipeline.face_detection import FFHQ_TEMPLATE_512, build_face_helper
from panininet.pipeline.image_io import (
    apply_exif_orientation,
    match_format,
    read_image,
    resize_square,
    to_bgr8,
    write_image,
)
from panininet.pipeline.paste import parsing_mask, paste_face, paste_faces, restored_to_output_affine, square_soft_mask
from panininet.weights.releases import RELEASES

VERSIONS = family_names()
ALIGN_SIZE = 512  # facexlib's FFHQ template is defined on 512 crops
ALIGN_BORDER_VALUE = (135, 133, 132)  # facexlib's gray outside the photo


class PaniniRestorer:
    """Restore faces in photos with Panini-Net (or, when the gfpgan package is installed, GFPGAN's models).

    Args:
        model_path (str | None): Weights file: our format or an official MMEditing checkpoint (converted once and
            cached). None: the release file of ``version`` in the weights root, downloaded when missing and allowed.
            Default: None.
        upscale (float): Output scale of the whole photo. Default: 2.
        version (str): A restoration family (:func:`panininet.families.family_names`): 'mfr' (512 -> 1024
            restoration), 'sr16' (64 -> 1024), 'gfpgan1.3' | 'gfpgan1.4' (need the gfpgan package). Default: 'mfr'.
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
        net (torch.nn.Module | RestorationFamily | None): Use this network (wrapped in ``version``'s family) or
            this family instead of loading one (tests, benchmarks). A PaniniNet-like network needs ``in_size`` and
            ``out_size`` attributes and takes ``(x, mask_bias=...)``. Default: None.
        precision (str): Network arithmetic: 'fp32', or autocast to 'bf16' (CPU or GPU) or 'fp16' (GPU only);
            weights stay fp32. Default: 'fp32'.
        backend (str): 'pytorch', or 'onnxruntime': ``model_path`` is an ``.onnx`` file written by
            ``scripts/export_onnx.py`` (:class:`~panininet.families.onnx_family.OnnxRuntimeFamily`). Default:
            'pytorch'.
        color_fix (str): 'none', 'wavelet' or 'adain': give each restored face the low-frequency colour of its
            input crop before it is pasted (:func:`panininet.pipeline.color.color_fix`). Default: 'none'.
    """

    def __init__(self, model_path=None, upscale=2, version='mfr', bg_upsampler=None, device=None,
                 detector='retinaface_resnet50', weights_dir=None, batch_size=4, allow_download=True,
                 use_parse=False, dlib_upsample=1, net=None, precision='fp32', color_fix='none',
                 backend='pytorch'):
        if color_fix not in COLOR_FIX_METHODS:
            raise ValueError(f'color_fix={color_fix!r}: use one of {", ".join(COLOR_FIX_METHODS)}.')
        family_cls = family_class(version)
        self.color_fix = color_fix
        self.upscale = upscale
        self.version = version
        self.bg_upsampler = bg_upsampler
        self.device = select_device(device)
        self.batch_size = max(1, int(batch_size))
        self.weights_dir = weights_dir
        self.logger = get_root_logger()
        if isinstance(net, RestorationFamily):
            self.family = net
        elif net is not None:
            self.family = family_cls(net, self.device, precision)
        else:
            self.family = build_family(version, model_path, self.device, precision, weights_dir, allow_download,
                                       backend=backend)
        self.precision = self.family.precision
        self.net = getattr(self.family, 'net', None)
        self.in_size, self.out_size = self.family.in_size, self.family.out_size
        self.face_helper = None  # detector=None: aligned faces only (no detector weights needed)
        if detector is not None:
            self.face_helper = build_face_helper(upscale, face_size=ALIGN_SIZE, detector=detector,
                                                 device=self.device, weights_dir=weights_dir,
                                                 allow_download=allow_download, use_parse=use_parse,
                                                 dlib_upsample=dlib_upsample)

    # ------------------------------------------------------------------------------------------- detect / align
    def detect_landmarks(self, img, only_center_face=False):
        """The 5 landmarks of every face in a photo.

        Args:
            img (np.ndarray): A photo in any form :meth:`enhance` takes.
            only_center_face (bool): Keep only the face closest to the centre. Default: False.

        Returns:
            np.ndarray: (n, 5, 2) float, FFHQ 5-point order (eye centres image-left then image-right, nose tip,
            mouth corners), x, y in the photo's pixel coordinates; (0, 5, 2) when there is no face.
        """
        helper = self.face_helper
        if helper is None:
            raise ValueError('This PaniniRestorer was built with detector=None: it restores aligned faces only '
                             '(has_aligned=True).')
        helper.clean_all()
        helper.input_img = to_bgr8(img)
        h, w = helper.input_img.shape[:2]
        resize = 3000 if min(h, w) > 3000 else None  # detect huge photos on a smaller copy
        helper.get_face_landmarks_5(only_center_face=only_center_face, resize=resize, eye_dist_threshold=5)
        return np.array(helper.all_landmarks_5).reshape(-1, 5, 2)

    def align_faces(self, img, landmarks):
        """Warp each face onto the FFHQ template (facexlib's alignment: LMEDS similarity, gray border).

        Args:
            img (np.ndarray): The photo the landmarks were found in (any form :meth:`enhance` takes).
            landmarks (np.ndarray): (n, 5, 2) as :meth:`detect_landmarks` returns (possibly smoothed).

        Returns:
            tuple[list[np.ndarray], list[np.ndarray]]: (512, 512, 3) uint8 BGR crops and their (2, 3) photo ->
            crop matrices.
        """
        img8 = to_bgr8(img)
        affines = [cv2.estimateAffinePartial2D(np.asarray(lm, np.result_type(lm, np.float32)), FFHQ_TEMPLATE_512,
                                               method=cv2.LMEDS)[0] for lm in landmarks]
        crops = [cv2.warpAffine(img8, m, (ALIGN_SIZE, ALIGN_SIZE), borderMode=cv2.BORDER_CONSTANT,
                                borderValue=ALIGN_BORDER_VALUE) for m in affines]
        if self.face_helper is not None:  # leave facexlib's helper as GFPGANer does (applications read it)
            self.face_helper.all_landmarks_5 = list(landmarks)
            self.face_helper.affine_matrices, self.face_helper.cropped_faces = affines, crops
        return crops, affines

    # ------------------------------------------------------------------------------------------------- restore
    @torch.no_grad()
    def restore_faces(self, faces, weight=None):
        """Run aligned crops through the family in batches.

        Args:
            faces (list[np.ndarray]): (s, s, 3) uint8 BGR aligned crops (512, or the family's in_size); each is
                resized to in_size (area averaging when shrinking).
            weight (float | None): Fidelity weight in [0, 1] (for Panini-Net see :func:`weight_to_mask_bias`).
                Default: None.

        Returns:
            list[np.ndarray]: (out_size, out_size, 3) uint8 BGR restored faces (the input crop, resized, for a
            face that failed).
        """
        self.family.check_weight(weight)
        out = []
        for start in range(0, len(faces), self.batch_size):
            chunk = faces[start:start + self.batch_size]
            try:
                out += self._run_family(chunk, weight)
            except RuntimeError as error:
                if len(chunk) == 1:
                    warnings.warn(f'Failed to restore a face ({error}); keeping the input crop.', stacklevel=2)
                    self.logger.warning(f'Failed inference for a face: {error}; keeping the input crop.')
                    out.append(cv2.resize(chunk[0], (self.out_size, self.out_size), interpolation=cv2.INTER_CUBIC))
                else:  # retry face by face so that one bad face does not cost the batch
                    for face in chunk:
                        out += self.restore_faces([face], weight)
        return out

    def _run_family(self, faces, weight):
        batch = np.stack([resize_square(f, self.in_size) for f in faces])
        x = torch.from_numpy(np.ascontiguousarray(batch[..., ::-1])).permute(0, 3, 1, 2).float().contiguous()
        x = (x.to(self.family.device) / 255.0 - 0.5) / 0.5
        y = self.family(x, weight)
        y = ((y.clamp(-1, 1) + 1) / 2 * 255.0).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        return [np.ascontiguousarray(f[..., ::-1]) for f in y]

    # ------------------------------------------------------------------------------------------------- enhance
    @torch.no_grad()
    def enhance(self, img, has_aligned=False, only_center_face=False, paste_back=True, weight=0.5):
        """Restore the faces of one photo (same signature and return values as ``GFPGANer.enhance``).

        Args:
            img (np.ndarray): (h, w) gray or (h, w, 3|4) BGR[A], uint8 or uint16 (as ``cv2.imread(...,
                IMREAD_UNCHANGED)`` gives).
            has_aligned (bool): ``img`` is one aligned face; no detection, no paste. A face of the family's
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
        prepared = [self._aligned_input(img) if has_aligned else self._detect_and_align(img, only_center_face)
                    for img in imgs]
        restored_all = self.restore_faces([face for p in prepared for face in p['net_inputs']], weight)
        results, i = [], 0
        for img, p in zip(imgs, prepared):
            restored = self.finish_faces(restored_all[i:i + len(p['net_inputs'])], p['crops'], is_gray(img))
            i += len(p['net_inputs'])
            whole = None
            if paste_back and not has_aligned:
                whole = self.paste_back(img, p['affines'], restored)
            results.append((p['crops'], restored, whole))
        return results

    def finish_faces(self, restored, crops, gray):
        """The restored faces as they are pasted: colour-fixed to their crops (``color_fix``), gray for a gray photo.

        Args:
            restored (list[np.ndarray]): (r, r, 3) uint8 BGR restored faces.
            crops (list[np.ndarray]): Their (512, 512, 3) uint8 BGR input crops.
            gray (bool): The photo is gray (:func:`panininet.pipeline.color.is_gray`).

        Returns:
            list[np.ndarray]: (r, r, 3) uint8 BGR faces (three equal channels when ``gray``).
        """
        faces = [color_fix(face, crop, self.color_fix) for face, crop in zip(restored, crops)]
        return [to_gray_bgr(face) for face in faces] if gray else faces

    def _aligned_input(self, img):
        """One aligned face: its 512 crop, and what goes into the network (a face of in_size goes in untouched)."""
        img8 = to_bgr8(img)
        net_input = img8
        if img8.shape[:2] != (ALIGN_SIZE, ALIGN_SIZE):
            img8 = cv2.resize(img8, (ALIGN_SIZE, ALIGN_SIZE), interpolation=cv2.INTER_LINEAR)
        if net_input.shape[:2] != (self.in_size, self.in_size):
            net_input = img8
        return {'crops': [img8], 'net_inputs': [net_input], 'affines': []}

    def _detect_and_align(self, img, only_center_face):
        crops, affines = self.align_faces(img, self.detect_landmarks(img, only_center_face))
        return {'crops': crops, 'net_inputs': crops, 'affines': affines}

    # ------------------------------------------------------------------------------------------------------ video
    def enhance_video(self, input_path, output_path, only_center_face=False, weight=0.5, smooth=True,
                      video_codec='libx264', crf=18, progress=None):
        """Restore every face of a video clip and write it with its sound (see
        :func:`panininet.pipeline.video.restore_video`).

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
            panininet.pipeline.video.VideoSummary: Frames, faces, time, what happened to the audio.
        """
        from panininet.pipeline.video import restore_video

        return restore_video(self, input_path, output_path, weight=weight, only_center_face=only_center_face,
                             smooth=smooth, video_codec=video_codec, crf=crf, progress=progress)

    # ------------------------------------------------------------------------------------------------ paste back
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
        parse = getattr(self.face_helper, 'face_parse', None)
        mask_fn = None if parse is None else (lambda face: parsing_mask(parse, face, self.device))
        paste_faces(canvas, img.shape[:2], affine_matrices, restored_faces, ALIGN_SIZE, mask_fn)
        return canvas


# names that lived here before the split, kept importable from panininet.pipeline.restorer
__all__ = ['ALIGN_SIZE', 'FAMILIES', 'MASK_BIAS_RANGE', 'PRECISIONS', 'PaniniRestorer', 'RELEASES', 'VERSIONS',
           'apply_exif_orientation', 'match_format', 'paste_face', 'read_image', 'restored_to_output_affine',
           'select_device', 'square_soft_mask', 'to_bgr8', 'weight_to_mask_bias', 'write_image']
