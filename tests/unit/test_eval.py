"""Evaluation: each assertion's score, seeded intervals, the gate with thresholds and a baseline,
and clear errors for a bad suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from ostiary.llmops.evaluate import (
    Answer,
    Assertion,
    Suite,
    SuiteError,
    Target,
    bootstrap,
    load_suite,
    run,
    score,
)

ROW = {"expected": "Paris", "reference": "The capital of France is Paris."}


@pytest.mark.parametrize(("assertion", "text", "expected"), [
    (Assertion(type="equals"), " Paris ", 1.0),
    (Assertion(type="equals"), "paris", 0.0),
    (Assertion(type="equals", ignore_case=True), "paris", 1.0),
    (Assertion(type="contains"), "It is Paris.", 1.0),
    (Assertion(type="not_contains", value="London"), "It is Paris.", 1.0),
    (Assertion(type="regex", value=r"^\d{4}$"), "2026", 1.0),
    (Assertion(type="regex", value=r"^\d{4}$"), "twenty", 0.0),
    (Assertion(type="json_schema", schema={"type": "object", "required": ["a"]}), '{"a": 1}', 1.0),
    (Assertion(type="json_schema", schema={"type": "object", "required": ["a"]}), '{"b": 1}', 0.0),
    (Assertion(type="json_schema", schema={"type": "object"}), "not json", 0.0),
])
def test_checks_score_one_or_zero(assertion: Assertion, text: str, expected: float) -> None:
    assert score(assertion, Answer(text, 10.0, 0.001), ROW) == expected


def test_metrics_reward_closeness_to_the_reference() -> None:
    close, far = Answer("The capital of France is Paris.", 1, None), Answer("Bananas are yellow.", 1, None)
    for kind in ("rouge_l", "bleu", "chrf"):
        a = Assertion(type=kind, field="reference")  # type: ignore[arg-type]
        assert score(a, close, ROW) > score(a, far, ROW)
    assert score(Assertion(type="rouge_l", field="reference"), close, ROW) == pytest.approx(1.0)
    assert score(Assertion(type="bleu", field="reference"), close, ROW) == pytest.approx(100.0)


def test_latency_cost_and_errors() -> None:
    assert score(Assertion(type="latency_ms", max=100), Answer("x", 50, None), ROW) == 1.0
    assert score(Assertion(type="latency_ms", max=100), Answer("x", 150, None), ROW) == 0.0
    assert score(Assertion(type="cost_usd", max=0.01), Answer("x", 1, 0.002), ROW) == 1.0
    assert score(Assertion(type="cost_usd", max=0.01), Answer("x", 1, None), ROW) == 0.0  # unknown cost fails
    assert score(Assertion(type="contains"), Answer("Paris", 1, None, "HTTP 500: boom"), ROW) == 0.0
    with pytest.raises(SuiteError, match="no field 'answer'"):
        score(Assertion(type="contains", field="answer"), Answer("x", 1, None), ROW)


def test_the_interval_is_seeded_and_brackets_the_mean() -> None:
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    assert bootstrap(values, 3) == bootstrap(values, 3)
    low, high = bootstrap(values, 3)
    assert low <= sum(values) / len(values) <= high and high - low > 0


def _suite(*assertions: Assertion, repeats: int = 2) -> Suite:
    return Suite(name="s", dataset="d.jsonl", target=Target(route="m"), assertions=list(assertions), repeats=repeats)


def test_the_gate_needs_every_threshold_and_no_regression() -> None:
    rows = [{"input": "q1", "expected": "yes"}, {"input": "q2", "expected": "yes"}]
    answers = iter(["yes", "yes", "yes", "no"])
    calls = []

    def call(body: dict) -> Answer:
        calls.append(body)
        return Answer(next(answers), 5.0, None)

    results, items = run(_suite(Assertion(type="contains", threshold=0.7)), rows, call)
    assert [b["messages"] for b in calls[:1]] == [[{"role": "user", "content": "q1"}]]
    assert results[0].mean == pytest.approx(0.75) and results[0].passed and len(items) == 4
    again = iter(["yes"] * 4)
    results, _ = run(_suite(Assertion(type="contains", threshold=0.5, max_regression=0.1)), rows,
                     lambda body: Answer(next(again), 1, None), baseline={"contains": 1.0})
    assert results[0].passed
    worse = iter(["yes", "no", "no", "no"])
    results, _ = run(_suite(Assertion(type="contains", threshold=0.2, max_regression=0.1)), rows,
                     lambda body: Answer(next(worse), 1, None), baseline={"contains": 1.0})
    assert not results[0].passed and results[0].mean == pytest.approx(0.25)


def test_a_bad_suite_is_refused_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"input": "hi"}\nnot json\n')
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ndataset: d.jsonl\ntarget: {route: m}\nassertions: [{type: contains}]\n")
    with pytest.raises(SuiteError, match=r"d.jsonl:2: not JSON"):
        load_suite(suite)
    suite.write_text("name: s\ndataset: d.jsonl\ntarget: {route: m}\nassertions: [{type: latency_ms}]\n")
    with pytest.raises(SuiteError, match="needs max"):
        load_suite(suite)
    suite.write_text("name: s\ndataset: d.jsonl\ntarget: {route: m}\nassertions: [{type: vibes}]\n")
    with pytest.raises(SuiteError, match="vibes"):
        load_suite(suite)
    (tmp_path / "d.csv").write_text("input,expected\nhello,Mock\n")
    suite.write_text("name: s\ndataset: d.csv\ntarget: {route: m}\nassertions: [{type: contains}]\n")
    _, rows, digest = load_suite(suite)
    assert rows == [{"input": "hello", "expected": "Mock"}] and len(digest) == 64


def test_similarity_scores_meaning_not_wording() -> None:
    from ostiary.guardrails import embed

    if not embed.available():
        import os

        assert not os.environ.get("CI"), "scripts/test.sh installs the embeddings extra"
        pytest.skip("the embeddings extra is not installed")
    a = Assertion(type="similarity", field="reference")
    row = {"reference": "The invoice is overdue; please pay it this week."}
    close = score(a, Answer("Your bill is late, kindly settle it within the next few days.", 1, None), row)
    far = score(a, Answer("Penguins live in the southern hemisphere.", 1, None), row)
    assert close > 0.5 > far
