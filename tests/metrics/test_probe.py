"""The linear probe of degradation representations (panininet.metrics.probe) and UDRLModel's r2_* validation metrics."""
import math

import numpy as np
import pytest
import torch

from panininet.metrics.probe import TARGETS, cv_r2, degradation_targets
from panininet.models.udrl_model import probe_metrics


def test_degradation_targets():
    t = dict(zip(TARGETS, degradation_targets(dict(sigma=3.0, r=80.0, delta=7.0, q=30, r_base=10.0))))
    assert t['log_r'] == pytest.approx(math.log(80)) and t['delta'] == 7 and t['q'] == 30 and t['sigma'] == 3
    assert t['log_blur'] == pytest.approx(math.log(5))  # sqrt(3^2 + 8^2 / 4)
    assert math.isnan(degradation_targets(dict(sigma=0.0, r=10.0, delta=0.0, q=-1, r_base=10.0))[2])  # JPEG off


def test_cv_r2_keeps_groups_in_one_fold():
    """Two samples per group with the same target and a feature that identifies the group only: grouped folds
    cannot predict an unseen group; ungrouped folds leak the partner and look perfect."""
    rng = np.random.default_rng(0)
    n = 40
    y = np.repeat(rng.normal(size=(n, 1)), 2, axis=0)
    x = np.repeat(np.eye(n), 2, axis=0) + 1e-3 * rng.normal(size=(2 * n, n))
    grouped, _ = cv_r2(x, y, groups=np.repeat(np.arange(n), 2))
    leaky, _ = cv_r2(x, y)
    assert grouped[0] < 0.1 and leaky[0] > 0.9


def _pairs(n, rng, informative):
    params = {'sigma': rng.uniform(0.2, 10, n), 'r': rng.uniform(10, 200, n), 'delta': rng.uniform(0, 25, n),
              'q': rng.integers(5, 51, n).astype(float), 'r_base': np.full(n, 10.0)}
    params = {k: torch.as_tensor(v) for k, v in params.items()}

    def view():
        v = torch.randn(n, 8, dtype=torch.float64)
        if informative:
            v[:, 0] += params['delta'] / 2  # v_DR encodes the noise level (and nothing else)
        return v
    return view(), view(), params


@pytest.mark.parametrize('informative', [True, False])
def test_probe_metrics_finds_the_encoded_factor(informative):
    v_q, v_k, params = _pairs(60, np.random.default_rng(1), informative)
    m = probe_metrics(v_q, v_k, params)
    assert set(m) == {f'r2_{t}' for t in TARGETS}
    assert (m['r2_delta'] > 0.6) == informative
    assert all(m[f'r2_{t}'] < 0.2 for t in ('log_r', 'q', 'sigma', 'log_blur'))
