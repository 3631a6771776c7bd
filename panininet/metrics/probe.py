"""Linear probe of degradation representations: how much of each factor of eq. (10) a v_DR encodes linearly.

Ridge regression from v_DR to the degradation factors, scored by R². Used by ``UDRLModel``'s validation (metrics
``r2_<target>``) and by ``scripts/udrl_probe.py``; the README's UDRL section explains the figures.

Targets (:data:`TARGETS`): ``log_r`` (log of the paper's downsampling rate), ``delta`` (noise std, 0..255), ``q``
(JPEG quality), ``sigma`` (blur std, input px) and ``log_blur``, the log of the combined low-pass width
sqrt(sigma^2 + f^2 / 4) input px with f = r / r_base (the Gaussian's variance plus those of the area
downsampling's box, f^2 / 12, and of the linear upsampling's triangle, f^2 / 6): where blur and downsampling hide
each other only this combination is visible in the image.
"""
import math

import numpy as np

TARGETS = ('log_r', 'delta', 'q', 'sigma', 'log_blur')
#: ridge strengths tried (times the number of samples, on features scaled to unit overall std)
ALPHAS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10)


def degradation_targets(params):
    """The probe's targets (:data:`TARGETS`) of one parameter set.

    Args:
        params (dict): ``sigma``, ``r``, ``delta``, ``q`` and ``r_base``, as drawn by
            :meth:`panininet.data.degradation_sampler.DegradationSampler.sample` (``q`` None or -1: JPEG off, then NaN).

    Returns:
        list[float]: One value per target.
    """
    f = params['r'] / params['r_base']
    q = params['q']
    return [math.log(params['r']), float(params['delta']), float('nan') if q is None or q < 0 else float(q),
            float(params['sigma']), 0.5 * math.log(params['sigma']**2 + f**2 / 4)]


def ridge_fit(x, y, alpha):
    """Ridge on centred features scaled by ONE global factor (their overall std); returns a predictor.

    Not per-feature standardisation: a near-constant feature (a random DRE has many) would be blown up to unit
    variance and a small content shift between images would then swing the predictions.

    Args:
        x (ndarray): Features, (n, d).
        y (ndarray): Targets, (n, t).
        alpha (float): Ridge strength (times n).

    Returns:
        callable: (m, d) features -> (m, t) predictions.
    """
    mu, scale = x.mean(0), x.std() + 1e-12
    ym = y.mean(0)
    xs = (x - mu) / scale
    w = np.linalg.solve(xs.T @ xs + alpha * len(x) * np.eye(x.shape[1]), xs.T @ (y - ym))
    return lambda z: ((z - mu) / scale) @ w + ym


def r2(y, pred):
    """Coefficient of determination per column; NaN for a column that does not vary (a fixed factor)."""
    ss_res = ((y - pred)**2).sum(0)
    ss_tot = ((y - y.mean(0))**2).sum(0)
    varies = ss_tot > 1e-9 * np.maximum(1, (y**2).sum(0))
    return np.where(varies, 1 - ss_res / np.where(varies, ss_tot, 1), np.nan)


def cv_r2(x, y, groups=None, alphas=ALPHAS, folds=5, seed=0):
    """K-fold cross-validated R² per target at the alpha with the best mean CV R².

    Args:
        x (ndarray): Features, (n, d).
        y (ndarray): Targets, (n, t); a column that does not vary gives NaN.
        groups (ndarray | None): (n,) group labels; samples of one group (e.g. the query and the key of one pair,
            which share their parameters) stay in one fold. None: every sample is its own group.
        alphas (tuple[float]): Ridge strengths tried.
        folds (int): K (at most half the number of groups, so that every test fold holds two or more groups and
            its R² is defined).
        seed (int): Seed of the fold assignment.

    Returns:
        tuple[ndarray, float]: CV R² per target (t,), and the chosen alpha.
    """
    groups = np.arange(len(x)) if groups is None else np.asarray(groups)
    uniq = np.unique(groups)
    folds = min(folds, len(uniq) // 2)
    if folds < 2:
        raise ValueError(f'A cross-validated probe needs at least 4 groups of samples, got {len(uniq)}.')
    parts = np.array_split(np.random.default_rng(seed).permutation(uniq), folds)
    masks = [np.isin(groups, p) for p in parts]
    best = None
    for alpha in alphas:
        scores = [r2(y[m], ridge_fit(x[~m], y[~m], alpha)(x[m])) for m in masks]
        cv = np.mean(scores, axis=0)
        if best is None or np.nanmean(cv) > np.nanmean(best[0]):
            best = (cv, alpha)
    return best


def linear_probe(x_tr, y_tr, x_te, y_te, alphas=ALPHAS, folds=5, seed=0):
    """Ridge probe with alpha picked by K-fold CV (mean R² over targets) on the training half.

    Returns:
        tuple[ndarray, ndarray, float, ndarray]: test R² per target, test predictions (n_te, t), chosen alpha,
        and the cross-validated R² per target at that alpha (same images as the fit, fresh degradations).
    """
    cv, alpha = cv_r2(x_tr, y_tr, alphas=alphas, folds=folds, seed=seed)
    pred = ridge_fit(x_tr, y_tr, alpha)(x_te)
    return r2(y_te, pred), pred, alpha, cv
