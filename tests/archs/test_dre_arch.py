"""DegradationEncoder and MoCo (UDRL, eq. 4) at tiny sizes."""
from collections import OrderedDict

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch.nn import functional as F

from panininet.archs.dre_arch import DegradationEncoder, MoCo
from panininet.weights.official import moco_to_dre_state
from panininet.weights.panini_checkpoint import extract_dre_state


def test_degradation_encoder_shape_and_registry():
    enc = ARCH_REGISTRY.get('DegradationEncoder')(num_feat=8).eval()
    v = enc(torch.rand(3, 3, 32, 32) * 2 - 1)
    assert v.shape == (3, 32)
    fea, proj = enc.project(torch.rand(3, 3, 32, 32))
    assert fea.shape == proj.shape == (3, 32)


def test_moco_is_registered_and_built_from_options():
    from basicsr.archs import build_network
    assert ARCH_REGISTRY.get('MoCo') is MoCo
    moco = build_network({'type': 'MoCo', 'num_feat': 8, 'dim': 32, 'K': 16})
    assert isinstance(moco, MoCo) and moco.queue.shape == (32, 16)


def test_official_layout_names():
    keys = list(DegradationEncoder().state_dict())
    assert keys[:7] == ['E.0.weight', 'E.0.bias', 'E.1.weight', 'E.1.bias', 'E.1.running_mean', 'E.1.running_var',
                        'E.1.num_batches_tracked']
    assert keys[-4:] == ['mlp.0.weight', 'mlp.0.bias', 'mlp.2.weight', 'mlp.2.bias']
    assert len(keys) == 46  # as the official deg_encoder (reference README section 3)


def test_moco_logits_labels_and_infonce():
    moco = MoCo(num_feat=8, dim=32, K=16).train()
    im_q, im_k = torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)
    queue_before = moco.queue.clone()
    logits, labels = moco(im_q, im_k)
    assert logits.shape == (4, 17) and labels.tolist() == [0, 0, 0, 0]
    # column 0 is q.k / T, the rest q.queue / T with the queue as it was before this batch
    _, q = moco.encoder_q.project(im_q)
    q = F.normalize(q, dim=1)
    assert torch.allclose(logits[:, 1:], q @ queue_before / 0.07, atol=1e-5)
    assert (logits.abs() <= 1 / 0.07 + 1e-4).all()
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in moco.encoder_q.parameters())
    assert all(p.grad is None for p in moco.encoder_k.parameters())
    # the keys were enqueued at positions 0..3 and the pointer moved
    assert int(moco.queue_ptr) == 4
    assert torch.equal(moco.queue[:, 4:], queue_before[:, 4:])
    assert torch.allclose(moco.queue[:, :4].norm(dim=0), torch.ones(4), atol=1e-5)


def test_queue_wraps_around():
    moco = MoCo(num_feat=8, dim=32, K=6)
    moco.queue_ptr[0] = 4
    keys = F.normalize(torch.randn(4, 32), dim=1)
    moco.dequeue_and_enqueue(keys)
    assert int(moco.queue_ptr) == 2
    assert torch.equal(moco.queue[:, [4, 5, 0, 1]], keys.T)


def test_momentum_update_moves_key_encoder_towards_query():
    moco = MoCo(num_feat=8, dim=32, K=16, m=0.9)
    with torch.no_grad():
        for p in moco.encoder_q.parameters():
            p.add_(1.0)
    k_before = [p.clone() for p in moco.encoder_k.parameters()]
    moco.momentum_update()
    for p_k, p_q, before in zip(moco.encoder_k.parameters(), moco.encoder_q.parameters(), k_before):
        assert torch.allclose(p_k, 0.9 * before + 0.1 * p_q, atol=1e-6)


def test_eval_mode_does_not_touch_queue_or_key_encoder():
    moco = MoCo(num_feat=8, dim=32, K=16).eval()
    state = {k: v.clone() for k, v in moco.state_dict().items()}
    moco(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    for k, v in moco.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_dim_mismatch_is_refused():
    with pytest.raises(ValueError, match='4 \\* num_feat'):
        MoCo(num_feat=8, dim=256)


def _official_moco_file(num_feat=8):
    """An official-layout MoCo checkpoint: queue, queue_ptr, module.encoder_q.*, module.encoder_k.*."""
    q, k = DegradationEncoder(num_feat), DegradationEncoder(num_feat)
    sd = OrderedDict([('module.queue', torch.randn(4 * num_feat, 16)),
                      ('module.queue_ptr', torch.zeros(1, dtype=torch.long))])
    sd.update((f'module.encoder_q.{n}', v) for n, v in q.state_dict().items())
    sd.update((f'module.encoder_k.{n}', v) for n, v in k.state_dict().items())
    return {'epoch': 200, 'arch': 'resnet50', 'state_dict': sd, 'optimizer': {}}, q


def test_official_moco_copy_rule_takes_encoder_q():
    ckpt, q = _official_moco_file()
    state = extract_dre_state(ckpt)
    assert list(state) == list(q.state_dict())
    for name, v in q.state_dict().items():
        assert torch.equal(state[name], v), name


def test_official_moco_with_other_width_is_refused():
    ckpt, _ = _official_moco_file(num_feat=8)
    with pytest.raises(ValueError, match='does not fit'):
        moco_to_dre_state(ckpt, DegradationEncoder(16).state_dict())


def _enqueue_on_rank(rank, world_size, port, out_dir):
    import os

    import torch.distributed as dist

    import panininet  # noqa: F401
    from panininet.archs.dre_arch import MoCo
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)
        moco = MoCo(num_feat=4, dim=16, K=8)
        keys = torch.full((2, 16), float(rank + 1))  # this rank's keys: all (rank + 1)
        moco.dequeue_and_enqueue(keys)
        torch.save({'queue': moco.queue.clone(), 'ptr': int(moco.queue_ptr)}, f'{out_dir}/rank{rank}.pt')
    finally:
        dist.destroy_process_group()


