"""Unsupervised degradation representation learning (UDRL, paper Fig. 2 and eq. 4): MoCo pre-training of the DRE.

Each training item is a pair (query, key): two different faces degraded with the same eq.-(10) parameters
(``UDRLPairDataset``). ``network_g`` is the :class:`~panininet.archs.dre_arch.MoCo` wrapper: the query encoder is
trained with InfoNCE (temperature ``T``) against the key of the same pair (positive) and the queue of past keys
(negatives); the key encoder follows by momentum ``m``.

Checkpoints: ``net_g_{iter}.pth`` holds ``params`` = the MoCo state dict (``encoder_q.*``, ``encoder_k.*``, the
queue and its pointer), so resuming restores the queue. ``PaniniNet(dre_load_path=...)`` takes the DRE from
``encoder_q.*`` of that file.

Under ``torch.distributed`` the MoCo module is wrapped in DDP; MoCo all-gathers the keys of every rank before
enqueueing them (as the official code), so the queues of all ranks stay identical.

Validation (``val.metrics``): ``retrieval_top1`` -- for N held-out pairs, each with its own degradation, the share
of queries whose nearest key is the key degraded the same way; chance is 1/N. Similarity: cosine of v_DR (the
query encoder's output in eval mode, as Panini-Net uses it) after subtracting the mean v_DR of the 2N images, i.e.
a correlation: all faces share a large common component that otherwise dominates every cosine. Also ``infonce``,
the InfoNCE loss of those pairs among themselves. And ``r2_log_r``, ``r2_delta``, ``r2_q``, ``r2_sigma``,
``r2_log_blur`` (:func:`probe_metrics`): how much of each degradation factor the eval-mode v_DR encodes linearly
(5-fold cross-validated ridge R² over the held-out pairs; 1 = all, <= 0 = nothing). Retrieval can be high while a
factor is missing (the README's UDRL section measured a DRE that encodes the noise level and not the blur); these
say which.
"""
from collections import OrderedDict

import numpy as np
import torch
from basicsr.archs import build_network
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn import functional as F

from panininet.archs.dre_arch import MoCo
from panininet.metrics.probe import TARGETS, cv_r2, degradation_targets
from panininet.models.base_model import PaniniBaseModel


def retrieval_metrics(v_q, v_k, T=0.07):
    """Degradation retrieval among N pairs (cosine similarity of representations centred on their joint mean).

    Args:
        v_q (Tensor): Query representations, (n, d).
        v_k (Tensor): Key representations, (n, d); row i shares its degradation with query i.
        T (float): Temperature of the InfoNCE value. Default: 0.07.

    Returns:
        dict: 'retrieval_top1' (share of i with argmax_j cos(q_i, k_j) == i; chance 1/n) and 'infonce'
        (cross-entropy of the n-way classification with logits cos / T).
    """
    mean = torch.cat([v_q, v_k]).mean(dim=0, keepdim=True)
    sim = F.normalize(v_q - mean, dim=1) @ F.normalize(v_k - mean, dim=1).T
    target = torch.arange(sim.shape[0], device=sim.device)
    return {
        'retrieval_top1': (sim.argmax(dim=1) == target).float().mean().item(),
        'infonce': F.cross_entropy(sim / T, target).item(),
    }


def probe_metrics(v_q, v_k, params, folds=5):
    """Linear-probe R² of each degradation factor from v_DR (:mod:`panininet.metrics.probe`), cross-validated over
    pairs.

    The query and the key of a pair share their parameters, so they are two samples of one group and never fall
    in different folds.

    Args:
        v_q (Tensor): Query representations, (n, d).
        v_k (Tensor): Key representations, (n, d).
        params (dict): Collated ``params`` of the n pairs (``sigma``, ``r``, ``delta``, ``q``, ``r_base``: (n,)).
        folds (int): K of the K-fold cross-validation (at most n / 2). Default: 5.

    Returns:
        dict: ``r2_<target>`` for every target of :data:`panininet.metrics.probe.TARGETS` (NaN for a factor that does
            not
        vary, e.g. q with JPEG off).
    """
    n = v_q.shape[0]
    rows = [degradation_targets({k: float(params[k][i]) for k in ('sigma', 'r', 'delta', 'q', 'r_base')})
            for i in range(n)]
    y = np.array(rows + rows, dtype=np.float64)
    x = torch.cat([v_q, v_k]).double().numpy()
    scores, _ = cv_r2(x, y, groups=np.concatenate([np.arange(n), np.arange(n)]), folds=folds)
    return {f'r2_{t}': float(v) for t, v in zip(TARGETS, scores)}


