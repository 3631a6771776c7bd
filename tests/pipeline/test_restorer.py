"""PaniniRestorer: weight knob, batching, fallback, paste-back round trip, input forms, GFPGANer compatibility."""
import importlib.util
import inspect
import os
import os.path as osp
import warnings

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_ARCH, psnr

from panininet.archs.panini_arch import PaniniNet
from panininet.atomic import new_file_mode
from panininet.pipeline.restorer import (
    ALIGN_SIZE,
    MASK_BIAS_RANGE,
    PaniniRestorer,
    read_image,
    restored_to_output_affine,
    weight_to_mask_bias,
    write_image,
)

pytest.importorskip('dlib')

HAS_GFPGAN = importlib.util.find_spec('gfpgan') is not None

# GFPGANer's documented API (gfpgan/utils.py, v1.3.8), written here because gfpgan is not a dependency
GFPGANER_INIT = [('model_path', inspect.Parameter.empty), ('upscale', 2), ('arch', 'clean'),
                 ('channel_multiplier', 2), ('bg_upsampler', None), ('device', None)]
GFPGANER_ENHANCE = [('img', inspect.Parameter.empty), ('has_aligned', False), ('only_center_face', False),
                    ('paste_back', True), ('weight', 0.5)]


class IdentityNet(torch.nn.Module):
    """A "restorer" that only resizes: restored faces are the aligned crops at out_size."""
    in_size = ALIGN_SIZE
    out_size = 2 * ALIGN_SIZE

    def forward(self, x, mask_bias=0.0):
        return F.interpolate(x, size=self.out_size, mode='bicubic', align_corners=False)


class FailingNet(IdentityNet):
    def forward(self, x, mask_bias=0.0):
        raise RuntimeError('out of memory (simulated)')


@pytest.fixture(scope='module')
def tiny_net():
    torch.manual_seed(0)
    return PaniniNet(**TINY_ARCH).eval()


@pytest.fixture(scope='module')
def identity_restorer():
    return PaniniRestorer(upscale=2, detector='dlib', net=IdentityNet(), device='cpu', dlib_upsample=0)


def photo(shared_dir, name):
    return cv2.imread(osp.join(shared_dir, 'testdata', 'whole_imgs', name))


def crop(shared_dir, name='Adele_crop.png'):
    return cv2.imread(osp.join(shared_dir, 'testdata', 'cropped_faces', name))


def test_weight_to_mask_bias():
    assert weight_to_mask_bias(None) == 0.0
    assert weight_to_mask_bias(0.5) == 0.0
    assert weight_to_mask_bias(1.0) == -MASK_BIAS_RANGE  # toward the input features
    assert weight_to_mask_bias(0.0) == MASK_BIAS_RANGE  # toward the GAN prior
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        weight_to_mask_bias(1.5)


def test_weight_acts_on_dafi_masks_and_output(shared_dir, tiny_net):
    restorer = PaniniRestorer(detector='dlib', net=tiny_net, device='cpu')
    face = crop(shared_dir)
    x = torch.from_numpy(cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA)[..., ::-1].copy())
    x = (x.permute(2, 0, 1)[None].float() / 255.0 - 0.5) / 0.5
    theta = {}
    with torch.no_grad():
        for w in (0.0, 1.0):
            theta[w] = tiny_net(x, mask_bias=weight_to_mask_bias(w), return_extras=True)[1]['theta']
        y = tiny_net(x)
    assert theta[0.0].min() > 0.9  # weight 0: masks near 1 = the prior's features
    assert theta[1.0].max() < 0.1  # weight 1: masks near 0 = the input's features
    outs = {w: restorer.restore_faces([face], weight=w)[0] for w in (0.0, 0.5, 1.0)}
    assert outs[0.5].shape == (128, 128, 3) and outs[0.5].dtype == np.uint8
    assert np.abs(outs[0.0].astype(int) - outs[1.0].astype(int)).mean() > 2
    # weight 0.5 is the network as trained, with the official post-processing ((y + 1) / 2, clamp, round)
    expected = ((y.clamp(-1, 1) + 1) / 2 * 255).round().byte()[0].permute(1, 2, 0).numpy()[..., ::-1]
    assert np.abs(outs[0.5].astype(int) - expected.astype(int)).max() <= 1


