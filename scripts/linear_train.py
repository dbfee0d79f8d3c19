"""A small, seeded, pure-Python trainer for `ostiary.guardrails.linear.LinearModel` (logistic
regression with L2, AdaGrad over shuffled examples), shared by train_injection.py and train_toxicity.py.

Pure Python on purpose: the gateway must not depend on numpy or scikit-learn, and a few thousand short
texts train in seconds. Deterministic: the same data, seed and settings give the same weights.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence

from ostiary.guardrails.linear import LinearModel, sigmoid


def train(
    docs: Sequence[set[str]],
    labels: Sequence[int],
    sample_weights: Sequence[float] | None = None,
    *,
    epochs: int = 12,
    lr: float = 0.5,
    l2: float = 1e-4,
    min_df: int = 2,
    seed: int = 1234,
    max_features: int = 40_000,
    bigrams: bool = True,
) -> LinearModel:
    """Fit a logistic regression on binary, L2-normalised feature sets (made with `bigrams` as given,
    which the model records so that it is scored with the same features)."""
    df: Counter[str] = Counter()
    for d in docs:
        df.update(d)
    vocab = {f for f, c in df.items() if c >= min_df}
    weights = [1.0] * len(docs) if sample_weights is None else list(sample_weights)
    rows = []
    for d, y, sw in zip(docs, labels, weights, strict=True):
        scale = 1 / math.sqrt(len(d)) if d else 0.0
        rows.append(([f for f in d if f in vocab], scale, y, sw))
    w: dict[str, float] = {}
    g2: dict[str, float] = {}
    bias, bias_g2 = 0.0, 0.0
    order = list(range(len(rows)))
    rng = random.Random(seed)
    for _ in range(epochs):
        rng.shuffle(order)
        for i in order:
            feats, scale, y, sw = rows[i]
            z = bias + scale * sum(w.get(f, 0.0) for f in feats)
            err = (sigmoid(z) - y) * sw
            bias_g2 += err * err
            bias -= lr * err / (math.sqrt(bias_g2) + 1e-8)
            for f in feats:
                g = err * scale + l2 * w.get(f, 0.0)
                acc = g2.get(f, 0.0) + g * g
                g2[f] = acc
                w[f] = w.get(f, 0.0) - lr * g / (math.sqrt(acc) + 1e-8)
    kept = sorted(((f, x) for f, x in w.items() if abs(x) >= 1e-3), key=lambda fx: -abs(fx[1]))[:max_features]
    return LinearModel(dict(kept), bias, bigrams=bigrams)


def threshold_at_fpr(benign_scores: Sequence[float], fpr: float) -> float:
    """The lowest threshold (score >= threshold flags) whose false-positive rate on these benign
    scores is at most `fpr`."""
    ranked = sorted(benign_scores, reverse=True)
    allowed = math.floor(fpr * len(ranked))
    if allowed >= len(ranked):
        return 0.0
    # Flag strictly above the (allowed+1)-th highest benign score.
    return min(1.0, math.nextafter(ranked[allowed], 2.0))


def rates(scores: Sequence[float], threshold: float) -> float:
    """Share of `scores` at or above `threshold`."""
    return sum(1 for s in scores if s >= threshold) / len(scores) if scores else float("nan")
