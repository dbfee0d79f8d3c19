"""Disallowed topics: by configured terms (whole words or phrases, case- and accent-insensitive) and,
with the embeddings extra, by example sentences matched by meaning.

Terms: matching runs on an NFKD-folded, lower-cased copy whose offsets map one-to-one back to the text
(every character folds to exactly one), so findings point at the original words; score 1.0.

Examples (`examples`, a few sentences or descriptions of what is off limits): the text is embedded
sentence by sentence (all-MiniLM-L6-v2, see embed.py; a long sentence in windows of 64 word pieces),
so that one off-limits question in a long prompt is not averaged away by the rest (in 64-piece
windows a one-line question after a paragraph fell from 0.58 to 0.42), and its best cosine similarity
to any example is compared with `similarity`. One finding spans the text, its score calibrated so that `similarity` lands on 0.5
(the policy's default threshold then means "as configured"). Terms catch the words you know; examples
catch the paraphrases you did not think of, at the cost of ~0.3 ms of CPU per word piece.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from ostiary.guardrails.base import Finding

# Word pieces per window of a long sentence, and the step between windows (half-overlapping).
TOPIC_WINDOW = (64, 32)
DEFAULT_SIMILARITY = 0.5
_MAX_TOKENS = 4096  # word pieces embedded per text at most: a bounded cost on a huge text


def _fold(text: str) -> str:
    # One character in, one character out: strip accents, lower-case.
    out = []
    for ch in text:
        base = unicodedata.normalize("NFKD", ch)[:1] if not ch.isascii() else ch
        out.append(base.lower() if len(base.lower()) == 1 else ch)
    return "".join(out)


class TopicScanner:
    name = "topics"

    def __init__(self, terms: Sequence[str], examples: Sequence[str] = (),
                 similarity: float = DEFAULT_SIMILARITY) -> None:  # fmt: skip
        words = sorted({_fold(t.strip()) for t in terms if t.strip()}, key=len, reverse=True)
        parts = [r"\s+".join(re.escape(w) for w in term.split()) for term in words]
        self._pattern = re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)") if parts else None
        self.similarity = similarity
        self._examples = None
        if any(e.strip() for e in examples):
            from ostiary.guardrails import embed

            # At construction (config compile): a missing extra is a config error, not a failed request.
            embed.require("topics matched by examples")
            self._examples = embed.get_embedder().embed([e.strip() for e in examples if e.strip()])

    def scan(self, text: str) -> list[Finding]:
        found = [] if self._pattern is None else \
            [Finding("TOPIC", m.start(), m.end(), 1.0) for m in self._pattern.finditer(_fold(text))]
        if self._examples is not None and text.strip():
            best = self.best_similarity(text)
            found.insert(0, Finding("TOPIC", 0, len(text), _calibrate(best, self.similarity)))
        return found

    def best_similarity(self, text: str) -> float:
        """The highest cosine between a window of `text` and an example (0 without examples)."""
        if self._examples is None:
            return 0.0
        from ostiary.guardrails import embed

        e = embed.get_embedder()
        vectors = e.embed_ids(e.sentences(text, *TOPIC_WINDOW, budget=_MAX_TOKENS))
        return float((vectors @ self._examples.T).max())


def _calibrate(cosine: float, similarity: float) -> float:
    """Cosine in [-1, 1] -> [0, 1] piecewise linearly, `similarity` landing on 0.5."""
    if cosine < similarity:
        return max(0.0, 0.5 * (cosine + 1) / (similarity + 1))
    return min(1.0, 0.5 + 0.5 * (cosine - similarity) / (1 - similarity))
