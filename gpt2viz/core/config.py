"""ModelConfig: one frozen, validated description of every variant, and the named presets.

Frozen so a config can key a cache (st.cache_resource, the checkpoint folder) and so a
model built from it can never drift from what its config says it is.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

POSITIONS = ("learned", "sinusoidal", "rope", "alibi", "none")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu", "none")
DEFAULT_ROPE_BASE = 10000.0


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 50257
    n_layer: int = 4
    n_head: int = 8
    n_kv_head: int | None = None  # None = n_head (multi-head attention)
    d_model: int = 128
    max_seq_len: int = 128  # = TrainSettings.block_size: every learned position row is trained
    position: str = "learned"  # "learned" | "sinusoidal" | "rope" | "alibi" | "none"
    rope_base: float = DEFAULT_ROPE_BASE
    window: int | None = None  # None = full causal attention; w = keys i-w < j <= i
    sinks: int = 0  # with a window, every query also sees the first `sinks` tokens
    dropout: float = 0.0
    bias: bool = True
    layer_norm_eps: float = 1e-5  # the epsilon of whichever norm (LayerNorm or RMSNorm)
    # The Llama body: RMSNorm, SwiGLU MLP of width d_ff, bias=False, often untied embeddings.
    norm: str = "layernorm"  # "layernorm" (GPT-2) | "rmsnorm" (Llama)
    mlp: str = "gelu"  # "gelu": tanh GELU (GPT-2) | "swiglu": down(silu(gate(x)) * up(x)) (Llama)
    #                    | "none": attention-only blocks (no MLP, no ln_2), as in the task models
    d_ff: int | None = None  # MLP hidden width; None = 4 * d_model
    tie_embeddings: bool = True  # the LM head reads the token embedding matrix

    def __post_init__(self):
        if self.n_kv_head is None:
            object.__setattr__(self, "n_kv_head", self.n_head)
        problems = list(self._problems())
        if problems:
            raise ValueError("Invalid ModelConfig: " + " ".join(problems))

    def _problems(self):
        for name in ("vocab_size", "n_layer", "n_head", "n_kv_head", "d_model", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                yield f"{name}={value!r} must be a positive integer."
                return
        if self.position not in POSITIONS:
            yield f"position={self.position!r} is unknown; choose one of {', '.join(POSITIONS)}."
        if self.d_model % self.n_head:
            divisors = [h for h in range(1, self.d_model + 1) if self.d_model % h == 0 and h <= 64]
            yield (f"d_model={self.d_model} is not divisible by n_head={self.n_head}; "
                   f"pick n_head from {divisors} or change d_model to a multiple of {self.n_head}.")
            return
        if self.n_head % self.n_kv_head:
            valid = [k for k in range(1, self.n_head + 1) if self.n_head % k == 0]
            yield (f"n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}; "
                   f"query heads share key/value heads in equal groups, so n_kv_head must be "
                   f"one of {valid}.")
        if self.n_kv_head > self.n_head:
            yield f"n_kv_head={self.n_kv_head} cannot exceed n_head={self.n_head}."
        if self.position == "rope" and self.head_dim % 2:
            yield (f"position='rope' rotates pairs of dimensions, but head_dim = d_model/n_head = "
                   f"{self.head_dim} is odd; make d_model/n_head even.")
        if not self.rope_base > 1.0:
            yield f"rope_base={self.rope_base} must be greater than 1 (10000 is the usual value)."
        elif self.position != "rope" and self.rope_base != DEFAULT_ROPE_BASE:
            yield (f"rope_base={self.rope_base:g} has no effect with position={self.position!r}; "
                   f"set position='rope' or leave rope_base at {DEFAULT_ROPE_BASE:g}.")
        if self.window is not None and (not isinstance(self.window, int) or self.window < 1):
            yield (f"window={self.window!r} must be None (full attention) or an integer >= 1 "
                   f"(the number of keys each query sees, itself included).")
        if not isinstance(self.sinks, int) or isinstance(self.sinks, bool) or self.sinks < 0:
            yield f"sinks={self.sinks!r} must be an integer >= 0 (0 = no attention sinks)."
        elif self.sinks and self.window is None:
            yield (f"sinks={self.sinks} only matters with a sliding window (without one every "
                   f"query already sees every earlier token); set window or sinks=0.")
        if not 0.0 <= self.dropout < 1.0:
            yield f"dropout={self.dropout} must be in [0, 1)."
        if self.norm not in NORMS:
            yield f"norm={self.norm!r} is unknown; choose one of {', '.join(NORMS)}."
        if self.mlp not in MLPS:
            yield f"mlp={self.mlp!r} is unknown; choose one of {', '.join(MLPS)}."
        if self.d_ff is not None and (not isinstance(self.d_ff, int) or isinstance(self.d_ff, bool)
                                      or self.d_ff < 1):
            yield f"d_ff={self.d_ff!r} must be None (4 * d_model) or a positive integer."
        elif self.d_ff is not None and self.mlp == "none":
            yield (f"d_ff={self.d_ff} has no effect with mlp='none' (attention-only blocks); "
                   f"leave d_ff at None or choose mlp='gelu' or 'swiglu'.")
        for name in ("bias", "tie_embeddings"):
            if not isinstance(getattr(self, name), bool):
                yield f"{name}={getattr(self, name)!r} must be True or False."
        if not (isinstance(self.layer_norm_eps, (int, float)) and 0 < self.layer_norm_eps < 1):
            yield f"layer_norm_eps={self.layer_norm_eps!r} must be a small positive number (1e-5)."

    @property
    def ff_width(self) -> int:
        """The MLP's hidden width; 0 for attention-only blocks (mlp='none')."""
        if self.mlp == "none":
            return 0
        return 4 * self.d_model if self.d_ff is None else self.d_ff

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def group_size(self) -> int:
        """Query heads per key/value head: query head h reads kv head h // group_size."""
        return self.n_head // self.n_kv_head

    @property
    def attention_kind(self) -> str:
        if self.n_kv_head == self.n_head:
            return "MHA"
        return "MQA" if self.n_kv_head == 1 else "GQA"

    def kv_cache_bytes_per_token(self, dtype_bytes: int = 4) -> int:
        """K and V for one token over all layers: 2 * n_layer * n_kv_head * head_dim values."""
        return 2 * self.n_layer * self.n_kv_head * self.head_dim * dtype_bytes

    def kv_cache_slots(self, seq_len: int) -> int:
        """A window caps the cache at `sinks + window` slots (sinks kept, the rest rolling)."""
        return seq_len if self.window is None else min(seq_len, self.sinks + self.window)

    def kv_cache_bytes(self, seq_len: int, batch: int = 1, dtype_bytes: int = 4) -> int:
        return batch * self.kv_cache_slots(seq_len) * self.kv_cache_bytes_per_token(dtype_bytes)

    def check_seq_len(self, seq_len: int) -> None:
        if self.position == "learned" and seq_len > self.max_seq_len:
            raise ValueError(
                f"sequence of {seq_len} tokens is longer than max_seq_len={self.max_seq_len}, "
                f"and learned positions have no embedding past it; shorten the input or use "
                f"position='rope', 'alibi', 'sinusoidal' or 'none'.")

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Every field, except the Llama-body ones left at their GPT-2 defaults: a GPT-2
        config's dict (its checkpoint folder's key, its meta.json) is what it always was."""
        values = dataclasses.asdict(self)
        for name in _LLAMA_FIELDS:
            if values[name] == _FIELD_DEFAULTS[name]:
                del values[name]
        return values


_LLAMA_FIELDS = ("norm", "mlp", "d_ff", "tie_embeddings")
_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)}


# The seed report's variants on one small GPT-2 body (4 layers, d=128, 8 heads of 16): small
# enough to train on two CPU cores in under a minute, large enough to learn real structure.
_BASE = ModelConfig()
PRESETS: dict[str, ModelConfig] = {
    "gpt2": _BASE,
    "rope": _BASE.replace(position="rope"),
    "gqa": _BASE.replace(n_kv_head=2),
    "swa": _BASE.replace(window=16),
    "rope+gqa+swa": _BASE.replace(position="rope", n_kv_head=2, window=16),
}

PRESET_DESCRIPTIONS = {
    "gpt2": "Baseline GPT-2: learned absolute positions, multi-head attention, full causal.",
    "rope": "Rotary position embeddings (RoFormer) on q and k; no absolute position added.",
    "gqa": "Grouped-query attention: 8 query heads share 2 key/value heads (groups of 4).",
    "swa": "Sliding-window attention: each token sees itself and the 15 tokens before it.",
    "rope+gqa+swa": "All three together, as in Mistral-style attention on a GPT-2 body.",
}


def preset(name: str, **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[name].replace(**overrides)


PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 240
    batch_size: int = 16
    block_size: int = 128
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 40
    max_seconds: float | None = None  # stop early (the history says so) if time runs out
    precision: str = "fp32"  # "fp32" | "bf16": forward and loss under bf16 autocast

    def describe(self) -> str:
        budget = f"{self.steps} step{'' if self.steps == 1 else 's'}" + (f" or {self.max_seconds:g} s" if self.max_seconds else "")
        return (f"{budget} · batch {self.batch_size} × {self.block_size} tokens · lr {self.lr:g} "
                f"(warm-up {self.warmup_steps}, cosine) · weight decay {self.weight_decay:g}"
                + (f" · {self.precision}" if self.precision != "fp32" else ""))

    def __post_init__(self):
        for name in ("steps", "batch_size", "block_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1.")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be > 0.")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is unknown; choose one of "
                             f"{', '.join(PRECISIONS)}.")
