"""Prices of models, in USD per million tokens, and the cost of a call's usage.

`PriceBook.price` finds a model's price by its exact name, else by the longest known name that
prefixes it up to a dash, so dated snapshots (`gpt-4o-2024-08-06`, `claude-sonnet-4-20250514`)
find their family. Prices from the configuration override the defaults below. A model without a
price has none (`None`): budgets decide what that means, this module never guesses a 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. `cached_input` is the price of input read from the provider's prompt
    cache; None means the provider gives no discount (the input price)."""

    input: float
    output: float
    cached_input: float | None = None

    @property
    def cached(self) -> float:
        return self.input if self.cached_input is None else self.cached_input


# Public list prices (standard tier, no batch discount) of November 2025. They age: the prices in
# the configuration override them, and a model that is not listed here has no price.
# Anthropic's cache reads are 10% of input; its cache writes (125% of input) are counted as input
# here, as the usage translation in ostiary.wire reports them: 25% under their real price.
DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "gpt-5-pro": Price(15.00, 120.00),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-2024-05-13": Price(5.00, 15.00),  # the first gpt-4o snapshot kept its launch price
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "chatgpt-4o-latest": Price(5.00, 15.00),
    "o1": Price(15.00, 60.00, 7.50),
    "o1-mini": Price(1.10, 4.40, 0.55),
    "o1-pro": Price(150.00, 600.00),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o3-pro": Price(20.00, 80.00),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "text-embedding-3-small": Price(0.02, 0.0),
    "text-embedding-3-large": Price(0.13, 0.0),
    "text-embedding-ada-002": Price(0.10, 0.0),
    # Anthropic
    "claude-opus-4-5": Price(5.00, 25.00, 0.50),
    "claude-opus-4-1": Price(15.00, 75.00, 1.50),
    "claude-opus-4": Price(15.00, 75.00, 1.50),
    "claude-sonnet-4-5": Price(3.00, 15.00, 0.30),
    "claude-sonnet-4": Price(3.00, 15.00, 0.30),
    "claude-haiku-4-5": Price(1.00, 5.00, 0.10),
    "claude-3-7-sonnet": Price(3.00, 15.00, 0.30),
    "claude-3-5-sonnet": Price(3.00, 15.00, 0.30),
    "claude-3-5-haiku": Price(0.80, 4.00, 0.08),
    "claude-3-opus": Price(15.00, 75.00, 1.50),
    "claude-3-haiku": Price(0.25, 1.25, 0.03),
    # Mistral
    "mistral-large": Price(2.00, 6.00),
    "mistral-medium": Price(0.40, 2.00),
    "mistral-small": Price(0.10, 0.30),
    "codestral": Price(0.30, 0.90),
    "pixtral-large": Price(2.00, 6.00),
    "ministral-8b": Price(0.10, 0.10),
    "ministral-3b": Price(0.04, 0.04),
    "open-mistral-nemo": Price(0.15, 0.15),
    "mistral-embed": Price(0.10, 0.0),
}

_CACHE_LIMIT = 4096  # model names may come from clients: keep the lookup cache bounded


class PriceBook:
    """The defaults with the configuration's prices on top; `price(model)` is a dict hit after the
    first lookup of a name."""

    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        # One table: an override replaces a default of the same name, and prefix matching runs over
        # both, so overriding "gpt-4o" does not reprice "gpt-4o-mini-2024-07-18".
        self._table: dict[str, Price] = {**DEFAULT_PRICES, **(overrides or {})}
        self._found: dict[str, Price | None] = {}

    def price(self, model: str) -> Price | None:
        try:
            return self._found[model]
        except KeyError:
            pass
        found = self._lookup(model)
        if len(self._found) >= _CACHE_LIMIT:
            self._found.clear()
        self._found[model] = found
        return found

    def _lookup(self, model: str) -> Price | None:
        # Exact name, then the name cut at each dash from the right: the first hit is the longest
        # known prefix that ends at a dash ("gpt-4o-mini-2024-07-18" -> "gpt-4o-mini", not "gpt-4o").
        cut = len(model)
        while cut > 0:
            found = self._table.get(model[:cut])
            if found is not None:
                return found
            cut = model.rfind("-", 0, cut)
        return None


def cost(price: Price, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float:
    """The cost in USD of a call's usage. As in OpenAI's usage object, `cached_tokens` are a part of
    `input_tokens`: they are billed at the cached price and the rest at the input price."""
    cached = min(max(cached_tokens, 0), max(input_tokens, 0))
    uncached = max(input_tokens, 0) - cached
    return (uncached * price.input + cached * price.cached + max(output_tokens, 0) * price.output) / 1e6
