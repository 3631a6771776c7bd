"""Offline face detection (dlib backend) and the download-free FaceRestoreHelper."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from panininet.pipeline.face_detection import (
    DLIB5_TEMPLATE_512,
    FFHQ_TEMPLATE_512,
    build_face_helper,
    dlib_points_to_ffhq5,
)
from panininet.weights.releases import WeightsNotFoundError

pytest.importorskip('dlib')

# faces a person sees in each photo (../shared/testdata/README.md)
WHOLE_IMG_FACES = {'00.jpg': 2, '10045.png': 3, 'Blake_Lively.jpg': 2}
CROPS = ('Adele_crop.png', 'Julia_Roberts_crop.png', 'Justin_Timberlake_crop.png')


@pytest.fixture(scope='module')
def dlib_helper():
    return build_face_helper(2, face_size=512, detector='dlib', weights_dir='/nonexistent', allow_download=False)


def test_dlib_template_maps_onto_ffhq_template():
    np.testing.assert_allclose(dlib_points_to_ffhq5(DLIB5_TEMPLATE_512), FFHQ_TEMPLATE_512, atol=1e-6)
    # a similarity of the dlib points moves the FFHQ landmarks by the same similarity
    angle, scale, shift = 0.3, 0.5, np.array([40.0, -7.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = dlib_points_to_ffhq5(DLIB5_TEMPLATE_512 @ rot.T + shift)
    np.testing.assert_allclose(moved, FFHQ_TEMPLATE_512 @ rot.T + shift, atol=1e-6)


@pytest.mark.parametrize('name', sorted(WHOLE_IMG_FACES))
def test_dlib_finds_every_face(shared_dir, dlib_helper, name):
    dlib_helper.clean_all()
    dlib_helper.read_image(cv2.imread(osp.join(shared_dir, 'testdata', 'whole_imgs', name)))
    assert dlib_helper.get_face_landmarks_5(eye_dist_threshold=5) == WHOLE_IMG_FACES[name]
    dlib_helper.align_warp_face()
    assert all(c.shape == (512, 512, 3) for c in dlib_helper.cropped_faces)


def test_realignment_of_gfpgan_crops_is_near_identity(shared_dir, dlib_helper):
    """The GFPGAN crops were aligned with RetinaFace on the FFHQ template: re-aligning with dlib should not move them.

    Measured (dlib-bin 20.0.1, HOG upsample 1) on the 512 px crops of Adele / Julia Roberts / Justin Timberlake:
    the crop centre moves 1.7 / 1.6 / 2.6 px, the crop corners at most 4.1 / 7.9 / 7.1 px. The dlib template was
    calibrated on other faces (CelebA-HQ), so this is an out-of-sample figure.
    """
    probe = np.array([[256.0, 256.0], [0, 0], [511, 0], [0, 511], [511, 511]])
    centre, corners = [], []
    for name in CROPS:
        dlib_helper.clean_all()
        dlib_helper.read_image(cv2.imread(osp.join(shared_dir, 'testdata', 'cropped_faces', name)))
        assert dlib_helper.get_face_landmarks_5(only_center_face=True) == 1
        dlib_helper.align_warp_face()
        affine = dlib_helper.affine_matrices[0]
        moved = probe @ affine[:, :2].T + affine[:, 2]
        drift = np.linalg.norm(moved - probe, axis=1)
        centre.append(drift[0])
        corners.append(drift[1:].max())
    print(f're-alignment drift, centre: {np.round(centre, 1)} px, corners max: {np.round(corners, 1)} px')
    assert max(centre) < 4.0
    assert max(corners) < 10.0


def test_retinaface_without_weights_fails_clearly(tmp_path):
    with pytest.raises(WeightsNotFoundError) as info:
        build_face_helper(2, detector='retinaface_resnet50', weights_dir=str(tmp_path), allow_download=False)
    msg = str(info.value)
    assert 'detection_Resnet50_Final.pth' in msg
    assert 'https://github.com/xinntao/facexlib/releases' in msg
    assert str(tmp_path / 'facexlib') in msg
    assert not os.listdir(tmp_path) or os.listdir(tmp_path) == ['facexlib']


def test_dlib_helper_downloads_nothing(monkeypatch, tmp_path):
    import facexlib.utils.misc

    def no_download(*args, **kwargs):
        raise AssertionError('a download was attempted')

    monkeypatch.setattr(facexlib.utils.misc, 'download_url_to_file', no_download)
    helper = build_face_helper(1, detector='dlib', weights_dir=str(tmp_path), allow_download=True)
    assert helper.face_parse is None
    assert list(tmp_path.iterdir()) == []


def test_unknown_detector():
    with pytest.raises(ValueError, match='Unknown detector'):
        build_face_helper(2, detector='mtcnn')


def test_dlib_cnn_finds_and_aligns_a_face_like_hog(shared_dir):
    """The MMOD CNN backend (``--detector dlib_cnn``) maps onto the same FFHQ template as HOG.

    On a 256 px copy of a GFPGAN crop (upsample 0 keeps it to about a second) both detectors find the one face, and
    the alignment each gives moves the crop centre by a few pixels only (both are near the identity on these crops).
    """
    img = cv2.resize(cv2.imread(osp.join(shared_dir, 'testdata', 'cropped_faces', 'Adele_crop.png')), (256, 256),
                     interpolation=cv2.INTER_AREA)
    centres = {}
    for detector in ('dlib', 'dlib_cnn'):
        helper = build_face_helper(2, face_size=512, detector=detector, weights_dir='/nonexistent',
                                   allow_download=False, dlib_upsample=0)
        assert helper.face_det.cnn is (detector == 'dlib_cnn')
        helper.read_image(img)
        assert helper.get_face_landmarks_5(only_center_face=True) == 1
        helper.align_warp_face()
        affine = helper.affine_matrices[0]
        centres[detector] = np.array([128.0, 128.0]) @ affine[:, :2].T + affine[:, 2]
        assert np.linalg.norm(centres[detector] - 256.0) < 12.0  # 256 px input -> 512 crop: identity x2
    assert np.linalg.norm(centres['dlib'] - centres['dlib_cnn']) < 8.0
