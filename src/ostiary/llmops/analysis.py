"""Release analysis: the outcomes of a release's two arms, and the comparison that decides its fate.

Each replica counts, per release and arm, the calls that ended (`ArmStats`: calls, failures,
guardrail triggers, cost, a latency histogram, feedback scores) and stores its cumulative counts;
the analysis sums the replicas' rows. Counts are cumulative since the release started, and both
arms run at the same time, so the baseline is measured under the same load as the candidate.

`judge` compares the arms check by check. A rate (failures, guardrail triggers) fails as soon as
the confidence interval of the candidate's excess over the baseline (Agresti-Caffo) lies wholly
above the allowed margin, which a real spike reaches within tens of calls; it passes when both arms
have `min_requests` calls and the observed excess is within the margin; an excess above the margin
that is not yet certain is inconclusive. (Proving the excess is *below* the margin would need
thousands of calls per step for a 1-2 % margin: no evidence of harm after `min_requests` is the
bar, as in common canary analysis.) The p95 latency and the mean cost compare as ratios once both
arms have `min_requests` calls; the feedback score compares means with a Welch interval the same way
the rates do. Any failed check fails the release; all passed pass it; anything else is
inconclusive (the controller waits, then pauses for a person).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

import msgspec

# Latency buckets: 1 ms to ~10 min, each 20 % wider than the last (a p95 is known to within 20 %).
_GROWTH = 1.2
_BUCKETS = 75
Result = Literal["pass", "fail", "inconclusive"]
MIN_FOR_RATES = 10  # calls per arm before a rate is compared at all


class Analysis(msgspec.Struct, forbid_unknown_fields=True):
    """The checks of a release; a limit set to null is not checked."""

    error_rate: float | None = 0.02  # max absolute increase of the share of failed calls (5xx)
    guardrail_rate: float | None = 0.05  # max absolute increase of the share of calls a guardrail acted on
    latency_p95_ratio: float | None = 1.5  # candidate p95 / baseline p95 at most
    cost_ratio: float | None = 1.25  # candidate mean cost per call / baseline at most
    feedback_drop: float | None = None  # max decrease of the mean feedback score
    feedback_min: int = 20  # feedback scores per arm before the feedback check decides
    feedback_range: tuple[float, float] = (0.0, 1.0)  # scores are clamped to it (one loud score is one score)
    client_error_rate: float | None = 0.02  # max absolute increase of the share of refused calls (4xx)
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1:
            raise ValueError("confidence must be between 0.5 and 1")
        if self.feedback_min < 2:
            raise ValueError("feedback_min must be at least 2 (a spread needs two scores)")
        if not self.feedback_range[0] < self.feedback_range[1]:
            raise ValueError("feedback_range must be [low, high] with low below high")
        for name in ("error_rate", "client_error_rate", "guardrail_rate", "feedback_drop"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 1e6:
                raise ValueError(f"{name} must be a non-negative number")
        for name in ("latency_p95_ratio", "cost_ratio"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be at least 1 (a ratio of candidate to baseline)")


@dataclass(slots=True)
class ArmStats:
    calls: int = 0
    errors: int = 0
    refused: int = 0  # 4xx other than rate limits and guardrail blocks: e.g. a prompt version that no longer renders
    guarded: int = 0
    cost_calls: int = 0
    cost_sum: float = 0.0
    latency: list[int] = field(default_factory=lambda: [0] * _BUCKETS)
    feedback_n: int = 0
    feedback_sum: float = 0.0
    feedback_sq: float = 0.0

    def observe(self, status: int, seconds: float, cost: float | None, guarded: bool) -> None:
        self.calls += 1
        if status >= 500:
            self.errors += 1
        if guarded:
            self.guarded += 1
        elif 400 <= status < 500 and status != 429:
            self.refused += 1
        if cost is not None:
            self.cost_calls += 1
            self.cost_sum += cost
        ms = max(seconds * 1000, 1.0)
        self.latency[min(_BUCKETS - 1, int(math.log(ms, _GROWTH)))] += 1

    def score(self, value: float) -> None:
        self.feedback_n += 1
        self.feedback_sum += value
        self.feedback_sq += value * value

    def add(self, other: ArmStats) -> None:
        self.calls += other.calls
        self.errors += other.errors
        self.refused += other.refused
        self.guarded += other.guarded
        self.cost_calls += other.cost_calls
        self.cost_sum += other.cost_sum
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]
        self.feedback_n += other.feedback_n
        self.feedback_sum += other.feedback_sum
        self.feedback_sq += other.feedback_sq

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "errors": self.errors, "refused": self.refused, "guarded": self.guarded,
                "cost_calls": self.cost_calls,
                "cost_sum": self.cost_sum, "latency": self.latency, "feedback_n": self.feedback_n,
                "feedback_sum": self.feedback_sum, "feedback_sq": self.feedback_sq}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArmStats:
        s = cls(**{k: v for k, v in data.items() if k != "latency"})
        latency = list(data.get("latency") or [])
        s.latency = (latency + [0] * _BUCKETS)[:_BUCKETS]
        return s

    def p95_ms(self) -> float | None:
        if self.calls == 0:
            return None
        need, seen = 0.95 * self.calls, 0
        for i, n in enumerate(self.latency):
            seen += n
            if seen >= need:
                return round(_GROWTH ** (i + 1), 2)  # the bucket's upper bound
        return round(_GROWTH ** _BUCKETS, 2)

    def summary(self) -> dict[str, Any]:
        """What a decision's audit event keeps of an arm."""
        fb = self.feedback_sum / self.feedback_n if self.feedback_n else None
        return {"calls": self.calls, "errors": self.errors, "error_rate": _ratio(self.errors, self.calls),
                "refused": self.refused, "client_error_rate": _ratio(self.refused, self.calls), "guarded": self.guarded, "guardrail_rate": _ratio(self.guarded, self.calls),
                "p95_ms": self.p95_ms(), "cost_per_call": self.cost_sum / self.cost_calls if self.cost_calls else None,
                "feedback_n": self.feedback_n, "feedback_mean": round(fb, 4) if fb is not None else None}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 5) if b else None


