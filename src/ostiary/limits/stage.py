"""The limits stage: admit a call against every limit and budget that applies, then account for it.

Before the call, in one atomic step (one Redis script with `redis_url`): a concurrency slot and a
request token of every scope (key, user, team, tenant, route), the estimated tokens from every
token bucket (prompt tokens counted offline, plus max_tokens or `limits.output_reserve`), and the
estimated cost from every budget (priced at the dearest deployment the route may use). After it,
the real usage settles all of them, and the call's tokens and cost go to the usage meter.

A stream is counted as it flows: once its output passes what was reserved, it reserves more in
steps of `budgets.stream_step` tokens, and a budget that cannot cover the next step ends the stream
with a `budget_exceeded` error event before the text that would overrun it is sent.

Answers carry the OpenAI-style `x-ratelimit-*` headers of the tightest request and token buckets; a
refusal is a 429 with `Retry-After`. If the shared counter store (Redis) cannot be reached the call
is refused with a 503: a limit that silently stops counting is not a limit.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from ostiary.config.schema import Config, Quota, Route
from ostiary.errors import GatewayError, RateLimited
from ostiary.limits.alerts import BudgetAlerts
from ostiary.limits.book import Book, Rules, scopes_of
from ostiary.limits.meter import UsageMeter
from ostiary.limits.pricing import Price, PriceBook, cost
from ostiary.limits.rate import Bucket, Cap, RateLimiter, Settled, Slot, Verdict
from ostiary.limits.settings import BudgetRule, LimitRule
from ostiary.limits.tokens import (
    completion_reservation,
    count_text,
    encoding_for,
    prompt_tokens,
    usage_tokens,
    warm,
)
from ostiary.pipeline.call import Call, close_stream
from ostiary.pipeline.stage import Handler

log = logging.getLogger("ostiary.limits")
T = TypeVar("T")
Batches = AsyncIterator[list[dict[str, Any]]]


class BudgetExceeded(GatewayError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=429, type="insufficient_quota", code="budget_exceeded")


_REASONING = ("o1", "o3", "o4", "gpt-5")
_Quota = Quota | LimitRule  # the config's default for a kind of scope, or a stored override for one


@dataclass(frozen=True, slots=True)
class _Template:
    """What applies to one principal on one route, the same for each of its calls until a reload."""

    requests: tuple[Bucket, ...]  # request buckets
    tokens: tuple[tuple[str, Bucket], ...]  # ("tpm" | "itpm" | "otpm", its bucket), cost set per call
    slots: tuple[Slot, ...]
    budgets: tuple[tuple[str, BudgetRule], ...]  # (scope, rule)


@dataclass(slots=True)
class Ticket:
    """What one call reserved, to be settled when it ends."""

    holder: str
    slots: list[Slot]
    buckets: list[Bucket]  # the template's request buckets, its token buckets, a loop bucket; costs as taken
    caps: list[Cap]  # their costs are what was reserved, grown by a stream's extra steps
    input_est: int
    output_est: int
    out_price: float  # USD per output token at the dearest deployment (a stream's extra steps)
    template: _Template
    counted_out: int = 0  # output tokens counted as a stream flowed


class LimitsStage:
    name = "limits"

    def __init__(self, cfg: Config, chains: dict[str, list[Route]], limiter: RateLimiter, book: Book,
                 meter: UsageMeter, alerts: BudgetAlerts, lease_seconds: float = 660.0) -> None:
        self.limits = cfg.limits
        self.stream_step = cfg.budgets.stream_step
        self.limiter, self.book, self.meter, self.alerts = limiter, book, meter, alerts
        self.lease_ms = int(lease_seconds * 1000)  # a replica that dies frees its slots after it
        self.prices = PriceBook({name: Price(p.input, p.output, p.cached_input) for name, p in cfg.pricing.items()})
        # Per route: the model whose tokenizer estimates its prompts, and the dearest price among
        # the deployments it (and its fallbacks) may answer with; the real one settles afterwards.
        self._tokenizer = {name: chain[0].deployments[0].model for name, chain in chains.items()}
        self._dearest = {name: self._dearest_price(chain) for name, chain in chains.items()}
        self._deployment_model = {d.name: d.model for chain in chains.values() for d in chain[0].deployments}
        # Reasoning models refuse max_tokens and want max_completion_tokens; the rest know max_tokens.
        self._cap_param = {name: "max_completion_tokens" if m.startswith(_REASONING) else "max_tokens"
                           for name, m in self._tokenizer.items()}
        self._templates: dict[tuple[Any, ...], _Template | None] = {}
        self._rules_version = -1
        if self.counts_tokens(cfg):
            self.warm()

    def warm(self) -> None:
        """Load the tokenizers the routes need now, not on the first request (~50 ms, ~30-70 MB)."""
        warm(*{encoding_for(m) for m in self._tokenizer.values()})

    def counts_tokens(self, cfg: Config) -> bool:
        quotas = [cfg.limits.key, cfg.limits.user, cfg.limits.tenant, cfg.limits.route]
        rules = self.book.rules
        every: list[_Quota | None] = [*quotas, *rules.limits.values()]
        return bool(rules.budgets) or any(q is not None and (q.tpm or q.input_tpm or q.output_tpm) for q in every)

    def _dearest_price(self, chain: list[Route]) -> Price | None:
        """The dearest input and output prices among every deployment a route and its fallbacks use."""
        prices = [self.prices.price(d.model) for r in chain for d in r.deployments]
        known = [p for p in prices if p is not None]
        if len(known) < len(prices):
            log.warning("route %r can be answered by a model without a price: budgets count it as free "
                        "(add it under `pricing:` in the config)", chain[0].name)
        if not known:
            return None
        return Price(max(p.input for p in known), max(p.output for p in known),
                     max(p.cached_input if p.cached_input is not None else p.input for p in known))

    # -- planning ------------------------------------------------------------------------------

    def _template(self, call: Call, rules: Rules) -> _Template | None:
        """The buckets, slots and budgets of this principal on this route, built once per reading
        of the rules."""
        p = call.principal
        key = (p.kind, p.subject, p.tenant, p.user, p.team, p.lineage, call.model)
        if self._rules_version != rules.version:
            self._templates.clear()
            self._rules_version = rules.version
        try:
            return self._templates[key]
        except KeyError:
            pass
        if len(self._templates) >= 100_000:  # principals come and go (tokens): stay bounded
            self._templates.clear()
        lim, overrides = self.limits, rules.limits
        defaults: dict[str, Quota | None] = {"key": lim.key, "user": lim.user, "team": None, "tenant": lim.tenant}
        scopes = scopes_of(p)
        quotas: list[tuple[str, _Quota]] = []
        for kind, scope in scopes:
            q: _Quota | None = overrides.get(scope) or defaults[kind]
            if q is not None:
                quotas.append((scope, q))
        if lim.route is not None:
            quotas.append((f"route:{call.model}", lim.route))
        requests = tuple(Bucket.per_minute(scope, q.rpm) for scope, q in quotas if q.rpm)
        tokens = tuple((kind, Bucket.per_minute(f"{kind}:{scope}", limit)) for scope, q in quotas
                       for kind, limit in (("tpm", q.tpm), ("itpm", q.input_tpm), ("otpm", q.output_tpm)) if limit)
        slots = tuple(Slot(f"inflight:{scope}", q.concurrent) for scope, q in quotas if q.concurrent)
        budgets = tuple((scope, rules.budgets[scope]) for _, scope in scopes if scope in rules.budgets)
        t = None
        if requests or tokens or slots or budgets or lim.loop is not None:
            t = _Template(requests, tokens, slots, budgets)
        self._templates[key] = t
        return t

    def plan(self, call: Call) -> Ticket | None:
        rules = self.book.rules  # one reading for the whole plan
        t = self._template(call, rules)
        if t is None:
            return None
        est_in = est_out = 0
        served = self._served(call)
        if t.tokens or t.budgets:
            est_in = prompt_tokens(call.body, self._tokenizer.get(served, served))
            if call.kind == "chat":
                est_out = completion_reservation(call.body, self.limits.output_reserve)
                if t.budgets and "max_tokens" not in call.body and "max_completion_tokens" not in call.body:
                    # Under a budget an answer may not outgrow its reservation: cap it upstream.
                    call.body[self._cap_param[served]] = est_out // max(1, int(call.body.get("n") or 1))
        buckets = list(t.requests)
        for kind, b in t.tokens:
            if kind != "otpm" and est_in > b.capacity:
                raise RateLimited(f"This request has about {est_in} input tokens, more than the limit of "
                                  f"{b.capacity} tokens per minute for {b.key.partition(':')[2]!r}; shorten it.",
                                  code="tokens_exceed_limit")
            need = est_in + est_out if kind == "tpm" else est_in if kind == "itpm" else est_out
            # An output reservation above the whole limit waits for a full bucket instead.
            buckets.append(b.costing(max(1, min(need, b.capacity))))
        loop = self.limits.loop
        if loop is not None:
            # The same principal, the same route, the same input: a client stuck in a retry or agent loop.
            prompt = call.body.get("messages", call.body.get("input"))
            digest = hashlib.sha256(orjson.dumps([call.model, prompt], option=orjson.OPT_SORT_KEYS)).hexdigest()
            buckets.append(Bucket.per_window(f"loop:{call.principal.tenant}/{call.principal.subject}:{digest[:32]}",
                                             loop.max_repeats, loop.window_seconds))
        caps, out_price = [], 0.0
        if t.budgets:
            price = self._dearest.get(served)
            est_cost = cost(price, est_in, est_out) if price else 0.0
            out_price = price.output / 1e6 if price else 0.0
            for scope, rule in t.budgets:
                period = self.book.periods.current(rule.period)
                caps.append(Cap(f"{_BUDGET}{scope}:{period.id}", rule.amount_usd, est_cost,
                                rules.base(scope, period), period.ttl_ms, tuple(rule.thresholds)))
        holder = f"{call.id}:{os.urandom(6).hex()}"  # request ids come from clients: make it unique
        return Ticket(holder, list(t.slots), buckets, caps, est_in, est_out, out_price, t)

    # -- the stage -----------------------------------------------------------------------------

    async def __call__(self, call: Call, next: Handler) -> None:
        if call.model not in self._tokenizer:
            await next(call)  # no such route: the router answers 404; nothing to limit or meter
            return
        ticket = self.plan(call)
        if ticket is not None:
            verdict = await self._guard(self.limiter.admit(ticket.buckets, ticket.slots, ticket.holder,
                                                           self.lease_ms, ticket.caps))
            self._verdict(call, ticket, verdict)  # raises on a refusal; then nothing was held
        try:
            await next(call)
        except BaseException:
            self._finish(call, ticket, failed=True)
            raise
        if call.stream and call.result is not None and not isinstance(call.result, dict):
            call.result = Metered(self, call, ticket, call.result)
        else:
            self._finish(call, ticket)

    def _verdict(self, call: Call, t: Ticket, v: Verdict) -> None:
        if v.full is not None:
            scope = v.full.key.removeprefix("inflight:")
            raise RateLimited(f"{v.full.limit} requests are already in flight for {scope!r}; retry when one "
                              "of them has finished.", code="concurrency_limit_exceeded",
                              headers={"retry-after": "1"})
        if v.broke is not None:
            c = v.broke
            # The first refusal of a period is announced (budget.exhausted), once across replicas.
            self.limiter.finish([], t.holder, [], [(c, 0.0)], self._alert, refused=True)
            scope, period = _budget_of(c)
            raise BudgetExceeded(f"The budget of {c.limit:.2f} USD for {scope!r} ({period}) cannot cover this "
                                 f"request: {v.spent:.4f} USD is spent or reserved by requests in flight, and "
                                 f"this request may cost up to {c.cost:.4f} USD (lower max_tokens to need less).")
        if not v.allowed:
            wait = max(1, math.ceil(v.retry_after_ms / 1000))
            b = v.tightest
            assert b is not None
            if b.key.startswith("loop:"):
                raise RateLimited(f"The same request was sent more than {b.capacity} times in "
                                  f"{self.limits.loop.window_seconds:g}s; this looks like a runaway loop in "  # type: ignore[union-attr]
                                  "the client. Change the request or wait.", code="runaway_loop_detected",
                                  headers={"retry-after": str(wait)})
            kind, unit = _describe(b)
            raise RateLimited(f"Rate limit of {b.capacity} {unit} per minute reached for {kind!r}; retry in "
                              f"{wait}s.", headers={"retry-after": str(wait),
                                                    **{k.decode(): x.decode() for k, x in _headers(b, 0)}})
        # Headers: the tightest request bucket and the tightest token bucket (not the loop bucket).
        nr, nt = len(t.template.requests), len(t.template.tokens)
        for lo, hi in ((0, nr), (nr, nr + nt)):
            if hi > lo:
                i = min(range(lo, hi), key=lambda j: v.levels[j] / t.buckets[j].capacity)
                call.response_headers += _headers(t.buckets[i], v.levels[i])

    async def _guard(self, pending: Awaitable[T]) -> T:
        try:
            return await pending
        except Exception:
            log.exception("rate limiter unavailable")
            raise GatewayError("The rate limiter cannot be reached; the request was not admitted.",
                               status=503, type="api_error", code="limiter_unavailable") from None

    # -- accounting ----------------------------------------------------------------------------

    async def extend(self, call: Call, t: Ticket) -> None:
        """A stream has used its output reservation: reserve the next step or end it."""
        need = max(self.stream_step, t.counted_out - t.output_est)
        extra = [c.costing(need * t.out_price) for c in t.caps]
        verdict = await self._guard(self.limiter.admit([], [], t.holder, 0, extra))
        if not verdict.allowed:
            c = verdict.broke
            assert c is not None
            raise BudgetExceeded(f"The answer was cut off: the budget of {c.limit:.2f} USD for "
                                 f"{_budget_of(c)[0]!r} is spent.")
        t.caps = [c.costing(c.cost + e.cost) for c, e in zip(t.caps, extra, strict=True)]
        t.output_est += need

    def _finish(self, call: Call, t: Ticket | None, failed: bool = False, counted_out: int = 0) -> None:
        p = call.principal
        try:
            used_in, used_out, cached, spent = self._usage(call, t, counted_out)
        except Exception:  # an upstream's odd usage must not keep a slot or a reservation held
            log.exception("could not read the usage of request %s; settling it as zero", call.id)
            used_in = used_out = cached = 0
            spent = 0.0
        if t is not None:
            used = {"tpm": used_in + used_out, "itpm": used_in, "otpm": used_out}
            nr = len(t.template.requests)
            settle = [(b, float(used[kind] - b.cost))
                      for (kind, _), b in zip(t.template.tokens, t.buckets[nr:], strict=False)]
            caps = [(c, spent - c.cost) for c in t.caps]
            self.limiter.finish(t.slots, t.holder, settle, caps, self._alert if caps else None)
        if p is not None:
            minute = int(call.started_wall // 60)
            self.meter.add((minute, p.tenant, p.team, p.user, p.subject, call.model, call.deployment),
                           error=failed or call.error is not None, input_tokens=used_in, output_tokens=used_out,
                           cached_tokens=cached, cost=spent)
        call.decisions["cost_usd"] = spent

    def _usage(self, call: Call, t: Ticket | None, counted_out: int) -> tuple[int, int, int, float]:
        """(input, output, cached input tokens, USD): the upstream's usage, or for a stream that
        ended without it (a client gone, a cut), the estimate and what was counted as it flowed."""
        if isinstance(call.usage, dict):
            used_in, used_out, cached = usage_tokens(call.usage)
        elif counted_out:
            est = t.input_est if t is not None and t.input_est else prompt_tokens(
                call.body, self._tokenizer.get(self._served(call), call.model))
            used_in, used_out, cached = est, counted_out, 0
        else:
            used_in = used_out = cached = 0
        price = self._price(call)
        return used_in, used_out, cached, cost(price, used_in, used_out, cached) if price else 0.0

    def _served(self, call: Call) -> str:
        """The route whose deployments answer (a release may point the asked one elsewhere): the
        tokenizer and prices to estimate with are its."""
        served = call.served_route
        return served if served in self._tokenizer else call.model

    def _price(self, call: Call) -> Price | None:
        p = self.prices.price(call.upstream_model) if isinstance(call.upstream_model, str) else None
        if p is None and call.deployment is not None:
            model = self._deployment_model.get(call.deployment)
            p = self.prices.price(model) if model else None
        return p or self.prices.price(call.model)

    def _alert(self, settled: list[Settled]) -> None:
        for s in settled:
            scope, period = _budget_of(s.cap)
            for pct in s.crossed:
                self.alerts.crossed(scope, period, pct, s.cap.limit, s.spent)
            if s.exhausted:
                self.alerts.exhausted(scope, period, s.cap.limit, s.spent)


class Metered:
    """A stream's batches, measured as they pass (what was sent is known even if the usage chunk
    never comes); settles once however the stream ends: done, failed, cut by the budget, or closed
    unread by a client that went away. Under a budget the output is tokenized as it flows; otherwise
    only its characters are counted (a quarter of them estimates the tokens if no usage arrives)."""

    def __init__(self, stage: LimitsStage, call: Call, ticket: Ticket | None, batches: Batches) -> None:
        self.stage, self.call, self.ticket, self.batches = stage, call, ticket, batches
        self._budget = ticket is not None and bool(ticket.caps)
        self._model = stage._tokenizer.get(stage._served(call), call.model)
        self._chars = 0
        self._done = False

    def __aiter__(self) -> Metered:
        return self

    async def __anext__(self) -> list[dict[str, Any]]:
        try:
            batch = await self.batches.__anext__()
            t = self.ticket
            if self._budget and t is not None:
                t.counted_out += count_text(_output_text(batch), self._model)
                if t.counted_out > t.output_est:
                    await self.stage.extend(self.call, t)
            else:
                self._chars += len(_output_text(batch))
        except StopAsyncIteration:
            self._settle(failed=False)
            raise
        except BaseException:
            self._settle(failed=True)
            raise
        return batch

    async def aclose(self) -> None:
        try:
            await close_stream(self.batches)
        finally:
            self._settle(failed=True)  # closed before its end: the answer did not complete

    def _settle(self, failed: bool) -> None:
        if not self._done:
            self._done = True
            t = self.ticket
            counted = t.counted_out if self._budget and t is not None else math.ceil(self._chars / 4)
            self.stage._finish(self.call, self.ticket, failed, counted)


def _output_text(batch: list[dict[str, Any]]) -> str:
    parts = []
    for chunk in batch:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                parts.append(delta["content"])
            for tc in delta.get("tool_calls") or ():
                fn = tc.get("function") or {}
                parts.append((fn.get("name") or "") + (fn.get("arguments") or ""))
    return "".join(parts)


_BUDGET = "budget:"  # a cap's key: budget:<scope>:<period id>


def _budget_of(cap: Cap) -> tuple[str, str]:
    """(scope, period id) of a budget's cap."""
    scope, _, period = cap.key.removeprefix(_BUDGET).rpartition(":")
    return scope, period


def _describe(b: Bucket) -> tuple[str, str]:
    prefix, _, rest = b.key.partition(":")
    units = {"tpm": "tokens", "itpm": "input tokens", "otpm": "output tokens"}
    return (rest, units[prefix]) if prefix in units else (b.key, "requests")


_HEADER_NAMES = {unit: (f"x-ratelimit-limit-{unit}".encode(), f"x-ratelimit-remaining-{unit}".encode(),
                        f"x-ratelimit-reset-{unit}".encode()) for unit in ("requests", "tokens")}


def _headers(b: Bucket, remaining: int) -> list[tuple[bytes, bytes]]:
    limit, left, reset = _HEADER_NAMES["tokens" if b.key.startswith(("tpm:", "itpm:", "otpm:")) else "requests"]
    reset_ms = max(0, math.ceil((b.capacity - remaining) / b.per_ms))
    return [(limit, b"%d" % b.capacity), (left, b"%d" % remaining), (reset, b"%dms" % reset_ms)]
