"""Release analysis: the arms' counts and the checks that fail, pass or stay inconclusive."""

from __future__ import annotations

import pytest

from ostiary.llmops.analysis import Analysis, ArmStats, judge


def _arm(calls: int, errors: int = 0, guarded: int = 0, ms: float = 100.0, cost: float = 0.001) -> ArmStats:
    s = ArmStats()
    for i in range(calls):
        s.observe(500 if i < errors else 200, ms / 1000, cost, i < guarded)
    return s


def test_an_error_spike_fails_as_soon_as_it_is_clear() -> None:
    outcome, checks = judge(Analysis(), _arm(200), _arm(20, errors=10), min_requests=100)
    assert outcome == "fail"
    assert [c.metric for c in checks if c.result == "fail"] == ["error_rate"]
    # Before the candidate has 10 calls nothing is compared; 1 failure in 20 is not yet clear.
    assert judge(Analysis(), _arm(200), _arm(9, errors=9), 100)[0] == "inconclusive"
    assert judge(Analysis(), _arm(200), _arm(20, errors=1), 100)[0] == "inconclusive"


def test_equal_arms_pass_once_both_have_enough_calls() -> None:
    assert judge(Analysis(), _arm(150), _arm(150), min_requests=100)[0] == "pass"
    outcome, checks = judge(Analysis(), _arm(150), _arm(50), min_requests=100)
    assert outcome == "inconclusive"
    assert {c.metric: c.result for c in checks}["latency_p95_ms"] == "inconclusive"


def test_latency_cost_and_guardrail_checks() -> None:
    slow = judge(Analysis(), _arm(200, ms=100), _arm(200, ms=300), 100)
    assert slow[0] == "fail" and {c.metric for c in slow[1] if c.result == "fail"} == {"latency_p95_ms"}
    dear = judge(Analysis(), _arm(200, cost=0.001), _arm(200, cost=0.002), 100)
    assert {c.metric for c in dear[1] if c.result == "fail"} == {"cost_per_call"}
    blocked = judge(Analysis(), _arm(400, guarded=4), _arm(400, guarded=100), 100)
    assert {c.metric for c in blocked[1] if c.result == "fail"} == {"guardrail_rate"}
    # A check set to null is not made.
    off = Analysis(latency_p95_ratio=None, cost_ratio=None)
    assert judge(off, _arm(200, ms=100, cost=0.001), _arm(200, ms=900, cost=0.01), 100)[0] == "pass"


def test_feedback_compares_means_with_an_interval() -> None:
    rules = Analysis(feedback_drop=0.1, feedback_min=20)
    base, good, bad = _arm(200), _arm(200), _arm(200)
    for i in range(200):  # 40 each would leave equal means inconclusive: the interval is wider than 0.1
        base.score(1.0 if i % 5 else 0.0)  # mean 0.8
        good.score(1.0 if i % 5 else 0.0)
        bad.score(1.0 if i % 5 == 0 else 0.0)  # mean 0.2
    assert judge(rules, base, good, 100)[0] == "pass"
    outcome, checks = judge(rules, base, bad, 100)
    assert outcome == "fail" and checks[-1].metric == "feedback_mean" and checks[-1].candidate == 0.2
    few = _arm(200)
    few.score(0.0)
    assert {c.metric: c.result for c in judge(rules, base, few, 100)[1]}["feedback_mean"] == "inconclusive"


def test_counts_survive_json_and_add_up_across_replicas() -> None:
    a, b = _arm(10, errors=1, ms=50), _arm(30, guarded=3, ms=2000)
    total = ArmStats.from_json(a.to_json())
    total.add(ArmStats.from_json(b.to_json()))
    assert (total.calls, total.errors, total.guarded) == (40, 1, 3)
    assert total.p95_ms() is not None and 2000 <= total.p95_ms() <= 2000 * 1.2  # within a bucket
    assert ArmStats().p95_ms() is None


def test_bad_rules_are_refused() -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="ratio"):
        msgspec.convert({"latency_p95_ratio": 0.5}, Analysis)
    with pytest.raises(msgspec.ValidationError, match="confidence"):
        msgspec.convert({"confidence": 1.5}, Analysis)
    with pytest.raises(msgspec.ValidationError, match="feedback_min"):
        msgspec.convert({"feedback_drop": 0.1, "feedback_min": 0}, Analysis)
    with pytest.raises(msgspec.ValidationError, match="feedback_range"):
        msgspec.convert({"feedback_range": [1, 0]}, Analysis)


def test_refused_calls_count_apart_from_guardrail_blocks_and_rate_limits() -> None:
    s = ArmStats()
    for status, guarded in ((400, False), (404, False), (400, True), (429, False), (422, True), (200, False)):
        s.observe(status, 0.1, None, guarded)
    assert (s.calls, s.refused, s.guarded, s.errors) == (6, 2, 2, 0)
    base, cand = _arm(200), _arm(200)
    for _ in range(60):
        cand.observe(400, 0.1, 0.001, False)  # a candidate prompt that no longer renders for old clients
    outcome, checks = judge(Analysis(), base, cand, 100)
    assert outcome == "fail" and [c.metric for c in checks if c.result == "fail"] == ["client_error_rate"]
