"""panininet.pipeline.image_io: one list of image extensions for every reader, and the photo forms it hands on."""
import cv2
import numpy as np
import pytest

from panininet import metrics
from panininet.data.data_util import hq_paths
from panininet.pipeline.image_io import IMAGE_EXTENSIONS, is_image_file, match_format, read_image, to_bgr8


def test_datasets_and_metrics_count_the_same_files(tmp_path):
    img = np.full((8, 8, 3), 100, np.uint8)
    for ext in IMAGE_EXTENSIONS:
        cv2.imwrite(str(tmp_path / f'a{ext.replace(".", "_")}{ext.upper() if ext == ".png" else ext}'), img)
    (tmp_path / 'notes.txt').write_text('not an image')
    (tmp_path / 'b.PPM.bak').write_text('not an image either')
    listed = sorted(p.name for p in tmp_path.iterdir() if is_image_file(p))
    assert len(listed) == len(IMAGE_EXTENSIONS)
    assert sorted(p.rsplit('/', 1)[-1] for p in hq_paths({'dataroot_gt': str(tmp_path)})) == listed
    assert sorted(p.rsplit('/', 1)[-1] for p in metrics.list_images(str(tmp_path)).values()) == listed


@pytest.mark.parametrize('form', ['gray', 'bgr', 'bgra', 'bgr16'])
def test_read_as_stored_then_8bit_view_and_back(tmp_path, form):
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 255, (6, 5, 3), dtype=np.uint8)  # + 3 / 257 must not overflow 16 bits
    stored = {'gray': bgr[:, :, 0], 'bgr': bgr, 'bgra': np.dstack([bgr, bgr[:, :, :1]]),
              'bgr16': bgr.astype(np.uint16) * 257 + 3}[form]
    path = str(tmp_path / 'x.png')
    cv2.imwrite(path, stored)
    img = read_image(path)
    np.testing.assert_array_equal(img, stored)  # depth, alpha and gray kept
    view = to_bgr8(img)
    assert view.shape == (6, 5, 3) and view.dtype == np.uint8
    expected = cv2.cvtColor(stored, cv2.COLOR_GRAY2BGR) if form == 'gray' else bgr
    np.testing.assert_array_equal(view, expected)  # 16 bits round to the nearest 8-bit level
    back = match_format(view, img)
    assert back.shape[2] == (1 if form == 'gray' else 3)
    assert back.max() > 255 if form == 'bgr16' else back.max() <= 255
    assert metrics.read_image(path).shape == (6, 5, 3)
    assert metrics.read_image(path, size=12).shape == (12, 12, 3)
