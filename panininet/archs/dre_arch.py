"""Degradation representation encoder (DRE, paper eq. 5) and the MoCo wrapper of its UDRL pre-training (eq. 4).

The layout follows the official ``moco/deg_encoder.py`` so that its checkpoints load by name: ``E`` is six
3x3 conv + BatchNorm + LeakyReLU(0.1) layers and a global average pool, ``mlp`` the projection head that only the
contrastive loss uses. ``MoCo`` keeps the official attribute names (``encoder_q``, ``encoder_k``, ``queue``,
``queue_ptr``), so the state dict of an official ``moco_checkpoint_*.pth.tar`` loads once the DDP prefix
``module.`` is removed.
"""
import torch
import torch.distributed as dist
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from panininet.platform.native_ops import WinogradConv2d


@ARCH_REGISTRY.register()
class DegradationEncoder(nn.Module):
    """Degradation representation encoder (DRE).

    Six 3x3 convolutions (channels f, f, 2f, 2f, 4f, 4f; the third and fifth with stride 2), each followed by
    BatchNorm and LeakyReLU(0.1), then global average pooling: ``v_DR`` has ``4 * num_feat`` values (256 in the paper).

    Args:
        num_feat (int): Width f of the first layer. Default: 64 (v_DR of 256 values).
        num_in_ch (int): Input channels. Default: 3.
    """

    def __init__(self, num_feat=64, num_in_ch=3):
        super().__init__()
        chans = [num_feat, num_feat, 2 * num_feat, 2 * num_feat, 4 * num_feat, 4 * num_feat]
        strides = [1, 1, 2, 1, 2, 1]
        layers = []
        in_ch = num_in_ch
        for out_ch, stride in zip(chans, strides):
            layers += [
                WinogradConv2d(in_ch, out_ch, 3, stride, 1),  # nn.Conv2d; Winograd where it pays (256 channels)
                nn.BatchNorm2d(out_ch),
                nn.LeakyReLU(0.1, inplace=True)
            ]
            in_ch = out_ch
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.E = nn.Sequential(*layers)
        self.out_dim = in_ch
        self.mlp = nn.Sequential(nn.Linear(in_ch, in_ch), nn.LeakyReLU(0.1, inplace=True), nn.Linear(in_ch, in_ch))

    def forward(self, x):
        """Degradation representation.

        Args:
            x (Tensor): Degraded images, (b, 3, h, w), RGB in [-1, 1].

        Returns:
            Tensor: v_DR, (b, 4 * num_feat).
        """
        return self.E(x).flatten(1)

    def project(self, x):
        """v_DR and its projection through ``mlp`` (the vector the contrastive loss compares).

        Args:
            x (Tensor): Degraded images, (b, 3, h, w).

        Returns:
            tuple[Tensor, Tensor]: v_DR (b, d) and the projection (b, d).
        """
        fea = self.forward(x)
        return fea, self.mlp(fea)


