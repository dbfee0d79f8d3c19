"""The embedding injection detector (optional, needs the embeddings extra): logistic-regression heads
over all-MiniLM-L6-v2 sentence embeddings (see embed.py), trained by scripts/train_injection_embed.py
on the same sources and split as the linear model, shipped as JSON in data/injection_embed.json.

Why it exists next to the rules and the linear model: they see words, it sees meaning, so it carries
paraphrases the rules were never written for (English ones: the model is English-only). Why it is
opt-in: 0.15-0.4 s of CPU per 2 KB text against 0.2-0.7 ms for rules + linear model, and on the
held-out sources it adds a little (see injection.py), it does not replace them.

As with the linear models there are two heads: *direct* (jailbreaks and overrides against ordinary
prompts and documents) for every role, and *indirect* (instructions planted in documents against
ordinary documents) for retrieved content only, where a text's probability is the larger of the two.
A prompt is embedded window by window (254 word pieces every 192) and a retrieved document sentence
by sentence (a long sentence in windows of 64), and a text scores its most suspicious unit. Why
sentences for documents: in 128-piece windows a planted instruction was averaged away by the page
around it (bipia-embedded caught 5% of the time, 10% in 64-piece windows). The thresholds per role were chosen on training data only, as the linear
model's were.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from ostiary.guardrails import embed

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

FORMAT = "ostiary-embed-logreg-v1"
# (word pieces, step) per role: windows of a prompt; for documents, of a sentence longer than 64 pieces.
DEFAULT_WINDOWS = {"system": (254, 192), "user": (254, 192), "retrieved": (64, 32)}
SENTENCE_ROLES = frozenset({"retrieved"})  # scored sentence by sentence
MAX_TOKENS = 4096  # word pieces embedded per text at most (windows spread over it): a bounded cost


def max_windows(size: int) -> int:
    return max(2, MAX_TOKENS // size)


@dataclass(slots=True)
class Head:
    weights: list[float]
    bias: float


@dataclass(slots=True)
class EmbedInjectionModel:
    direct: Head
    indirect: Head | None
    thresholds: dict[str, float]
    windows: dict[str, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULT_WINDOWS))
    meta: dict[str, Any] = field(default_factory=dict)
    _matrix: Any = field(default=None, repr=False)

    def score_vectors(self, vectors: NDArray[np.float32], role: str) -> float:
        """The probability of the most suspicious of a text's window vectors, for its (canonical) role."""
        import numpy as np

        if self._matrix is None:
            heads = [self.direct] + ([self.indirect] if self.indirect is not None else [])
            self._matrix = (np.array([h.weights for h in heads], np.float32).T,
                            np.array([h.bias for h in heads], np.float32))
        w, b = self._matrix
        margins = vectors @ w + b  # (windows, heads)
        best = float(margins[:, 0].max() if role != "retrieved" else margins.max())
        return 1.0 / (1.0 + math.exp(-best)) if best >= -50 else 0.0

    def window_ids(self, normalized: str, role: str) -> list[list[int]]:
        size, step = self.windows.get(role, DEFAULT_WINDOWS["user"])
        if role in SENTENCE_ROLES:
            return embed.get_embedder().sentences(normalized, size, step, MAX_TOKENS)
        return embed.get_embedder().windows(normalized, size, step, max_windows(size))

    def probability(self, normalized: str, role: str) -> float:
        """Score a normalised text (see normalize.py) for a canonical role: system, user, retrieved."""
        return self.score_vectors(embed.get_embedder().embed_ids(self.window_ids(normalized, role)), role)

    def to_json(self) -> dict[str, Any]:
        def head(h: Head) -> dict[str, Any]:
            return {"bias": round(h.bias, 6), "weights": [round(x, 6) for x in h.weights]}

        return {"format": FORMAT, "meta": self.meta, "embedder": "sentence-transformers/all-MiniLM-L6-v2",
                "thresholds": {k: round(v, 6) for k, v in self.thresholds.items()},
                "windows": {k: list(v) for k, v in self.windows.items()},
                "direct": head(self.direct), "indirect": head(self.indirect) if self.indirect else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EmbedInjectionModel:
        if data.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} weights file")

        def head(d: dict[str, Any] | None) -> Head | None:
            if d is None:
                return None
            if len(d["weights"]) != embed.DIM:
                raise ValueError(f"a head has {len(d['weights'])} weights, the embedder gives {embed.DIM}")
            return Head([float(x) for x in d["weights"]], float(d["bias"]))

        direct = head(data["direct"])
        assert direct is not None
        windows = {str(k): (int(v[0]), int(v[1])) for k, v in data.get("windows", DEFAULT_WINDOWS).items()}
        return cls(direct, head(data.get("indirect")), {str(k): float(v) for k, v in data["thresholds"].items()},
                   windows, dict(data.get("meta", {})))

    @classmethod
    def load_packaged(cls, name: str = "injection_embed.json") -> EmbedInjectionModel:
        text = resources.files("ostiary.guardrails").joinpath("data", name).read_text(encoding="utf-8")
        return cls.from_json(json.loads(text))
