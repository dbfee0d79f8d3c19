"""PII and secrets scanners on the seeded synthetic corpus: quality and speed.

Generates N documents of about 2 KB (`ostiary.guardrails.corpus.generate`, fixed seed), runs
`PiiScanner` and `SecretsScanner`, and prints per entity: gold spans, true and false positives,
precision and recall with *overlap* matching (a finding counts when it overlaps a gold span of the
same entity; each gold span matches once), and the share of those whose offsets are exact. Then the
median µs per document per scanner on three kinds of 2 KB text: the corpus documents (dense: six
values and three near misses each), clean prose from the same generator (no values), and fixed
typical prompts (a report full of numbers, a code question, an e-mail request).

Run: `.venv/bin/python bench/guardrails_pii.py [--docs 500] [--seed 0]`. `evaluate()` returns the
same figures as data, for `ostiary guardrails eval`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ostiary.guardrails.corpus import (
    PII_GOLD_ENTITIES,
    SECRET_GOLD_ENTITIES,
    EntityScore,
    generate,
    score,
)
from ostiary.guardrails.pii import PiiScanner
from ostiary.guardrails.secrets import SecretsScanner

# Semi-structured entities: reported apart from the "structured PII" total the targets speak of.
SEMI_STRUCTURED = ("DATE_OF_BIRTH", "POSTAL_ADDRESS")

_REPORT = (
    "You are a helpful assistant. Summarise the following quarterly report for the board. In 2023, revenue "
    "grew 15% to $3.2 million across 12 regions, while operating costs fell by 4 points. The team shipped "
    "version 2 of the analytics platform in March, and customer satisfaction reached 87 out of 100. Please keep "
    "the summary under 200 words, use plain language, and highlight the three most important risks: supply "
    "chain delays, hiring in the Berlin office, and the migration of the billing system. "
)
_CODE = '''I have a Python function that is slow. Can you help me optimise it and explain the changes?

```python
def load_users(path: str, limit: int = 100) -> list[dict]:
    import json
    result = []
    with open(path, "r", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh):
            if line_no >= limit:
                break
            record = json.loads(line)
            record["full_name"] = record.get("first_name", "") + " " + record.get("last_name", "")
            result.append(record)
    return result

config = {"timeout": 30, "retries": 3, "base_url": "https://api.example.com/v1", "max_items": 500}
```
The file has about 2 million lines and the function takes 45 seconds. I am on Python 3.11 with 16 GB.
'''
_EMAIL = (
    "Please write a polite email to our supplier explaining that the last delivery arrived late and that "
    "several items were damaged during transport. Ask them to confirm the replacement schedule and to propose "
    "a discount for the inconvenience. The tone should be firm but friendly, and the message should not "
    "exceed three short paragraphs. Sign it as the purchasing team. "
)


def _two_kb(text: str) -> str:
    return (text * (2048 // len(text) + 1))[:2048]


TYPICAL_PROMPTS = {"report": _two_kb(_REPORT), "code": _two_kb(_CODE), "email": _two_kb(_EMAIL)}


@dataclass
class Evaluation:
    pii: dict[str, EntityScore]
    secrets: dict[str, EntityScore]
    timings_us: dict[str, dict[str, float]]  # text kind -> scanner -> median µs per 2 KB text
    docs: int
    seed: int


def _median_us(scan: Callable[[str], object], texts: Sequence[str], repeat: int) -> float:
    per_text = []
    for text in texts:
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter_ns()
            scan(text)
            runs.append(time.perf_counter_ns() - t0)
        per_text.append(statistics.median(runs))
    return statistics.median(per_text) / 1000


def evaluate(docs: int = 500, seed: int = 0, repeat: int = 15) -> Evaluation:
    corpus = generate(docs, seed)
    clean = generate(max(50, docs // 5), seed + 1, values_per_doc=0, negatives_per_doc=0)
    pii, secrets = PiiScanner(), SecretsScanner()
    for text in TYPICAL_PROMPTS.values():  # warm-up: first calls compile lazily-built state
        pii.scan(text)
        secrets.scan(text)
    kinds: dict[str, list[str]] = {
        "corpus (dense)": [d.text for d in corpus],
        "clean prose": [d.text for d in clean],
        **{f"prompt: {k}": [v] for k, v in TYPICAL_PROMPTS.items()},
    }
    timings: dict[str, dict[str, float]] = {}
    for kind, texts in kinds.items():
        r = repeat if len(texts) > 1 else repeat * 20
        p = _median_us(pii.scan, texts, r)
        s = _median_us(secrets.scan, texts, r)
        timings[kind] = {"pii": p, "secrets": s, "both": p + s}
    return Evaluation(
        pii=score(pii, corpus, PII_GOLD_ENTITIES),
        secrets=score(secrets, corpus, SECRET_GOLD_ENTITIES),
        timings_us=timings,
        docs=docs,
        seed=seed,
    )


def _total(scores: dict[str, EntityScore], names: Sequence[str], label: str) -> EntityScore:
    total = EntityScore(label)
    for name in names:
        if name in scores:
            total.add(scores[name])
    return total


def _rows(scores: dict[str, EntityScore]) -> list[str]:
    out = []
    for s in scores.values():
        exact = s.exact / s.tp if s.tp else 1.0
        out.append(
            f"| {s.entity} | {s.gold} | {s.tp} | {s.fp} | {s.fn} | {s.precision:.3f} | {s.recall:.3f} | {exact:.2f} |"
        )
    return out


def print_report(ev: Evaluation) -> None:
    header = "| entity | gold | TP | FP | FN | precision | recall | exact offsets |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    print(f"Corpus: {ev.docs} documents of ~2 KB, seed {ev.seed}; overlap matching (see module docstring).\n")
    print("PII\n" + header)
    for line in _rows(ev.pii):
        print(line)
    structured = [e for e in PII_GOLD_ENTITIES if e not in SEMI_STRUCTURED]
    for line in _rows(
        {
            "s": _total(ev.pii, structured, "**structured PII**"),
            "a": _total(ev.pii, list(ev.pii), "**all PII**"),
        }
    ):
        print(line)
    print("\nSecrets\n" + header)
    for line in _rows(ev.secrets):
        print(line)
    for line in _rows({"a": _total(ev.secrets, list(ev.secrets), "**all secrets**")}):
        print(line)
    print("\nMedian µs per 2 KB text, one core\n| text | pii | secrets | pii + secrets |\n|---|---:|---:|---:|")
    for kind, t in ev.timings_us.items():
        print(f"| {kind} | {t['pii']:.1f} | {t['secrets']:.1f} | {t['both']:.1f} |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    print_report(evaluate(args.docs, args.seed, args.repeat))


if __name__ == "__main__":
    main()


__all__ = ["TYPICAL_PROMPTS", "Evaluation", "evaluate", "main", "print_report"]