def test_batches_give_the_same_faces(shared_dir, tiny_net):
    faces = [crop(shared_dir, n) for n in ('Adele_crop.png', 'Julia_Roberts_crop.png')]
    one = PaniniRestorer(detector=None, net=tiny_net, device='cpu', batch_size=1).restore_faces(faces)
    two = PaniniRestorer(detector=None, net=tiny_net, device='cpu', batch_size=2).restore_faces(faces)
    assert len(two) == 2
    for a, b in zip(one, two):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


class CountingNet(torch.nn.Module):
    """Wraps a network and records the batch size of every call."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.in_size, self.out_size, self.fusion = net.in_size, net.out_size, net.fusion
        self.calls = []

    def forward(self, x, **kwargs):
        self.calls.append(x.shape[0])
        return self.net(x, **kwargs)


def test_faces_of_several_photos_share_network_calls(shared_dir, tiny_net):
    faces = [crop(shared_dir, n) for n in ('Adele_crop.png', 'Julia_Roberts_crop.png', 'Justin_Timberlake_crop.png')]
    counting = CountingNet(tiny_net)
    restorer = PaniniRestorer(detector=None, net=counting, device='cpu', batch_size=2)
    results = restorer.enhance_batch(faces, has_aligned=True)
    assert counting.calls == [2, 1]  # three photos, one face each: two calls, not three
    for face, (cropped, restored, whole) in zip(faces, results):
        one_cropped, one_restored, _ = restorer.enhance(face, has_aligned=True)
        assert whole is None and len(cropped) == len(restored) == 1
        np.testing.assert_array_equal(cropped[0], one_cropped[0])
        assert np.abs(restored[0].astype(int) - one_restored[0].astype(int)).max() <= 1


def test_failing_face_falls_back_to_input_crop(shared_dir):
    restorer = PaniniRestorer(detector='dlib', net=FailingNet(), device='cpu', batch_size=2)
    faces = [crop(shared_dir), crop(shared_dir, 'Julia_Roberts_crop.png')]
    with pytest.warns(UserWarning, match='keeping the input crop'):
        out = restorer.restore_faces(faces)
    assert len(out) == 2
    assert out[0].shape == (1024, 1024, 3)
    assert psnr(cv2.resize(out[0], (512, 512), interpolation=cv2.INTER_AREA), faces[0]) > 35


@pytest.mark.parametrize('name', ['Blake_Lively.jpg', '10045.png'])
def test_paste_back_round_trip(shared_dir, identity_restorer, name):
    """With an identity restorer the photo comes back as its upscaled self (measured: 33.8 dB / 44.1 dB)."""
    img = photo(shared_dir, name)
    cropped, restored, out = identity_restorer.enhance(img)
    assert len(cropped) == len(restored) >= 2
    assert out.shape == (2 * img.shape[0], 2 * img.shape[1], 3) and out.dtype == np.uint8
    ref = cv2.resize(img, out.shape[:2][::-1], interpolation=cv2.INTER_LANCZOS4)
    inner = np.zeros((ALIGN_SIZE, ALIGN_SIZE), np.float32)
    inner[64:-64, 64:-64] = 1  # away from the feathered seams
    sel = np.zeros(out.shape[:2], bool)
    for affine in identity_restorer.face_helper.affine_matrices:
        m = restored_to_output_affine(affine, ALIGN_SIZE, ALIGN_SIZE, (2.0, 2.0))
        sel |= cv2.warpAffine(inner, m, out.shape[:2][::-1]) > 0.999
    assert sel.sum() > 10000
    value = psnr(out, ref, sel)
    print(f'{name}: paste-back round trip {value:.1f} dB over {sel.sum()} face pixels')
    assert value >= 30
    assert psnr(out, ref, ~sel) > 40  # the background is the plain upscaled photo


def test_detect_then_align_are_facexlibs_steps(shared_dir, identity_restorer):
    """The two public steps give facexlib's own landmarks and crops; enhance is built on them."""
    img = photo(shared_dir, 'Blake_Lively.jpg')
    landmarks = identity_restorer.detect_landmarks(img)
    assert landmarks.ndim == 3 and landmarks.shape[0] >= 2 and landmarks.shape[1:] == (5, 2)
    assert (landmarks >= 0).all() and (landmarks < np.array(img.shape[1::-1])).all()  # x < w, y < h
    assert (landmarks[:, 0, 0] < landmarks[:, 1, 0]).all()  # FFHQ order: image-left eye first
    crops, affines = identity_restorer.align_faces(img, landmarks)
    helper = identity_restorer.face_helper
    helper.clean_all()
    helper.input_img = img
    helper.all_landmarks_5 = list(landmarks)
    helper.align_warp_face()
    assert len(crops) == len(affines) == len(helper.cropped_faces) == landmarks.shape[0]
    for ours, theirs, m, m_theirs in zip(crops, helper.cropped_faces, affines, helper.affine_matrices):
        assert ours.shape == (ALIGN_SIZE, ALIGN_SIZE, 3)
        np.testing.assert_array_equal(ours, theirs)
        np.testing.assert_array_equal(m, m_theirs)
    cropped, _, _ = identity_restorer.enhance(img, paste_back=False)
    assert len(cropped) == len(crops) and all(np.array_equal(a, b) for a, b in zip(cropped, crops))
    assert identity_restorer.detect_landmarks(img, only_center_face=True).shape == (1, 5, 2)
    empty = identity_restorer.detect_landmarks(np.full((80, 120, 3), 90, np.uint8))
    assert empty.shape == (0, 5, 2) and identity_restorer.align_faces(img, empty) == ([], [])


