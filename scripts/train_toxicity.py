"""Train the toxicity signal on toxicity/davidson, report it, and write its weights.

    .venv/bin/python scripts/train_toxicity.py [--no-write]

Toxic = Davidson class 0 (hate) or 1 (offensive); class 2 (neither) is not toxic. The tweets are split
in halves A/B by a hash of the text: the model trains on A; B is only tested. Tweets are not what a
gateway sees, and Davidson's "neither" tweets are a poor picture of ordinary prompts (two thirds of
them would be flagged otherwise), so ordinary prompts (wildguard-A) and documents (stdlib-A) train as
extra non-toxic texts; their B halves are only tested. The threshold is chosen on A by 5-fold
out-of-fold scores: the lowest one whose false-positive rate on the non-toxic A texts is at most
TRAIN_FPR (a false alarm on an ordinary prompt costs more than a missed insult). Mentions and URLs
are removed so that the model does not learn user names.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import injection_corpus as corpus
from linear_train import rates, threshold_at_fpr, train

from ostiary.guardrails.linear import LinearModel, features
from ostiary.guardrails.toxicity import view

SEED = 1234
OUT = corpus.ROOT / "src/ostiary/guardrails/data/toxicity.json"
TRAIN_FPR = 0.02
_MENTION = re.compile(r"@\w+")
_URL = re.compile(r"https?://\S+")


def clean(tweet: str) -> str:
    tweet = _URL.sub(" ", _MENTION.sub(" ", tweet))
    return re.sub(r"\bRT\b|&amp;|&#\d+;|&\w+;", " ", tweet)


def featurize(texts: list[str]) -> list[set[str]]:
    return [features(view(t)) for t in texts]


def fit(feats: list[set[str]], labels: list[int]) -> LinearModel:
    pos = sum(labels)
    neg = len(labels) - pos
    weights = [len(labels) / (2 * (pos if y else neg)) for y in labels]  # balanced classes
    return train(feats, labels, weights, epochs=8, seed=SEED, min_df=3, max_features=6_000)


def prf(scores: list[float], labels: list[int], t: float) -> tuple[float, float, float]:
    tp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= t and y)
    fp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= t and not y)
    fn = sum(1 for s, y in zip(scores, labels, strict=True) if s < t and y)
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = [(clean(t), c) for t, c in corpus.davidson()]
    a = [(t, c) for t, c in rows if corpus.half(t) == "A"]
    b = [(t, c) for t, c in rows if corpus.half(t) == "B"]
    wild = corpus.wildguard()
    docs = corpus.stdlib_docs()
    ordinary_a = [e.text for e in wild + docs if e.source.endswith("-A")]
    texts_a = [t for t, _ in a] + ordinary_a
    fa, ya = featurize(texts_a), [int(c != 2) for _, c in a] + [0] * len(ordinary_a)
    # Out-of-fold scores on A choose the threshold.
    order = list(range(len(texts_a)))
    random.Random(SEED).shuffle(order)
    oof = [0.0] * len(texts_a)
    for k in range(5):
        held = set(order[k::5])
        idx = [i for i in range(len(texts_a)) if i not in held]
        m = fit([fa[i] for i in idx], [ya[i] for i in idx])
        for i in held:
            oof[i] = m.probability(fa[i])
    threshold = threshold_at_fpr([x for x, y in zip(oof, ya, strict=True) if not y], TRAIN_FPR)
    model = fit(fa, ya)
    model.thresholds = {"default": threshold}
    fb, yb = featurize([t for t, _ in b]), [int(c != 2) for _, c in b]
    sb = [model.probability(f) for f in fb]
    p, r, f1 = prf(sb, yb, threshold)
    hate = [s for s, (_, c) in zip(sb, b, strict=True) if c == 0]
    offensive = [s for s, (_, c) in zip(sb, b, strict=True) if c == 1]
    neither = [s for s, (_, c) in zip(sb, b, strict=True) if c == 2]
    print(f"davidson: train A {len(a)} (+ {len(ordinary_a)} ordinary texts), test B {len(b)}; threshold "
          f"{threshold:.3f} (OOF FPR <= {TRAIN_FPR:.0%} on non-toxic A texts)")
    print("| set | n | precision | recall | F1 / rate flagged |")
    print("|---|---|---|---|---|")
    print(f"| davidson-B toxic (hate or offensive) | {len(b)} | {p:.3f} | {r:.3f} | F1 {f1:.3f} |")
    print(f"| davidson-B hate only: recall | {len(hate)} | | {rates(hate, threshold):.3f} | |")
    print(f"| davidson-B offensive only: recall | {len(offensive)} | | {rates(offensive, threshold):.3f} | |")
    print(f"| davidson-B neither: flagged (FPR) | {len(neither)} | | | {rates(neither, threshold):.1%} |")
    wild_b = [model.probability(f) for f in featurize([e.text for e in wild if e.source.endswith("-B")])]
    docs_b = [model.probability(f) for f in featurize([e.text for e in docs if e.source.endswith("-B")])]
    print(f"| wildguard-B (ordinary prompts): flagged | {len(wild_b)} | | | {rates(wild_b, threshold):.1%} |")
    print(f"| stdlib-B docstrings: flagged | {len(docs_b)} | | | {rates(docs_b, threshold):.1%} |")
    if not args.no_write:
        model.meta = {"trainer": "scripts/train_toxicity.py", "seed": SEED, "train": "davidson half A + wildguard-A + stdlib-A (non-toxic)",
                      "threshold_rule": f"OOF FPR <= {TRAIN_FPR:.0%} on non-toxic A texts",
                      "label": "toxic = hate or offensive (Davidson classes 0, 1)"}
        OUT.write_text(json.dumps(model.to_json(), ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
        print(f"wrote {OUT.relative_to(corpus.ROOT)} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