def test_queue_gathers_the_keys_of_every_rank(tmp_path):
    """Under torch.distributed each rank enqueues the keys of all ranks in rank order (official MoCo's all-gather)."""
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    # fork: a spawned child could not import this test module (tests/ is not a package on its path)
    mp.start_processes(_enqueue_on_rank, args=(2, port, str(tmp_path)), nprocs=2, join=True, start_method='fork')
    results = [torch.load(tmp_path / f'rank{r}.pt', map_location='cpu', weights_only=True) for r in range(2)]
    for res in results:
        assert res['ptr'] == 4
        torch.testing.assert_close(res['queue'][:, :2], torch.ones(16, 2))
        torch.testing.assert_close(res['queue'][:, 2:4], torch.full((16, 2), 2.))
    torch.testing.assert_close(results[0]['queue'], results[1]['queue'])


@pytest.mark.parametrize('n', [2, 4])
def test_shuffled_bn_normalises_per_sub_batch_and_keys_shuffled(n):
    """bn_splits=n: each query is normalised with its own sub-batch, each key with a sub-batch of x_k[perm]."""
    torch.manual_seed(0)
    moco = MoCo(num_feat=4, dim=16, K=32, m=0.5, bn_splits=n).train()
    im_q, im_k = torch.rand(8, 3, 16, 16), torch.rand(8, 3, 16, 16)
    ref = MoCo(num_feat=4, dim=16, K=32, m=0.5).train()
    ref.load_state_dict(moco.state_dict())
    queue_before = moco.queue.clone()
    torch.manual_seed(1)
    logits, _ = moco(im_q, im_k)
    torch.manual_seed(1)
    perm = torch.randperm(8)
    assert not torch.equal(perm, torch.arange(8))  # the seed gives a real shuffle
    q = F.normalize(torch.cat([ref.encoder_q.project(c)[1] for c in im_q.chunk(n)]), dim=1)
    ref.momentum_update()
    k = torch.cat([ref.encoder_k.project(c)[1] for c in im_k[perm].chunk(n)])[torch.argsort(perm)]
    k = F.normalize(k, dim=1)
    assert torch.allclose(logits[:, 0], (q * k).sum(1) / 0.07, atol=1e-4)
    assert torch.allclose(logits[:, 1:], q @ queue_before / 0.07, atol=1e-4)
    assert torch.allclose(moco.queue[:, :8], k.T, atol=1e-5)  # enqueued in the batch's own order
    # per-sub-batch statistics differ from whole-batch ones: the split is real
    q_whole = F.normalize(ref.encoder_q.project(im_q)[1], dim=1)
    assert not torch.allclose(q, q_whole, atol=1e-3)


def test_shuffled_bn_keeps_the_state_dict_and_eval_path():
    plain, split = MoCo(num_feat=4, dim=16, K=8), MoCo(num_feat=4, dim=16, K=8, bn_splits=2)
    assert list(plain.state_dict()) == list(split.state_dict())
    split.load_state_dict(plain.state_dict())
    x = torch.rand(3, 3, 16, 16)  # eval: running statistics, no split, any batch size
    assert torch.allclose(plain.eval()(x, x)[0], split.eval()(x, x)[0], atol=1e-6)


@pytest.mark.parametrize(('kwargs', 'match'), [(dict(bn_splits=0), 'bn_splits must be >= 1'),
                                           (dict(bn_splits=3), 'does not divide')])
def test_shuffled_bn_refuses_bad_splits(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MoCo(num_feat=4, dim=16, K=8, **kwargs).train()(torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16))


def test_batch_negatives_put_the_other_keys_before_the_queue():
    torch.manual_seed(0)
    moco = MoCo(num_feat=4, dim=16, K=8, batch_negatives=True).train()
    ref = MoCo(num_feat=4, dim=16, K=8).train()
    ref.load_state_dict(moco.state_dict())
    im_q, im_k = torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16)
    logits, labels = moco(im_q, im_k)
    plain, _ = ref(im_q, im_k)
    assert logits.shape == (3, 3 + 8) and labels.tolist() == [0, 0, 0]
    assert torch.allclose(logits[:, [0]], plain[:, [0]], atol=1e-5)
    assert torch.allclose(logits[:, 3:], plain[:, 1:], atol=1e-5)
    q = F.normalize(ref.encoder_q.project(im_q)[1], dim=1)
    k = ref.queue[:, :3].T  # the keys ref enqueued
    sim = q @ k.T / 0.07
    assert torch.allclose(logits[0, 1:3], sim[0, [1, 2]], atol=1e-4)
    assert torch.allclose(logits[2, 1:3], sim[2, [0, 1]], atol=1e-4)
