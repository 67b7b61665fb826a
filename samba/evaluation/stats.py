"""Uncertainty over folds x seeds and paired tests over folds.

Seeds within a fold share the test windows, so they are not independent samples: intervals resample
*folds* (a cluster bootstrap; each fold's value is the mean over its seeds), and paired tests pair the
fold means of two methods. With few folds the smallest reachable p-value is large (3 folds: 0.25 for an
exact two-sided sign-flip test) and the verdicts say so instead of pretending.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats as sps


def fold_means(per_fold: list[dict], key: str) -> dict[str, float]:
    """{fold: mean over seeds of ``key``} from per-(fold, seed) rows; NaN values are skipped."""
    out: dict[str, list[float]] = {}
    for r in per_fold:
        v = r.get(key)
        if v is not None and np.isfinite(v):
            out.setdefault(r["fold"], []).append(float(v))
    return {f: float(np.mean(v)) for f, v in out.items()}


def bootstrap_ci(per_fold: list[dict], key: str, n_boot: int = 2000, seed: int = 0) -> dict:
    """``{"mean", "ci95": [lo, hi]}``: mean over folds (of seed means); the interval is a percentile bootstrap
    over folds from 10 folds on, Student's t over fold means below (clipped to [0, 1], the metrics' range).

    One fold: the interval is over seeds (its spread is seed noise only, and says so by being narrow).
    """
    means = fold_means(per_fold, key)
    vals = np.array(list(means.values()))
    if len(vals) == 0:
        return {"mean": None, "ci95": [None, None]}
    if len(vals) == 1:
        vals = np.array([r[key] for r in per_fold if r.get(key) is not None and np.isfinite(r[key])], float)
    if 2 <= len(vals) < 10:  # few folds: a percentile bootstrap is far too narrow; Student's t is honest
        t = t_ci(vals)
        return {"mean": t["mean"], "ci95": [max(0.0, t["ci95"][0]), min(1.0, t["ci95"][1])]}
    rng = np.random.default_rng(seed)
    boots = vals[rng.integers(0, len(vals), size=(n_boot, len(vals)))].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"mean": float(vals.mean()), "ci95": [float(lo), float(hi)]}


def t_ci(values) -> dict:
    """``{"mean", "ci95"}`` from Student's t over independent values (e.g. fold means)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        m = float(v.mean()) if len(v) else None
        return {"mean": m, "ci95": [m, m]}
    half = sps.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return {"mean": float(v.mean()), "ci95": [float(v.mean() - half), float(v.mean() + half)]}


def paired_test(a: dict[str, float], b: dict[str, float]) -> dict:
    """Paired test of fold values ``a`` vs ``b`` (same fold names): ``{"p", "effect", "n", "test"}``.

    effect = mean(a - b). Up to 12 folds: exact two-sided sign-flip permutation test (all 2^n flips);
    more: Wilcoxon signed-rank. Ties at zero difference count as no evidence either way.
    """
    folds = sorted(set(a) & set(b))
    d = np.array([a[f] - b[f] for f in folds], float)
    if len(d) == 0:
        return {"p": None, "effect": None, "n": 0, "test": "none"}
    effect = float(d.mean())
    if len(d) <= 12:
        observed = abs(d.sum())
        flips = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        p = float(np.mean(np.abs(flips @ d) >= observed - 1e-12))
        test = "sign-flip permutation (exact)"
    else:
        p = float(sps.wilcoxon(d, zero_method="zsplit").pvalue) if np.any(d != 0) else 1.0
        test = "Wilcoxon signed-rank"
    return {"p": p, "effect": effect, "n": int(len(d)), "test": test}


def min_p(n_folds: int) -> float:
    """The smallest p the exact sign-flip test can reach with ``n_folds`` folds."""
    return 2.0 / 2 ** n_folds if n_folds <= 12 else 0.0


def holm(p: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment of the p-values of a family of tests (same keys): with the m values sorted,
    the i-th smallest becomes max over j <= i of min(1, (m - j + 1) p_(j)). Controls the chance of any false
    positive in the family at the level it is compared with, whatever the tests' dependence."""
    order = sorted(p, key=p.get)
    out, running = {}, 0.0
    for j, key in enumerate(order):
        running = max(running, min(1.0, (len(order) - j) * p[key]))
        out[key] = running
    return out
