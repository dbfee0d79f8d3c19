"""What counting a request's tokens costs on the hot path (ostiary.limits.tokens.prompt_tokens).

Prints one table: prompt shape, tokens counted, µs per `prompt_tokens` call (the median of several
runs, each the mean of many calls), and the first-use load times of the encodings, measured in
fresh processes. Run: `.venv/bin/python bench/tokens.py`.
"""

from __future__ import annotations

import functools
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from ostiary.limits.tokens import prompt_tokens, warm

RUNS = 7
MIN_RUN_SECONDS = 0.2

# Common English words: prose of about 1.3 tokens per word, like real prompts.
_VOCABULARY = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no will more can about said "
    "up what out some time into only could new than other then also after many two may these people first "
    "because report customer quarterly revenue compliance risk account transaction policy regulation "
    "payment review analysis summary explain please describe approximately important following request"
)
WORDS = _VOCABULARY.split()


def prose(rng: random.Random, words: int) -> str:
    out = []
    for i in range(words):
        w = rng.choice(WORDS)
        out.append(w.capitalize() if i % 12 == 0 else w)
        if i % 12 == 11:
            out[-1] += "."
    return " ".join(out)


def shapes() -> list[tuple[str, str, dict[str, Any]]]:
    rng = random.Random(42)
    one = {"messages": [{"role": "user", "content": prose(rng, 50)}]}
    turns = [{"role": "system", "content": prose(rng, 100)}]
    for i in range(19):
        turns.append({"role": "user" if i % 2 == 0 else "assistant", "content": prose(rng, 100)})
    twenty = {"messages": turns}
    tools = [{"type": "function", "function": {
        "name": f"tool_{i}", "description": prose(rng, 20),
        "parameters": {"type": "object", "properties": {"account": {"type": "string"}, "amount": {"type": "number"}},
                       "required": ["account"]}}} for i in range(5)]
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "tool_1", "arguments": '{"account": "DE89 3704"}'}}]}
    agent = {"messages": [*turns[:6], call, {"role": "tool", "tool_call_id": "call_1", "content": prose(rng, 80)}],
             "tools": tools}
    image = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": prose(rng, 30)},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 200_000}}]}]}
    document = {"messages": [{"role": "user", "content": prose(rng, 20_000)}]}
    embed_batch = {"input": [prose(rng, 40) for _ in range(32)]}
    embed_ids = {"input": [[rng.randrange(100_000) for _ in range(512)] for _ in range(8)]}
    return [
        ("chat: 1 message, 50 words", "gpt-4o", one),
        ("chat: 20 messages, 2,000 words", "gpt-4o", twenty),
        ("chat: 20 messages, 2,000 words (cl100k)", "claude-sonnet-4-5", twenty),
        ("chat: 8 messages, tool call, 5 tools", "gpt-4o", agent),
        ("chat: text + 1 image (200 kB data URL)", "gpt-4o", image),
        ("chat: 1 message, 20,000 words", "gpt-4o", document),
        ("embeddings: 32 strings of 40 words", "text-embedding-3-small", embed_batch),
        ("embeddings: 8 lists of 512 token ids", "text-embedding-3-small", embed_ids),
    ]


def per_call_us(fn: Callable[[], int]) -> float:
    n, took = 1, 0.0
    while took < MIN_RUN_SECONDS / 4:  # calibrate: enough calls for one run to take ~MIN_RUN_SECONDS
        n *= 2
        t = time.perf_counter()
        for _ in range(n):
            fn()
        took = time.perf_counter() - t
    n = max(1, int(n * MIN_RUN_SECONDS / took))
    runs = []
    for _ in range(RUNS):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(runs)


def load_ms(code: str) -> float:
    """Median over fresh processes of the time `code` takes (printed by the child)."""
    prog = f"import time\nt = time.perf_counter()\n{code}\nprint((time.perf_counter() - t) * 1000)"
    return statistics.median(float(subprocess.run([sys.executable, "-c", prog], check=True, capture_output=True,
                                                  text=True).stdout) for _ in range(5))


def main() -> None:
    warm()
    rows = []
    for label, model, body in shapes():
        us = per_call_us(functools.partial(prompt_tokens, body, model))
        rows.append((label, f"{prompt_tokens(body, model):,}", f"{us:,.1f}"))
    head = ("prompt shape", "tokens", "µs/call")
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    for r in [head, tuple("-" * n for n in w), *rows]:
        print(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}")

    print("\nfirst use, in a fresh process (median of 5), ms:")
    imp = "from ostiary.limits import tokens"
    for label, code in [
        ("import ostiary.limits.tokens", imp),
        ("+ first count, cl100k_base", imp + "; tokens.count_text('x', 'gpt-4')"),
        ("+ first count, o200k_base", imp + "; tokens.count_text('x', 'gpt-4o')"),
        ("+ warm(): both", imp + "; tokens.warm()"),
        ("(import bpe_openai: avoided)", "import bpe_openai"),
    ]:
        print(f"  {label:<30} {load_ms(code):8.1f}")


if __name__ == "__main__":
    main()