def test_input_forms_are_kept(shared_dir, identity_restorer):
    img = photo(shared_dir, 'Blake_Lively.jpg')[:, 350:]  # one face
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    alpha = np.tile(np.linspace(0, 255, img.shape[1], dtype=np.uint8), (img.shape[0], 1))
    rgba = np.dstack([img, alpha])
    deep = img.astype(np.uint16) * 257 + 100
    for variant, shape, dtype in ((gray, (928, 700), np.uint8), (rgba, (928, 700, 4), np.uint8),
                                  (deep, (928, 700, 3), np.uint16)):
        _, restored, out = identity_restorer.enhance(variant)
        assert len(restored) == 1
        assert out.shape == shape and out.dtype == dtype
    _, _, out = identity_restorer.enhance(rgba)
    ref_alpha = cv2.resize(alpha, (700, 928), interpolation=cv2.INTER_LANCZOS4)
    assert np.array_equal(out[:, :, 3], ref_alpha)
    _, _, out16 = identity_restorer.enhance(deep)
    assert out16.max() > 255 and len(np.unique(out16 % 257)) > 1  # real 16-bit values, not 8-bit ones scaled


def test_photo_without_face(identity_restorer):
    img = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 3)
    cropped, restored, out = identity_restorer.enhance(img)
    assert cropped == [] and restored == []
    assert out.shape == (240, 320, 3)


def test_aligned_input(shared_dir, identity_restorer):
    face = crop(shared_dir)
    cropped, restored, out = identity_restorer.enhance(face, has_aligned=True)
    assert out is None and len(cropped) == 1 and restored[0].shape == (1024, 1024, 3)


def test_exif_orientation_and_atomic_write(tmp_path):
    from PIL import Image

    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:, :10] = 255  # a white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(arr).save(tmp_path / 'rot.jpg', exif=exif, quality=95)
    img = read_image(str(tmp_path / 'rot.jpg'))
    assert img.shape == (60, 40, 3)
    assert img[:10].mean() > 200  # the band is now on top
    (tmp_path / 'bad.png').write_bytes(b'not an image')
    assert read_image(str(tmp_path / 'bad.png')) is None
    dest = tmp_path / 'out' / 'x.png'
    write_image(img, str(dest))
    write_image(img[:5], str(dest))  # replaced in one step
    assert cv2.imread(str(dest)).shape == (5, 40, 3)
    assert os.listdir(tmp_path / 'out') == ['x.png']
    assert os.stat(dest).st_mode & 0o777 == new_file_mode()  # not mkstemp's 0o600


