"""A linear text classifier read from a JSON weights file: the learned half of the injection and
toxicity detectors.

Features are binary: the words of the normalised text, optionally its word bigrams (a per-model
setting: the injection models do without, for speed, since its rules carry the phrases), and
character bigrams inside runs of CJK text (which has no spaces to split on). The feature vector is L2-normalised (each present
feature counts 1/sqrt(n)), so that a long text does not score higher just for holding more words.
The score is the logistic function of the bias plus the weighted sum.

Why a dictionary of weights rather than the hashing trick: a Python dict *is* a hash table keyed by the
feature string, with no collisions and a lookup in C; computing a stable hash of every n-gram in Python
(CPython's own `hash` is salted per process) would cost more than the whole scan is allowed to. The
weights file keeps only the features the trainer kept (pruned by minimum document frequency and weight),
so it stays small, readable and diffable. JSON, never pickle: loading a weights file runs no code.

Cost: on 2 KB of ASCII prose, 20-30 µs for words only, twice that with bigrams (tokenise by
`str.translate` + `split`, build the bigrams with `map`, look up with `map(dict.get)`: every loop runs
in C).
"""

from __future__ import annotations

import itertools
import json
import math
import re
import string
from collections.abc import Collection
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

FORMAT = "ostiary-linear-v1"

# ASCII punctuation becomes a separator. `str.translate` with an ASCII-to-ASCII table takes CPython's
# fast path, much faster than a tokenising regular expression.
_SEPARATORS = str.maketrans({c: " " for c in string.punctuation})


_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f"
_CJK_RE = re.compile(f"[{_CJK}]")
_CJK_RUN_RE = re.compile(f"[{_CJK}]{{2,}}")


def tokens(normalized: str) -> list[str]:
    """Words of an already normalised (lower-cased) text."""
    return normalized.translate(_SEPARATORS).split()


def features(normalized: str, words: list[str] | None = None, bigrams: bool = True) -> set[str]:
    """The feature set of an already normalised (lower-cased) text: words, word bigrams (unless
    `bigrams` is false), and CJK character bigrams."""
    if words is None:
        words = tokens(normalized)
    feats = set(words)
    if bigrams:
        feats.update(map(" ".join, itertools.pairwise(words)))
    if not normalized.isascii() and _CJK_RE.search(normalized):
        for run in _CJK_RUN_RE.findall(" ".join(words)):
            feats.update(run[i : i + 2] for i in range(len(run) - 1))
    return feats


WINDOW = 48  # words per window when a long text is scored piecewise
STEP = 24  # half-overlapping: an instruction up to 24 words long lies whole inside some window


def windows(words: list[str], size: int = WINDOW, step: int = STEP) -> list[list[str]]:
    """Overlapping word windows covering `words` (one window when it is short). Used to score long
    retrieved documents: one injected sentence in a long page must not be averaged away."""
    if len(words) <= size:
        return [words]
    return [words[i : i + size] for i in range(0, len(words) - size + step, step)]


@dataclass(slots=True)
class LinearModel:
    """Logistic regression over binary features, L2-normalised. `thresholds` are the operating points
    chosen by the trainer (e.g. per segment role); `meta` says how it was trained."""

    weights: dict[str, float]
    bias: float
    thresholds: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    bigrams: bool = True  # whether word bigrams are features (see `features`)

    def featurize(self, normalized: str, words: list[str] | None = None) -> set[str]:
        return features(normalized, words, self.bigrams)

    def margin(self, feats: Collection[str]) -> float:
        if not feats:
            return self.bias
        total = sum(filter(None, map(self.weights.get, feats)))
        return self.bias + total / math.sqrt(len(feats))

    def probability(self, feats: Collection[str]) -> float:
        return sigmoid(self.margin(feats))

    def score_text(self, normalized: str) -> float:
        return self.probability(self.featurize(normalized))

    def contributions(self, normalized: str, top: int = 10) -> list[tuple[str, float]]:
        """The features that weigh most in this text's score, for explaining a verdict."""
        feats = self.featurize(normalized)
        scale = 1 / math.sqrt(len(feats)) if feats else 0.0
        found = [(f, self.weights[f] * scale) for f in feats if f in self.weights]
        return sorted(found, key=lambda fw: -abs(fw[1]))[:top]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "meta": self.meta,
            "bias": round(self.bias, 6),
            "bigrams": self.bigrams,
            "thresholds": {k: round(v, 6) for k, v in self.thresholds.items()},
            # Sorted by weight so that a diff of two trainings, or a reader, sees the strongest first.
            "weights": {f: round(w, 5) for f, w in sorted(self.weights.items(), key=lambda fw: (-fw[1], fw[0]))},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearModel:
        if data.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} weights file")
        weights = {str(k): float(v) for k, v in data["weights"].items()}
        thresholds = {str(k): float(v) for k, v in data.get("thresholds", {}).items()}
        return cls(weights, float(data["bias"]), thresholds, dict(data.get("meta", {})), bool(data.get("bigrams", True)))

    @classmethod
    def load(cls, path: str | Path) -> LinearModel:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def load_packaged(cls, name: str) -> LinearModel:
        """A weights file shipped in `ostiary/guardrails/data/`."""
        text = resources.files("ostiary.guardrails").joinpath("data", name).read_text(encoding="utf-8")
        return cls.from_json(json.loads(text))


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