@dataclass(frozen=True, slots=True)
class Check:
    metric: str
    result: Result
    baseline: float | None
    candidate: float | None
    limit: float
    detail: str

    def public(self) -> dict[str, Any]:
        return {"metric": self.metric, "result": self.result, "baseline": self.baseline,
                "candidate": self.candidate, "limit": self.limit, "detail": self.detail}


def judge(rules: Analysis, base: ArmStats, cand: ArmStats, min_requests: int) -> tuple[Result, list[Check]]:
    z = NormalDist().inv_cdf(0.5 + rules.confidence / 2)
    checks: list[Check] = []
    if rules.error_rate is not None:
        checks.append(_rate("error_rate", base.errors, base.calls, cand.errors, cand.calls, rules.error_rate, z,
                            min_requests))
    if rules.client_error_rate is not None:
        checks.append(_rate("client_error_rate", base.refused, base.calls, cand.refused, cand.calls,
                            rules.client_error_rate, z, min_requests))
    if rules.guardrail_rate is not None:
        checks.append(_rate("guardrail_rate", base.guarded, base.calls, cand.guarded, cand.calls,
                            rules.guardrail_rate, z, min_requests))
    enough = base.calls >= min_requests and cand.calls >= min_requests
    if rules.latency_p95_ratio is not None:
        checks.append(_ratio_check("latency_p95_ms", base.p95_ms(), cand.p95_ms(), rules.latency_p95_ratio, enough,
                                   min_requests))
    if rules.cost_ratio is not None:
        b = base.cost_sum / base.cost_calls if base.cost_calls else None
        c = cand.cost_sum / cand.cost_calls if cand.cost_calls else None
        checks.append(_ratio_check("cost_per_call", b, c, rules.cost_ratio, enough, min_requests))
    if rules.feedback_drop is not None:
        checks.append(_feedback(base, cand, rules.feedback_drop, rules.feedback_min, z))
    results = {c.result for c in checks}
    outcome: Result = "fail" if "fail" in results else "inconclusive" if "inconclusive" in results or not enough \
        else "pass"
    return outcome, checks


def _rate(metric: str, xb: int, nb: int, xc: int, nc: int, margin: float, z: float, min_requests: int) -> Check:
    pb, pc = _ratio(xb, nb), _ratio(xc, nc)
    if nb < MIN_FOR_RATES or nc < MIN_FOR_RATES:
        return Check(metric, "inconclusive", pb, pc, margin, f"needs {MIN_FOR_RATES} calls per arm")
    # Agresti-Caffo: one success and one failure added to each arm keeps the interval honest at 0 or n.
    qb, qc = (xb + 1) / (nb + 2), (xc + 1) / (nc + 2)
    se = math.sqrt(qb * (1 - qb) / (nb + 2) + qc * (1 - qc) / (nc + 2))
    low, high = qc - qb - z * se, qc - qb + z * se
    excess = xc / nc - xb / nb
    detail = f"excess {excess:+.4f}, interval [{low:+.4f}, {high:+.4f}], allowed +{margin}"
    if low > margin:
        return Check(metric, "fail", pb, pc, margin, detail)
    if excess <= margin and nb >= min_requests and nc >= min_requests:
        return Check(metric, "pass", pb, pc, margin, detail)
    return Check(metric, "inconclusive", pb, pc, margin, detail)


def _ratio_check(metric: str, b: float | None, c: float | None, limit: float, enough: bool,
                 min_requests: int) -> Check:
    if not enough or b is None or c is None:
        return Check(metric, "inconclusive", b, c, limit, f"needs {min_requests} calls per arm")
    ratio = c / b if b > 0 else (1.0 if c == 0 else math.inf)
    return Check(metric, "fail" if ratio > limit else "pass", b, c, limit, f"ratio {ratio:.3f}, allowed {limit}")


def _feedback(base: ArmStats, cand: ArmStats, drop: float, least: int, z: float) -> Check:
    def mean_var(s: ArmStats) -> tuple[float, float]:
        mean = s.feedback_sum / s.feedback_n
        var = max(0.0, (s.feedback_sq - s.feedback_n * mean * mean) / max(1, s.feedback_n - 1))
        return mean, var

    if base.feedback_n < least or cand.feedback_n < least:
        b = round(base.feedback_sum / base.feedback_n, 4) if base.feedback_n else None
        c = round(cand.feedback_sum / cand.feedback_n, 4) if cand.feedback_n else None
        return Check("feedback_mean", "inconclusive", b, c, drop, f"needs {least} scores per arm")
    (mb, vb), (mc, vc) = mean_var(base), mean_var(cand)
    diff = mc - mb
    se = math.sqrt(vb / base.feedback_n + vc / cand.feedback_n)
    low, high = diff - z * se, diff + z * se
    detail = f"change {diff:+.4f}, interval [{low:+.4f}, {high:+.4f}], allowed -{drop}"
    result: Result = "fail" if high < -drop else "pass" if diff >= -drop else "inconclusive"
    return Check("feedback_mean", result, round(mb, 4), round(mc, 4), drop, detail)
