"""Paste-back: the inverse of the face alignment and the blending of restored faces into the output photo.

A face is aligned by a 2x3 matrix taking input-photo pixels to ``align_size`` crop pixels; the network returns it at
its own ``out_size``, and the output photo is the input scaled by ``upscale``. :func:`restored_to_output_affine`
chains the three (pixel-centre convention, so nothing shifts by half a pixel); :func:`paste_faces` area-downsamples
each restored face to the size it covers in the output (never upsamples it) and blends it with a mask
(:func:`square_soft_mask`, or a face-parsing mask from :func:`parsing_mask`) inside the face's own bounding box
only: the background keeps its dtype (uint8/uint16/float32) and is never converted as a whole.
"""
import cv2
import numpy as np
import torch

from panininet.pipeline.image_io import match_format

# facexlib's face-parsing labels kept in the blend mask (face parts 255; background, neck, cloth 0)
PARSE_KEEP = np.array([0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255, 0, 0, 0])


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


@torch.no_grad()
def parsing_mask(parse_net, face, device):
    """Blend mask of one restored face from facexlib's ParseNet: the face parts, feathered.

    Args:
        parse_net (torch.nn.Module): facexlib's ParseNet (512 -> 512, 19 labels).
        face (np.ndarray): (r, r, 3) uint8 BGR restored face.
        device (torch.device): ``parse_net``'s device.

    Returns:
        np.ndarray: (r, r) float32 in [0, 1].
    """
    x = cv2.resize(face, (512, 512), interpolation=cv2.INTER_LINEAR)[..., ::-1].astype(np.float32) / 255.0
    x = (torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None] - 0.5) / 0.5
    labels = parse_net(x.to(device))[0].argmax(dim=1).squeeze().cpu().numpy()
    mask = PARSE_KEEP[labels].astype(np.float32)
    mask = cv2.GaussianBlur(cv2.GaussianBlur(mask, (101, 101), 11), (101, 101), 11)
    mask[:10], mask[-10:], mask[:, :10], mask[:, -10:] = 0, 0, 0, 0
    return cv2.resize(mask / 255.0, face.shape[:2][::-1])


def paste_face(canvas, face_bgr8, matrix, mask):
    """Blend one restored face into ``canvas`` in place, touching only the face's bounding box.

    Args:
        canvas (np.ndarray): Output photo (h, w[, c]) uint8/uint16/float32, gray/BGR/BGRA; modified in place.
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
    if np.issubdtype(canvas.dtype, np.integer):
        info = np.iinfo(canvas.dtype)
        blended = np.clip(np.round(blended), info.min, info.max)
    blended = blended.astype(canvas.dtype)
    if roi.ndim == 2:
        canvas[y0:y1, x0:x1] = blended[:, :, 0]
    else:
        canvas[y0:y1, x0:x1, :blended.shape[2]] = blended


def paste_faces(canvas, input_hw, affines, faces, align_size, mask_fn=None):
    """Blend restored faces into the upscaled photo ``canvas`` in place.

    Args:
        canvas (np.ndarray): The input photo upscaled (h', w'[, c]), uint8/uint16/float32; modified in place.
        input_hw (tuple[int, int]): (h, w) of the input photo the affines refer to.
        affines (list[np.ndarray]): (2, 3) input -> ``align_size`` crop matrices, one per face.
        faces (list[np.ndarray]): (r, r, 3) uint8 BGR restored faces.
        align_size (int): Side of the aligned crops.
        mask_fn (callable | None): (r, r, 3) face -> (r, r) float32 blend mask; None: :func:`square_soft_mask`.
            Default: None.
    """
    h, w = input_hw
    scale_xy = (canvas.shape[1] / w, canvas.shape[0] / h)
    for affine, face in zip(affines, faces):
        # the restored face is area-downsampled to the size it covers in the output (never upsampled here)
        crop_scale = np.sqrt(abs(np.linalg.det(np.asarray(affine)[:, :2])))  # crop px per input px
        target = int(np.clip(round(align_size * max(scale_xy) / crop_scale), 16, face.shape[0]))
        if target < face.shape[0]:
            face = cv2.resize(face, (target, target), interpolation=cv2.INTER_AREA)
        matrix = restored_to_output_affine(affine, face.shape[0], align_size, scale_xy)
        mask = square_soft_mask(face.shape[0]) if mask_fn is None else mask_fn(face)
        paste_face(canvas, face, matrix, mask)
