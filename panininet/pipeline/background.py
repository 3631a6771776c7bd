"""The background upsampler of a whole photo: Real-ESRGAN x2 when asked for and installed, else None (Lanczos).

:class:`panininet.pipeline.restorer.PaniniRestorer` takes the object as ``bg_upsampler`` (Real-ESRGAN's
``enhance(img, outscale)``); None resizes the background with Lanczos.
"""
import warnings

from panininet.weights.releases import REALESRGAN_X2, WeightsNotFoundError, resolve_release_file, weights_root

BG_UPSAMPLERS = ('none', 'realesrgan')


def build_background_upsampler(name='none', tile=400, weights_dir=None, allow_download=True, device='auto'):
    """Real-ESRGAN x2 (tiled) for ``name='realesrgan'`` when the package and its weights are there, else None.

    Args:
        name (str): One of :data:`BG_UPSAMPLERS`. Default: 'none'.
        tile (int): Tile size in pixels, 0: no tiles. Default: 400.
        weights_dir (str | None): Weights root (:func:`panininet.weights.weights_root`). Default: None.
        allow_download (bool): Download Real-ESRGAN's weights when missing. Default: True.
        device (str): 'auto', 'cpu', 'cuda' or 'mps': half precision on CUDA. Default: 'auto'.

    Returns:
        object | None: A ``RealESRGANer``, or None (Lanczos), with a warning naming why when one was asked for.
    """
    if name != 'realesrgan':
        return None
    try:
        from basicsr.archs.rrdbnet_arch import RRDBNet
        from realesrgan import RealESRGANer
    except ImportError:
        warnings.warn('--bg_upsampler realesrgan: the realesrgan package is not installed '
                      '(pip install --no-deps realesrgan); the background is resized with Lanczos.', stacklevel=2)
        return None
    try:
        path = resolve_release_file(REALESRGAN_X2, weights_root(weights_dir), allow_download, model_path_hint=False)
    except WeightsNotFoundError as err:
        warnings.warn(f'{err}\nThe background is resized with Lanczos.', stacklevel=2)
        return None
    import torch

    model = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=2)
    return RealESRGANer(scale=2, model_path=path, model=model, tile=tile, tile_pad=10, pre_pad=0,
                        half=torch.cuda.is_available() and device in ('auto', 'cuda'))
