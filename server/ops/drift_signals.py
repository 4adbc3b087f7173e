"""The arithmetic of drift: population stability index and centroid shift, on plain arrays and counts.

Pure functions, no database and no model, so the unit tests check them on made-up numbers.

Inputs are compared as embeddings. A histogram in 384 dimensions (MiniLM's) is out of reach with a few
hundred samples, so the PSI of the inputs is taken over one number per sample: its cosine similarity to
the reference window's centroid. Mail like the reference stays about as close to that centroid as the
reference itself was; mail of another kind sits farther away, and its similarities fall into the
reference's lowest bins.
For the reference's own samples the centroid is taken without the sample itself (leave-one-out): a sample
inside the centroid it is compared with looks closer than a new one, which would be a shift of its own.

Bins are the reference's quintiles, not deciles. PSI measured on finite windows is never 0: with B bins,
N reference and M current samples its expected value with no shift at all is about (B - 1)(1/N + 1/M). For
the default windows (200 and 100) that is 0.14 with deciles, where the usual "significant" threshold of
0.25 is crossed by chance in about 8% of checks (simulated with normal samples); with quintiles it is 0.06
and chance crossings fall under 0.5%. The threshold stays the one people know.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable

import numpy as np

__all__ = ["PSI_BINS", "centroid_distance", "projection", "psi", "share_psi"]

PSI_BINS = 5
# Shares are floored here before the logarithm: an empty bin (or a label never seen) would be infinite.
_FLOOR = 1e-3


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI of `current` against `reference` (1-D values), binned on the reference's quantiles."""
    if len(reference) == 0 or len(current) == 0:
        raise ValueError("PSI needs values in both windows")
    edges = np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    expected = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=bins) / len(reference)
    actual = np.bincount(np.searchsorted(edges, current, side="right"), minlength=bins) / len(current)
    return _psi(expected, actual)


def share_psi(reference: Iterable[Hashable], current: Iterable[Hashable]) -> float:
    """PSI over the shares of categories (triage labels) in two windows."""
    ref, cur = Counter(reference), Counter(current)
    ref_n, cur_n = sum(ref.values()), sum(cur.values())
    if not ref_n or not cur_n:
        raise ValueError("PSI needs values in both windows")
    keys = sorted(set(ref) | set(cur), key=str)
    expected = np.array([ref[k] / ref_n for k in keys])
    actual = np.array([cur[k] / cur_n for k in keys])
    return _psi(expected, actual)


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e, a = np.maximum(expected, _FLOOR), np.maximum(actual, _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def projection(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's cosine similarity to the reference centroid: leave-one-out for the reference's own
    samples (see the module docstring). Rows are embeddings; they need not be normalised."""
    ref, cur = _unit(reference), _unit(current)
    total = ref.sum(axis=0)
    others = total[None, :] - ref  # each reference sample's centroid without it
    ref_sim = np.einsum("ij,ij->i", ref, others) / np.maximum(np.linalg.norm(others, axis=1), 1e-12)
    centre = total / max(float(np.linalg.norm(total)), 1e-12)
    return ref_sim, cur @ centre


def centroid_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Cosine distance (1 - cosine similarity) between the two windows' centroids: 0 for the same
    direction, 1 for unrelated ones."""
    a, b = _unit(reference).mean(axis=0), _unit(current).mean(axis=0)
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    if denominator == 0.0 or math.isnan(denominator):
        raise ValueError("a window's centroid is zero")
    return 1.0 - float(a @ b) / denominator


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return np.asarray(rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12))