def restore_like_an_application(restorer, img):
    """What code written for GFPGANer does with it."""
    cropped_faces, restored_faces, restored_img = restorer.enhance(
        img, has_aligned=False, only_center_face=False, paste_back=True, weight=0.5)
    return cropped_faces, restored_faces, restored_img


def test_usable_where_gfpganer_is(shared_dir, tiny_net):
    enhance = inspect.signature(PaniniRestorer.enhance).parameters
    assert [(n, p.default) for n, p in enhance.items() if n != 'self'] == GFPGANER_ENHANCE
    init = inspect.signature(PaniniRestorer.__init__).parameters
    names = [n for n in init if n != 'self']
    assert names[:2] == ['model_path', 'upscale'] and init['upscale'].default == 2
    for name, default in GFPGANER_INIT:
        if name in ('arch', 'channel_multiplier'):  # GFPGAN's architecture switches: ours is `version`
            continue
        if default is not inspect.Parameter.empty:  # (model_path is required there, optional here)
            assert init[name].default == default
    restorer = PaniniRestorer(upscale=2, detector='dlib', net=tiny_net, device='cpu', dlib_upsample=0)
    img = photo(shared_dir, 'Blake_Lively.jpg')[:, 350:]
    cropped_faces, restored_faces, restored_img = restore_like_an_application(restorer, img)
    assert isinstance(cropped_faces, list) and isinstance(restored_faces, list)
    assert all(f.dtype == np.uint8 and f.shape == (512, 512, 3) for f in cropped_faces)
    assert all(f.dtype == np.uint8 and f.shape == (128, 128, 3) for f in restored_faces)
    assert isinstance(restored_img, np.ndarray) and restored_img.shape == (928, 700, 3)


@pytest.mark.skipif(not HAS_GFPGAN, reason='gfpgan is not installed')
def test_gfpganer_signature_matches_installed_gfpgan():
    from gfpgan import GFPGANer

    ours = inspect.signature(PaniniRestorer.enhance).parameters
    theirs = inspect.signature(GFPGANer.enhance).parameters
    assert [(n, p.default) for n, p in ours.items()] == [(n, p.default) for n, p in theirs.items()]


@pytest.mark.slow
@pytest.mark.skipif(not HAS_GFPGAN, reason='gfpgan is not installed')
def test_gfpgan_version_runs(shared_dir, tmp_path):
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    net = GFPGANv1Clean(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None,
                        fix_decoder=False, num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    torch.save({'params_ema': net.state_dict()}, tmp_path / 'GFPGANv1.3.pth')
    restorer = PaniniRestorer(model_path=str(tmp_path / 'GFPGANv1.3.pth'), version='gfpgan1.3', detector='dlib',
                              device='cpu')
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a failing face would fall back with a warning
        _, restored, _ = restorer.enhance(crop(shared_dir), has_aligned=True)
    assert restored[0].shape == (512, 512, 3)


def test_sr16_aligned_64_face_reaches_the_network_untouched(shared_dir):
    class Recorder(IdentityNet):
        in_size = 64
        out_size = 1024

        def forward(self, x, mask_bias=0.0):
            self.seen = x.clone()
            return super().forward(x)

    net = Recorder()
    restorer = PaniniRestorer(detector='dlib', net=net, device='cpu')
    face64 = cv2.imread(osp.join(shared_dir, 'testdata', 'panini_examples', 'SR', '00002.png'))
    cropped, restored, _ = restorer.enhance(face64, has_aligned=True)
    expected = (torch.from_numpy(face64[..., ::-1].copy()).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    assert torch.equal(net.seen[0], expected)
    assert cropped[0].shape == (512, 512, 3) and restored[0].shape == (1024, 1024, 3)
