"""Face-restoration metrics as the papers report them: PSNR, SSIM, LPIPS, FID, NIQE and the identity angle ("Deg.").

Every metric is an established implementation, wrapped so that its network weights come from a path we choose:

- PSNR, SSIM, NIQE: ``basicsr.metrics`` (NIQE ships its pristine parameters in the basicsr wheel). Images are
  uint8 BGR arrays (h, w, 3) as OpenCV reads them, RGB channels (not Y) and no border crop unless asked, as in
  GFP-GAN's tables. PSNR of identical images is ``inf`` (basicsr's convention; kept, and written to JSON as the
  string ``"inf"``).
- LPIPS: the ``lpips`` package (v0.1 linear layers ship in its wheel). Its trunk (VGG16 by default, as BasicSR's
  ``calculate_lpips.py``; AlexNet or SqueezeNet on request) is torchvision's ImageNet checkpoint, which ``lpips``
  would download on construction: here it is read from ``trunk_path`` or torch hub's cache instead.
- FID: ``basicsr.metrics.fid`` (the pytorch-fid port of the TF Inception, pool features, 2048-d, inputs resized to
  299 bilinearly). Weights ``pt_inception-2015-12-05-6726825d.pth`` come from ``weights_path`` or torch hub's cache.
  The reference statistics are computed from the GT images given, NOT from FFHQ: values are comparable only between
  methods evaluated on the same GT set, and FID of a few hundred images is strongly biased upwards.
- Identity angle: the ArcFace IR-SE50 network of facexlib (``recognition_arcface_ir_se50.pth``). An FFHQ-aligned
  face is cropped to the ArcFace field of view (the crop pSp's identity loss uses) and resized to 112x112; the
  metric is the angle in degrees between the normalised embeddings of the restored and GT faces,
  ``arccos(<e1, e2>) * 180 / pi`` (GFP-GAN's "Deg."; GFP-GAN used its own ResNet-18 ArcFace, so absolute values
  differ from its tables).

Weights: :func:`resolve_weights` uses an explicit path, else the file in torch hub's checkpoint folder
(``$TORCH_HOME/hub/checkpoints``), else downloads it there. Offline, or with ``download=False``, a missing file
raises :class:`FileNotFoundError` naming the file, the URL and how to pass it. Nothing here downloads in the tests:
they inject tiny networks through the ``model=`` / ``feature_net=`` arguments.
"""
from panininet.metrics.folders import (
    METRIC_FORMATS,
    METRIC_KEYS,
    METRIC_TITLES,
    evaluate_folders,
    json_safe,
    list_images,
    niqe,
    pair_folders,
    psnr,
    read_image,
    results_to_markdown,
    ssim,
    table_header,
    write_image_atomic,
)
from panininet.metrics.networks import (
    ARCFACE_CROP,
    ARCFACE_URL,
    FID_INCEPTION_URL,
    LPIPS_TRUNK_URLS,
    FIDMetric,
    IdentityMetric,
    LPIPSMetric,
    bgr_to_tensor,
    build_arcface,
    build_fid_inception,
    load_lpips_trunk,
    resolve_weights,
    weights_cache_dir,
)
from panininet.pipeline.image_io import IMAGE_EXTENSIONS as IMG_EXTENSIONS

__all__ = ['ARCFACE_CROP', 'ARCFACE_URL', 'FID_INCEPTION_URL', 'IMG_EXTENSIONS', 'LPIPS_TRUNK_URLS', 'METRIC_FORMATS',
           'METRIC_KEYS', 'METRIC_TITLES', 'FIDMetric', 'IdentityMetric', 'LPIPSMetric', 'bgr_to_tensor',
           'build_arcface', 'build_fid_inception', 'evaluate_folders', 'json_safe', 'list_images', 'load_lpips_trunk',
           'niqe', 'pair_folders', 'psnr', 'read_image', 'resolve_weights', 'results_to_markdown', 'ssim',
           'table_header', 'weights_cache_dir', 'write_image_atomic']
