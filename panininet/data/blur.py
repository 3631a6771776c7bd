"""Blur kernels of the degradation models: the isotropic Gaussian of Panini-Net's eq. (10) and the motion blur of
MMRB-Net's eq. (17).

MMRB-Net (Hu et al., Sec. IV-A) uses "Gaussian blur and motion blur" with a 41 px kernel: the motion kernel is a
straight line of a given length and angle, drawn anti-aliased (:func:`motion_blur_kernel`), and ``kernel_size``
truncates either kernel there. Pure functions: no randomness (the sampler in :mod:`panininet.data.degradations`
draws the parameters).
"""
import math

import cv2
import numpy as np


def odd_kernel_size(size):
    size = int(size)
    if size < 1 or size % 2 == 0:
        raise ValueError(f'Blur kernel size must be a positive odd integer, got {size}.')
    return size


def motion_blur_kernel(length, angle, size=41):
    """A normalised straight-line (linear motion) kernel.

    The segment of ``length`` pixels through the kernel centre at ``angle`` is sampled every 1/8 px and each
    sample is spread bilinearly over its four neighbouring taps (anti-aliased, so a length or angle change moves the
    kernel continuously). Pure: no randomness.

    Args:
        length (float): Segment length in pixels, clipped to [0, size - 1]; 0 is the identity kernel.
        angle (float): Direction in radians (0 = horizontal, counter-clockwise as seen in the image).
        size (int): Kernel side, odd. Default: 41 (eq. 17).

    Returns:
        ndarray: (size, size) float32, sums to 1, symmetric under a 180-degree rotation.
    """
    size = odd_kernel_size(size)
    length = float(np.clip(length, 0, size - 1))
    c = (size - 1) / 2
    n = max(2, int(math.ceil(length * 8)) + 1)
    t = np.linspace(-length / 2, length / 2, n)
    xs, ys = c + t * math.cos(angle), c - t * math.sin(angle)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    kernel = np.zeros((size, size), np.float64)
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (np.clip(y0 + dy, 0, size - 1), np.clip(x0 + dx, 0, size - 1)), w)
    kernel = (kernel + kernel[::-1, ::-1]) / 2  # exact point symmetry (correlation == convolution)
    return (kernel / kernel.sum()).astype(np.float32)


def motion_blur(img, length, angle, kernel_size=41):
    """Convolve with :func:`motion_blur_kernel` (reflected borders).

    Args:
        img (ndarray): Image (h, w, c) or (h, w), float32 or uint8.
        length (float): Motion length in px (< 1 px leaves the image almost unchanged).
        angle (float): Direction in radians.
        kernel_size (int): Kernel side (odd). Default: 41.

    Returns:
        ndarray: Blurred image, same shape and dtype.
    """
    if length < 0:
        raise ValueError(f'Motion length must be >= 0, got {length}.')
    if length == 0:
        return img
    kernel = motion_blur_kernel(length, angle, kernel_size)
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101).reshape(img.shape)


def gaussian_blur(img, sigma, kernel_size=None):
    """Convolve with an isotropic Gaussian kernel k_sigma (separable, radius ceil(3 sigma), reflected borders).

    Args:
        img (ndarray): Image (h, w, c) or (h, w), float32 or uint8.
        sigma (float): Standard deviation in pixels; 0 leaves the image unchanged.
        kernel_size (int | None): Largest kernel side (odd): the kernel is truncated there and renormalised, as a
            fixed 41x41 kernel (GFP-GAN, MMRB eq. 17) does. Default: None (no limit).

    Returns:
        ndarray: Blurred image, same shape and dtype.
    """
    if sigma < 0:
        raise ValueError(f'Blur sigma must be >= 0, got {sigma}.')
    if sigma == 0:
        return img
    k = 2 * math.ceil(3 * sigma) + 1  # +-3 sigma holds 99.7 % of the mass (OpenCV's default for float is 4 sigma)
    if kernel_size is not None:
        k = min(k, odd_kernel_size(kernel_size))
    out = cv2.GaussianBlur(img, (k, k), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REFLECT_101)
    return out.reshape(img.shape)
