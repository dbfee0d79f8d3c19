"""`ostiary eval run SUITE.yaml`: a dataset, a target called through the gateway, assertions, a gate.

A suite names a dataset (JSON lines or CSV, next to the suite file), a target (a route, optionally a
prompt `NAME@LABEL` rendered by the gateway) and assertions. Every row is sent `repeats` times; each
assertion scores each answer (1/0 for checks, the metric for ROUGE-L, BLEU and chrF, the fraction
of calls within bounds for latency and cost); an item's score is the mean over its repeats, the
assertion's score the mean over items with a 95 % bootstrap interval (seeded), and the assertion
passes when that mean reaches its threshold and, given a baseline run, does not fall more than
`max_regression` below it. The suite passes when every assertion does.

Metrics: ROUGE-L F1 (`rouge-score`), sentence BLEU and chrF (`sacrebleu`; their signatures are
reported so that a score can be reproduced), with the `eval` extra; embedding cosine similarity
(all-MiniLM-L6-v2) with the `embeddings` extra; LLM-as-judge rubrics and pairwise preference judged
in both orders (llmops/judge.py), the judge called through the gateway.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import random
import re
import statistics
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema
import msgspec
import yaml

from ostiary.llmops import judge
from ostiary.llmops.judge import Ask

Kind = Literal["equals", "contains", "not_contains", "regex", "json_schema", "rouge_l", "bleu", "chrf",
               "similarity", "judge", "pairwise", "latency_ms", "cost_usd"]
JUDGED = ("judge", "pairwise")
METRICS = ("rouge_l", "bleu", "chrf", "similarity")


class SuiteError(ValueError):
    pass


class Assertion(msgspec.Struct, forbid_unknown_fields=True):
    type: Kind
    name: str = ""
    field: str = "expected"  # the row's field holding the expected text or reference
    value: str | None = None  # or a fixed expected text / pattern
    schema: dict[str, Any] | None = None
    max: float | None = None  # latency_ms, cost_usd: the bound per call
    threshold: float = 1.0  # the mean score the gate needs (BLEU and chrF are 0-100, ROUGE-L 0-1)
    max_regression: float | None = None  # against a baseline run: the largest drop allowed
    ignore_case: bool = False
    judge: str | None = None  # judge, pairwise: the route of the judge model (called through the gateway)
    rubric: str | None = None  # judge: what a good answer is; pairwise: the criteria (a default if none)
    scale: int = 5  # judge: the rubric's scores run from 1 to this

    @property
    def label(self) -> str:
        return self.name or self.type


class Target(msgspec.Struct, forbid_unknown_fields=True):
    """What the suite calls. `release`: send every call to that release's `arm` (needs an admin key),
    which is how a run becomes the evaluation gate of a release's candidate."""

    route: str
    prompt: str | None = None
    params: dict[str, Any] = {}
    release: str | None = None
    arm: Literal["candidate", "baseline"] = "candidate"


