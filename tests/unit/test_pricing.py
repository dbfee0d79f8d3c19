"""Model prices and the cost of usage (ostiary.limits.pricing)."""

from __future__ import annotations

import dataclasses

import pytest

from ostiary.limits.pricing import DEFAULT_PRICES, Price, PriceBook, cost


@pytest.mark.parametrize(("model", "family"), [
    ("gpt-4o", "gpt-4o"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-mini", "gpt-4o-mini"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # the longest prefix, not the first
    ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # an exact name beats a prefix
    ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
    ("o3-mini-2025-01-31", "o3-mini"),
    ("o3-2025-04-16", "o3"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
    ("text-embedding-3-large", "text-embedding-3-large"),
    ("mistral-large-latest", "mistral-large"),
])
def test_prefix_lookup(model: str, family: str) -> None:
    assert PriceBook().price(model) is DEFAULT_PRICES[family]


@pytest.mark.parametrize("model", ["llama-3.1-70b", "gpt-4omni", "gpt-5.1", "my-gpt-4o", "", "-", "gpt"])
def test_unknown_models_have_no_price(model: str) -> None:
    # A prefix only counts up to a dash: "gpt-4omni" is not gpt-4o, "gpt-5.1" is not gpt-5.
    assert PriceBook().price(model) is None


def test_overrides_win_and_match_by_prefix() -> None:
    negotiated, local = Price(2.0, 8.0), Price(0.5, 0.5)
    book = PriceBook({"gpt-4o": negotiated, "llama-3.1": local})
    assert book.price("gpt-4o") is negotiated
    assert book.price("gpt-4o-2024-11-20") is negotiated
    assert book.price("llama-3.1-70b-instruct") is local
    # A longer default still wins over a shorter override: gpt-4o-mini keeps its own price.
    assert book.price("gpt-4o-mini-2024-07-18") is DEFAULT_PRICES["gpt-4o-mini"]
    assert PriceBook().price("gpt-4o") is DEFAULT_PRICES["gpt-4o"]  # the defaults are not changed


def test_lookups_are_cached_per_book() -> None:
    book = PriceBook()
    first = book.price("gpt-4o-2024-08-06")
    book._table.clear()  # a second lookup of the same name must not search again
    assert book.price("gpt-4o-2024-08-06") is first
    assert book.price("gpt-4o-2024-11-20") is None


def test_price_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_PRICES["gpt-4o"].input = 0.0  # type: ignore[misc]


def test_every_default_is_priced() -> None:
    for name, price in DEFAULT_PRICES.items():
        assert price.input > 0, name
        assert price.output >= 0 and price.cached <= price.input, name


def test_cost_of_plain_usage() -> None:
    # 1,000 in at $2.50/M and 500 out at $10/M.
    assert cost(Price(2.50, 10.00), 1_000, 500) == pytest.approx(0.0025 + 0.005)


def test_cached_tokens_are_part_of_input() -> None:
    # 1,000 input of which 800 cached: 200 at $2.50/M, 800 at $1.25/M, 100 out at $10/M.
    assert cost(Price(2.50, 10.00, 1.25), 1_000, 100, 800) == pytest.approx(0.0005 + 0.001 + 0.001)


def test_no_cached_price_means_the_input_price() -> None:
    assert cost(Price(3.0, 15.0), 1_000, 0, 1_000) == pytest.approx(cost(Price(3.0, 15.0), 1_000, 0))


def test_cached_beyond_input_is_clamped() -> None:
    assert cost(Price(2.0, 8.0, 0.5), 100, 0, 500) == pytest.approx(100 * 0.5 / 1e6)


def test_embeddings_cost_input_only() -> None:
    assert cost(DEFAULT_PRICES["text-embedding-3-small"], 1_000_000, 0) == pytest.approx(0.02)
