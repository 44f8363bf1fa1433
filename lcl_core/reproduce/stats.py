"""Statistics over pre-training seeds: means with 95 % t-intervals and paired differences.

Every row of a reproduction is trained once per pre-training seed, and seed ``s`` is the same initial
weights and the same data order for every row (the run builder seeds both from it). Differences
between two rows are therefore taken per seed and then summarised (a paired design): the seed-to-seed
noise that both rows share cancels.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

from scipy.stats import t as student_t

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and its two-sided 95 % t-interval (``low``/``high`` NaN for a single seed)."""

    mean: float
    low: float
    high: float
    n: int
    per_seed: tuple[float, ...]

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict:
        return asdict(self) | {"per_seed": list(self.per_seed)}


def interval(values: Sequence[float]) -> Interval:
    """Mean ± t_{0.975, n-1} · sd / √n of ``values`` (one per seed)."""
    values = tuple(float(v) for v in values)
    if not values:
        raise ValueError("an interval needs at least one value")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Interval(mean, math.nan, math.nan, 1, values)
    half = student_t.ppf((1 + CONFIDENCE) / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return Interval(mean, mean - half, mean + half, len(values), values)


def paired_difference(first: Mapping[int, float], second: Mapping[int, float]) -> Interval:
    """``first − second`` per seed over the seeds both have (``{seed: value}``), then :func:`interval`."""
    seeds = sorted(set(first) & set(second))
    if not seeds:
        raise ValueError("no seed in common")
    return interval([first[s] - second[s] for s in seeds])


def binomial_half_width(accuracy_percent: float, n: int) -> float:
    """Half-width (points) of the 95 % normal interval of an accuracy measured on ``n`` examples: the
    resolution of one evaluation, before seed-to-seed variation."""
    p = accuracy_percent / 100
    return 100 * 1.959964 * math.sqrt(max(p * (1 - p), 1e-12) / n)
