"""A light offline toxicity signal: a linear model over words and word bigrams, trained on the Davidson
et al. tweets (hate speech and offensive language), weights in `data/toxicity.json`.

It is a *signal*, not a moderation system: trained on 2017 US tweets, it knows slurs, insults and
profanity, not threats phrased politely, sarcasm, or most languages other than English. Use it to flag
or escalate, rarely to block. scripts/train_toxicity.py prints its precision and recall on a held-out
half, and its false-positive rate on ordinary prompts and documents.

The text is normalised like the injection detector's input (NFKC, invisible characters, homoglyphs,
leetspeak inside words: "b1tch" reads as "bitch"). As for the injection scanner, the finding's score is
calibrated so that 0.5 is the trained threshold; `assess` gives the raw probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ostiary.guardrails.base import Finding
from ostiary.guardrails.injection import calibrate
from ostiary.guardrails.linear import LinearModel, tokens
from ostiary.guardrails.normalize import fold_leet, has_leet, normalize


@lru_cache(maxsize=1)
def _packaged_model() -> LinearModel:
    return LinearModel.load_packaged("toxicity.json")


def view(text: str) -> str:
    """The text as the toxicity model reads it (also used by the trainer)."""
    norm = normalize(text).text
    return fold_leet(norm) if has_leet(norm) else norm


@dataclass(frozen=True, slots=True)
class ToxicityAssessment:
    score: float  # calibrated: 0.5 = threshold
    raw: float  # the model's probability of toxic (hate or offensive)
    flagged: bool
    threshold: float


class ToxicityScanner:
    """Scanner "toxicity": one finding spanning the text (none for blank text)."""

    name = "toxicity"
    entity = "TOXICITY"

    def __init__(self, *, threshold: float | None = None, model: LinearModel | None = None) -> None:
        self.model = model or _packaged_model()
        self.threshold = threshold if threshold is not None else self.model.thresholds.get("default", 0.5)

    def assess(self, text: str) -> ToxicityAssessment:
        normalized = view(text)
        words = tokens(normalized)
        raw = self.model.probability(self.model.featurize(normalized, words)) if words else 0.0
        return ToxicityAssessment(calibrate(raw, self.threshold), raw, raw >= self.threshold, self.threshold)

    def scan(self, text: str) -> list[Finding]:
        if not text.strip():
            return []
        return [Finding(self.entity, 0, len(text), self.assess(text).score)]