@torch.no_grad()
def concat_all_gather(tensor):
    """Concatenate ``tensor`` (b, ...) of every rank along dim 0 in rank order; itself when not distributed.

    Returns:
        Tensor: (world_size * b, ...). No gradient flows through it.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor.contiguous())
    return torch.cat(gathered, dim=0)


@ARCH_REGISTRY.register()
class MoCo(nn.Module):
    """MoCo (v1) around two :class:`DegradationEncoder` s, as used for UDRL (paper eq. 4).

    The query encoder is trained by back-propagation; the key encoder is its exponential moving average
    (momentum ``m``) and never receives gradients. Keys of past batches wait in a queue of ``K`` normalised vectors
    and serve as negatives. Defaults are the values the official run actually used (dim 256, K 8192, m 0.999,
    T 0.07). Under ``torch.distributed`` the keys of every rank are gathered into the queue (as the official
    MoCo).

    Shuffled BatchNorm (``bn_splits``, off by default). The official MoCo computes BatchNorm per GPU and shuffles
    the keys across GPUs, so that a query and its key are never normalised with the same batch (otherwise the
    encoder can match them by the batch statistics they share). With ``bn_splits = n > 1`` each encoder runs on n
    sub-batches separately (BatchNorm statistics per sub-batch, as on n GPUs) and the keys are shuffled before the
    split and unshuffled after, as the official ``_batch_shuffle_ddp`` and the single-GPU ``SplitBatchNorm`` of
    MoCo's CIFAR demo; the batch must divide by n; parameters and state dict do not change. Measured
    (docs/evaluation.md, the UDRL probe): with sub-batches of 4 the DRE collapsed (InfoNCE at ln(K + 1)): the DRE's
    last BatchNorm comes right before its global average pool, so every v_DR is relative to its sub-batch, and 3
    other random degradations are too noisy a reference. ``batch_negatives`` is the other way to take away the
    batch-statistics cue.

    Args:
        num_feat (int): Width of the encoders (v_DR has ``4 * num_feat`` values, must equal ``dim``). Default: 64.
        dim (int): Feature dimension of the queue. Default: 256.
        K (int): Queue length. Default: 8192.
        m (float): Momentum of the key encoder. Default: 0.999.
        T (float): Softmax temperature. Default: 0.07.
        bn_splits (int): Sub-batches of the shuffled BatchNorm (see above); 1 = plain BatchNorm over the batch.
            Default: 1.
        batch_negatives (bool): Also use the other keys of the batch as negatives (logits (b, b + K)): keys of
            the current batch then no longer stand out from the queue by their batch statistics. Default: False
            (eq. 4: the queue only).
    """

    def __init__(self, num_feat=64, dim=256, K=8192, m=0.999, T=0.07, bn_splits=1, batch_negatives=False):
        super().__init__()
        if int(bn_splits) < 1:
            raise ValueError(f'MoCo: bn_splits must be >= 1, got {bn_splits}.')
        self.K = K
        self.m = m
        self.T = T
        self.bn_splits = int(bn_splits)
        self.batch_negatives = bool(batch_negatives)
        self.encoder_q = DegradationEncoder(num_feat)
        self.encoder_k = DegradationEncoder(num_feat)
        if self.encoder_q.out_dim != dim:
            raise ValueError(f'MoCo: dim={dim} but the encoder gives {self.encoder_q.out_dim} values '
                             f'(4 * num_feat); set dim = 4 * num_feat.')
        for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            param_k.data.copy_(param_q.data)
            param_k.requires_grad = False
        self.register_buffer('queue', F.normalize(torch.randn(dim, K), dim=0))
        self.register_buffer('queue_ptr', torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def momentum_update(self):
        """Key encoder parameters <- m * key + (1 - m) * query (BatchNorm statistics follow their own forward)."""
        for param_q, param_k in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            param_k.data.mul_(self.m).add_(param_q.data, alpha=1.0 - self.m)

    @torch.no_grad()
    def dequeue_and_enqueue(self, keys):
        """Replace the oldest queue entries by ``keys`` of every process (wrapping around the end of the queue).

        Under ``torch.distributed`` the keys of all ranks are gathered first (rank order), as the official MoCo
        does, so every rank enqueues the same ``world_size * b`` keys and the queues stay identical.

        Args:
            keys (Tensor): Normalised keys of this process, (b, dim).
        """
        keys = concat_all_gather(keys)
        b = keys.shape[0]
        ptr = int(self.queue_ptr)
        idx = (torch.arange(b, device=keys.device) + ptr) % self.K
        self.queue[:, idx] = keys.T.to(self.queue.dtype)
        self.queue_ptr[0] = (ptr + b) % self.K

    def _split_project(self, encoder, x, perm=None):
        """Normalised projections of ``x`` (b, 3, h, w), BatchNorm per sub-batch of ``x[perm]`` (training mode).

        Returns:
            Tensor: (b, dim) in the order of ``x``.
        """
        n = self.bn_splits if self.training else 1
        if n == 1:
            return F.normalize(encoder.project(x)[1], dim=1)
        if x.shape[0] % n:
            raise ValueError(f'MoCo: batch of {x.shape[0]} does not divide into bn_splits={n} sub-batches; '
                             'make the batch size a multiple of bn_splits.')
        if perm is not None:
            x = x[perm]
        out = torch.cat([encoder.project(chunk)[1] for chunk in x.chunk(n)])
        if perm is not None:
            out = out[torch.argsort(perm)]
        return F.normalize(out, dim=1)

    def forward(self, im_q, im_k):
        """Contrastive logits of eq. (4).

        In training mode the key encoder is updated first (momentum) and the keys are pushed into the queue
        after the logits are computed, as in MoCo. With ``bn_splits > 1`` the keys are normalised in shuffled
        sub-batches (see the class docstring).

        Args:
            im_q (Tensor): Query images, (b, 3, h, w).
            im_k (Tensor): Key images (same degradation, other faces), (b, 3, h, w).

        Returns:
            tuple[Tensor, Tensor]: logits (b, 1 + K), with ``batch_negatives`` (b, b + K): the other keys of the
            batch come before the queue, already divided by T (column 0 = positive) and
            labels (b,) of zeros; the InfoNCE loss is ``F.cross_entropy(logits, labels)``.
        """
        q = self._split_project(self.encoder_q, im_q)
        with torch.no_grad():
            if self.training:
                self.momentum_update()
            perm = torch.randperm(im_k.shape[0], device=im_k.device) if self.bn_splits > 1 else None
            k = self._split_project(self.encoder_k, im_k, perm)
        l_pos = (q * k).sum(dim=1, keepdim=True)
        l_neg = q @ self.queue.clone().detach()
        if self.batch_negatives:
            others = ~torch.eye(q.shape[0], dtype=torch.bool, device=q.device)
            l_neg = torch.cat([(q @ k.T)[others].reshape(q.shape[0], -1), l_neg], dim=1)
        logits = torch.cat([l_pos, l_neg], dim=1) / self.T
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        if self.training:
            self.dequeue_and_enqueue(k)
        return logits, labels