class Suite(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    dataset: str
    target: Target
    assertions: list[Assertion]
    repeats: int = 1
    seed: int = 0
    concurrency: int = 4
    timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    ms: float
    cost: float | None
    error: str | None = None
    prompt: str | None = None  # the prompt version the gateway rendered (x-ostiary-prompt)
    release: str | None = None  # the release arms the call was on (x-ostiary-release: "ID=ARM, ...")


@dataclass(slots=True)
class Result:
    assertion: Assertion
    mean: float
    low: float
    high: float
    passed: bool
    baseline: float | None = None
    scores: list[float] = field(default_factory=list)  # per item

    def public(self) -> dict[str, Any]:
        return {"assertion": self.assertion.label, "type": self.assertion.type, "mean": round(self.mean, 4),
                "ci95": [round(self.low, 4), round(self.high, 4)], "threshold": self.assertion.threshold,
                "baseline": self.baseline, "passed": self.passed}


def load_suite(path: Path) -> tuple[Suite, list[dict[str, Any]], str]:
    """The suite, its rows, and the dataset's sha256."""
    try:
        suite = msgspec.convert(yaml.safe_load(path.read_text()), Suite)
    except (msgspec.ValidationError, yaml.YAMLError) as e:
        raise SuiteError(f"{path}: {e}") from None
    if not suite.assertions:
        raise SuiteError(f"{path}: a suite needs at least one assertion")
    if not 1 <= suite.repeats <= 100:
        raise SuiteError(f"{path}: repeats must be between 1 and 100")
    for a in suite.assertions:
        if a.type in ("latency_ms", "cost_usd") and a.max is None:
            raise SuiteError(f"{path}: assertion {a.label} needs max")
        if a.type == "json_schema" and a.schema is None:
            raise SuiteError(f"{path}: assertion {a.label} needs schema")
        if a.type in METRICS:
            _metric(a.type)  # the extra is installed, or say so now
        if a.type in JUDGED and not a.judge:
            raise SuiteError(f"{path}: assertion {a.label} needs judge (the route of the judge model)")
        if a.type == "judge" and (not a.rubric or not 2 <= a.scale <= 100):
            raise SuiteError(f"{path}: assertion {a.label} needs a rubric and a scale from 2 to 100")
    data = (path.parent / suite.dataset).read_bytes()
    rows = _rows(suite.dataset, data)
    if not rows:
        raise SuiteError(f"{suite.dataset}: the dataset is empty")
    return suite, rows, hashlib.sha256(data).hexdigest()


def _rows(name: str, data: bytes) -> list[dict[str, Any]]:
    text = data.decode()
    if name.endswith(".csv"):
        return [dict(r) for r in csv.DictReader(text.splitlines())]
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SuiteError(f"{name}:{n}: not JSON: {e}") from None
            if not isinstance(row, dict):
                raise SuiteError(f"{name}:{n}: each line must be a JSON object")
            rows.append(row)
    return rows


def request_body(suite: Suite, row: dict[str, Any]) -> dict[str, Any]:
    """The chat request for one row: its `messages`, or its `input` as one user message, with the
    target's prompt and the row's `variables`."""
    body: dict[str, Any] = {"model": suite.target.route, **suite.target.params}
    if isinstance(row.get("messages"), list):
        body["messages"] = row["messages"]
    elif row.get("input") is not None:
        body["messages"] = [{"role": "user", "content": str(row["input"])}]
    else:
        body["messages"] = []
    if suite.target.prompt:
        body["prompt"] = suite.target.prompt
        variables = row.get("variables")
        if isinstance(variables, str):
            variables = json.loads(variables)
        body["variables"] = variables or {}
    elif not body["messages"]:
        raise SuiteError("a row needs messages or input (or the target a prompt)")
    return body


def score(a: Assertion, answer: Answer, row: dict[str, Any], ask: Ask | None = None) -> float:
    """The assertion's score for one answer: 0..1 for checks and judges, the metric's own scale for
    metrics. `ask` calls the gateway for a judge."""
    if answer.error is not None and a.type not in ("latency_ms",):
        return 0.0
    text = answer.text
    expected = a.value if a.value is not None else row.get(a.field)
    if a.type == "judge":
        if ask is None:
            raise SuiteError(f"assertion {a.label}: a judge needs the gateway")
        return judge.rubric_score(a, judge.question_of(row), text, None if expected is None else str(expected), ask)
    if a.type == "latency_ms":
        return float(answer.error is None and answer.ms <= (a.max or 0))
    if a.type == "cost_usd":
        return float(answer.cost is not None and answer.cost <= (a.max or 0))
    if a.type == "json_schema":
        try:
            jsonschema.validate(json.loads(text), a.schema or {})
            return 1.0
        except (json.JSONDecodeError, jsonschema.ValidationError):
            return 0.0
    if expected is None:
        raise SuiteError(f"assertion {a.label}: the row has no field {a.field!r} and no value is given")
    expected = str(expected)
    if a.type == "pairwise":
        if ask is None:
            raise SuiteError(f"assertion {a.label}: a judge needs the gateway")
        return judge.pairwise_score(a, judge.question_of(row), text, expected, ask)
    if a.type in METRICS:
        return _metric(a.type)(text, expected)
    if a.ignore_case:
        text, expected = text.lower(), expected.lower()
    if a.type == "equals":
        return float(text.strip() == expected.strip())
    if a.type == "contains":
        return float(expected in text)
    if a.type == "not_contains":
        return float(expected not in text)
    return float(re.search(expected, text) is not None)  # regex


@functools.cache  # one scorer per metric for the run, not one per answer
def _metric(kind: str) -> Callable[[str, str], float]:
    if kind == "similarity":
        # Cosine of all-MiniLM-L6-v2 sentence embeddings (the embeddings extra, also used by guardrails).
        from ostiary.guardrails import embed

        try:
            embed.require("the similarity assertion")
        except embed.EmbeddingsUnavailable as e:
            raise SuiteError(str(e)) from None

        def cosine(text: str, ref: str) -> float:
            a, b = embed.get_embedder().embed([text, ref])
            return float(a @ b)  # the vectors are L2-normalised

        return cosine
    try:
        if kind == "rouge_l":
            from rouge_score import rouge_scorer

            scorer = rouge_scorer.RougeScorer(["rougeL"])
            return lambda text, ref: float(scorer.score(ref, text)["rougeL"].fmeasure)
        from sacrebleu.metrics import BLEU, CHRF

        metric = BLEU(effective_order=True) if kind == "bleu" else CHRF()
        return lambda text, ref: float(metric.sentence_score(text, [ref]).score)
    except ImportError:
        raise SuiteError(f"the {kind} metric needs the eval extra: pip install 'ostiary[eval]'") from None


def signatures(suite: Suite) -> dict[str, str]:
    out = {}
    for a in suite.assertions:
        if a.type in ("bleu", "chrf"):
            from sacrebleu.metrics import BLEU, CHRF

            metric = BLEU(effective_order=True) if a.type == "bleu" else CHRF()
            metric.sentence_score("a", ["a"])  # sacrebleu knows the reference count only after a use
            out[a.label] = str(metric.get_signature())
        elif a.type == "rouge_l":
            from importlib.metadata import version

            out[a.label] = f"rougeL|fmeasure|rouge-score:{version('rouge-score')}"
        elif a.type == "similarity":
            out[a.label] = "cosine|all-MiniLM-L6-v2|mean-pooled|numpy forward (ostiary.guardrails.embed)"
        elif a.type in JUDGED:
            out[a.label] = judge.signature(a)
    return out


def bootstrap(values: list[float], seed: int, rounds: int = 1000) -> tuple[float, float]:
    """A 95 % percentile bootstrap interval of the mean."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(rounds))
    return means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


def run(suite: Suite, rows: list[dict[str, Any]], call: Callable[[dict[str, Any]], Answer],
        baseline: dict[str, float] | None = None, progress: Callable[[int], None] | None = None,
        ask: Ask | None = None) -> tuple[list[Result], list[dict[str, Any]]]:
    """Call the target for every row and repeat, score, aggregate; (results, items for the reports).
    `ask` calls a judge (by default `call`)."""
    jobs = [(i, r) for i in range(len(rows)) for r in range(suite.repeats)]
    answers: dict[tuple[int, int], Answer] = {}
    with ThreadPoolExecutor(max(1, suite.concurrency)) as pool:
        for (i, r), answer in zip(jobs, pool.map(lambda job: call(request_body(suite, rows[job[0]])), jobs),
                                  strict=True):
            answers[(i, r)] = answer
            if progress is not None:
                progress(1)
        # Each answer is scored once per assertion (a metric may run a model, a judge calls the
        # gateway: in the pool too); results and items share the scores.
        scores = dict(zip(jobs, pool.map(lambda job: [score(a, answers[job], rows[job[0]], ask or call)
                                                      for a in suite.assertions], jobs), strict=True))
    results = []
    for n, a in enumerate(suite.assertions):
        per_item = [statistics.fmean(scores[(i, r)][n] for r in range(suite.repeats)) for i in range(len(rows))]
        mean = statistics.fmean(per_item)
        low, high = bootstrap(per_item, suite.seed + n)
        base = (baseline or {}).get(a.label)
        passed = mean >= a.threshold and not (
            base is not None and a.max_regression is not None and mean < base - a.max_regression)
        results.append(Result(a, mean, low, high, passed, base, per_item))
    items = [{"row": i, "repeat": r, "answer": answers[(i, r)].text, "ms": round(answers[(i, r)].ms, 2),
              "prompt": answers[(i, r)].prompt, "release": answers[(i, r)].release,
              "cost_usd": answers[(i, r)].cost, "error": answers[(i, r)].error,
              "scores": {a.label: v for a, v in zip(suite.assertions, scores[(i, r)], strict=True)}}
             for i, r in jobs]
    return results, items