@MODEL_REGISTRY.register()
class UDRLModel(PaniniBaseModel):
    """MoCo pre-training of the degradation representation encoder.

    Options: ``network_g`` (``type: MoCo`` with ``num_feat``, ``dim``, ``K``, ``m``, ``T``),
    ``train.optim_g`` (``SGD`` as the official run, or ``Adam``), ``train.scheduler``; data items with ``query`` and
    ``key`` images, RGB in [-1, 1].

    Args:
        opt (dict): Parsed BasicSR options.
    """

    def __init__(self, opt):
        super().__init__(opt)
        net_g = build_network({'type': 'MoCo', **opt['network_g']})
        if not isinstance(net_g, MoCo):
            raise ValueError(f'UDRLModel trains a MoCo network (network_g.type: MoCo), got {type(net_g).__name__}.')
        self.net_g = self.model_to_device(net_g)
        self.print_network(self.net_g)
        load_path = self.opt['path'].get('pretrain_network_g')
        if load_path is not None:
            self.load_network(self.net_g, load_path, self.opt['path'].get('strict_load_g', True),
                              self.opt['path'].get('param_key_g', 'params'), option='path.pretrain_network_g')
        if self.is_train:
            self.net_g.train()
            self.setup_optimizers()
            self.setup_schedulers()

    def setup_optimizers(self):
        optim_opt = dict(self.opt['train']['optim_g'])
        params = [p for p in self.net_g.parameters() if p.requires_grad]  # encoder_q only
        self.optimizer_g = self.get_optimizer(optim_opt.pop('type'), params, **optim_opt)
        self.optimizers = [self.optimizer_g]

    def feed_data(self, data):
        """Args:
            data (dict): 'query' and 'key', (b, 3, s, s) RGB in [-1, 1].
        """
        self.query = data['query'].to(self.device)
        self.key = data['key'].to(self.device)

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        logits, labels = self.net_g(self.query, self.key)
        l_infonce = F.cross_entropy(logits, labels)
        l_infonce.backward()
        self.optimizer_g.step()
        acc = (logits.detach().argmax(dim=1) == labels).float().mean()
        self.log_dict = self.reduce_loss_dict(OrderedDict(l_infonce=l_infonce.detach(), acc_top1=acc))

    @property
    def dre(self):
        """The trained degradation representation encoder (MoCo's query encoder)."""
        return self.get_bare_model(self.net_g).encoder_q

    @torch.no_grad()
    def representations(self, images, batch_size=32):
        """v_DR of images by the query encoder in eval mode (as Panini-Net uses the DRE).

        Args:
            images (Tensor): (n, 3, s, s), RGB in [-1, 1].
            batch_size (int): Chunk size. Default: 32.

        Returns:
            Tensor: (n, dim) on the CPU.
        """
        dre = self.dre
        was_training = dre.training
        dre.eval()
        out = [dre(images[i:i + batch_size].to(self.device)).cpu() for i in range(0, len(images), batch_size)]
        dre.train(was_training)
        return torch.cat(out)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """Degradation retrieval on held-out pairs (see :func:`retrieval_metrics`); ``save_img`` is ignored."""
        dataset_name = dataloader.dataset.opt['name']
        queries, keys, params = [], [], []
        for data in dataloader:
            queries.append(data['query'])
            keys.append(data['key'])
            params.append(data['params'])
        v_q, v_k = self.representations(torch.cat(queries)), self.representations(torch.cat(keys))
        T = self.get_bare_model(self.net_g).T
        results = retrieval_metrics(v_q, v_k, T)
        metrics = self.opt['val'].get('metrics')
        if not metrics:
            raise ValueError('val.metrics is empty: UDRLModel validation reports retrieval_top1 {better: higher}, '
                             'infonce {better: lower} and/or r2_log_r, r2_delta, r2_q, r2_sigma, r2_log_blur '
                             '{better: higher}.')
        if any(name.startswith('r2_') for name in metrics):
            if len(v_q) < 4:
                raise ValueError(f'val.metrics r2_*: the cross-validated probe needs at least 4 validation pairs, '
                                 f'{dataset_name} has {len(v_q)}.')
            collated = {k: torch.cat([torch.as_tensor(p[k]) for p in params]) for k in params[0]}
            results.update(probe_metrics(v_q, v_k, collated))
        self._initialize_best_metric_results(dataset_name)
        self.metric_results = {}
        for name in metrics:
            if name not in results:
                raise ValueError(f'UDRLModel validation knows the metrics {sorted(results)}, not {name!r}.')
            self.metric_results[name] = results[name]
            self._update_best_metric_result(dataset_name, name, results[name], current_iter)
        log_str = f'Validation {dataset_name} ({len(v_q)} pairs, chance {1 / len(v_q):.4f})\n'
        for name, value in self.metric_results.items():
            log_str += f'\t # {name}: {value:.4f}\n'  # NaN: the factor does not vary in this set
            if tb_logger:
                tb_logger.add_scalar(f'metrics/{dataset_name}/{name}', value, current_iter)
        get_root_logger().info(log_str)

    def save(self, epoch, current_iter):
        self.save_network(self.net_g, 'net_g', current_iter)
        self.save_training_state(epoch, current_iter)
