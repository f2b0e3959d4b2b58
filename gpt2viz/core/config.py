"""ModelConfig: one frozen, validated description of every variant, and the named presets.

Frozen so a config can key a cache (st.cache_resource, the checkpoint folder) and so a
model built from it can never drift from what its config says it is.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

POSITIONS = ("learned", "sinusoidal", "rope", "alibi", "none")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu", "none")
DEFAULT_ROPE_BASE = 10000.0
# RoPE scaling (context extension) at inference time; positions.rope_parameters computes each.
ROPE_SCALINGS = ("none", "linear", "ntk", "dynamic", "yarn", "llama3")


def kv_head_choices(n_head: int) -> list[int]:
    """The n_kv_head values n_head query heads allow, most first (MHA ... MQA): query heads
    share key/value heads in equal groups, so n_kv_head must divide n_head."""
    return [k for k in range(n_head, 0, -1) if n_head % k == 0]


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
    # RoPE scaling, an inference-time setting like rope_base (gpt2viz.core.positions):
    # "none" | "linear" (Position Interpolation) | "ntk" (static NTK-aware base) | "dynamic"
    # (NTK by the current length) | "yarn" | "llama3", by rope_factor s >= 1 over the trained
    # context rope_original_length (None = max_seq_len).
    rope_scaling: str = "none"
    rope_factor: float = 1.0
    rope_original_length: int | None = None
    rope_beta_fast: float = 32.0  # yarn: pairs turning more than beta_fast times keep theta
    rope_beta_slow: float = 1.0  # yarn: pairs turning fewer than beta_slow times get theta / s
    rope_attention_factor: float | None = None  # yarn: None = 0.1 ln(s) + 1 on cos and sin
    rope_low_freq_factor: float = 1.0  # llama3: wavelengths above L / low are divided by s
    rope_high_freq_factor: float = 4.0  # llama3: wavelengths below L / high are kept
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
    qkv_bias: bool = False  # q/k/v projections have biases even when bias=False (Qwen2)

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
            valid = sorted(kv_head_choices(self.n_head))
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
        yield from self._rope_scaling_problems()
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
        for name in ("bias", "tie_embeddings", "qkv_bias"):
            if not isinstance(getattr(self, name), bool):
                yield f"{name}={getattr(self, name)!r} must be True or False."
        if not (isinstance(self.layer_norm_eps, (int, float)) and 0 < self.layer_norm_eps < 1):
            yield f"layer_norm_eps={self.layer_norm_eps!r} must be a small positive number (1e-5)."

    def _rope_scaling_problems(self):
        method, s = self.rope_scaling, self.rope_factor
        if method not in ROPE_SCALINGS:
            yield (f"rope_scaling={method!r} is unknown; choose one of "
                   f"{', '.join(ROPE_SCALINGS)}.")
            return
        if not _is_number(s) or not math.isfinite(s) or s < 1.0:
            yield (f"rope_factor={s!r} must be a number >= 1 (the new context over the trained "
                   f"one; 1 = no scaling).")
            return
        length = self.rope_original_length
        if length is not None and (not isinstance(length, int) or isinstance(length, bool)
                                   or length < 2):
            yield (f"rope_original_length={length!r} must be None (= max_seq_len, the trained "
                   f"context) or an integer >= 2.")
            return
        if method != "none" and self.position != "rope":
            yield (f"rope_scaling={method!r} rescales rotary positions, but "
                   f"position={self.position!r}; set position='rope' or rope_scaling='none'.")
            return
        if method == "none" and (s != 1.0 or length is not None):
            yield (f"rope_factor={s:g} / rope_original_length={length!r} have no effect with "
                   f"rope_scaling='none'; choose a method ({', '.join(ROPE_SCALINGS[1:])}) or "
                   f"leave rope_factor=1 and rope_original_length=None.")
        changed = [name for name in _ROPE_METHOD_FIELDS
                   if getattr(self, name) != _FIELD_DEFAULTS[name] and method not in _ROPE_METHOD_FIELDS[name]]
        for name in changed:
            yield (f"{name}={getattr(self, name)!r} only applies to rope_scaling="
                   f"{' or '.join(map(repr, _ROPE_METHOD_FIELDS[name]))}, not {method!r}; leave it at "
                   f"{_FIELD_DEFAULTS[name]!r}.")
        if changed:
            return
        if method == "yarn":
            fast, slow = self.rope_beta_fast, self.rope_beta_slow
            if not (_is_number(fast) and _is_number(slow) and fast > slow > 0):
                yield (f"rope_beta_fast={fast!r} must be greater than rope_beta_slow={slow!r} > 0 "
                       f"(YaRN's defaults: 32 and 1 rotations over the trained context).")
            a = self.rope_attention_factor
            if a is not None and not (_is_number(a) and math.isfinite(a) and a > 0):
                yield (f"rope_attention_factor={a!r} must be None (0.1 ln(s) + 1) or a number > 0.")
        if method == "llama3":
            low, high = self.rope_low_freq_factor, self.rope_high_freq_factor
            if not (_is_number(low) and _is_number(high) and high > low > 0):
                yield (f"rope_high_freq_factor={high!r} must be greater than rope_low_freq_factor="
                       f"{low!r} > 0 (Llama 3.1's defaults: 4 and 1).")

    @property
    def rope_trained_length(self) -> int:
        """The context RoPE scaling extends: rope_original_length, else max_seq_len."""
        return self.max_seq_len if self.rope_original_length is None else self.rope_original_length

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
        """Every field, except the Llama-body and RoPE-scaling ones left at their defaults: a
        GPT-2 config's dict (its checkpoint folder's key, its meta.json) is what it always was."""
        values = dataclasses.asdict(self)
        for name in _LLAMA_FIELDS + _ROPE_SCALING_FIELDS:
            if values[name] == _FIELD_DEFAULTS[name]:
                del values[name]
        return values


_LLAMA_FIELDS = ("norm", "mlp", "d_ff", "tie_embeddings", "qkv_bias")
_ROPE_SCALING_FIELDS = ("rope_scaling", "rope_factor", "rope_original_length", "rope_beta_fast",
                        "rope_beta_slow", "rope_attention_factor", "rope_low_freq_factor",
                        "rope_high_freq_factor")
# the method-specific settings and the methods they apply to
_ROPE_METHOD_FIELDS = {"rope_beta_fast": ("yarn",), "rope_beta_slow": ("yarn",),
                       "rope_attention_factor": ("yarn",), "rope_low_freq_factor": ("llama3",),
                       "rope_high_freq_factor": ("llama3",)}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

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


def variant_config(spec: str) -> ModelConfig:
    """'rope' or 'gpt2:position=alibi,window=16' -> ModelConfig (ValueError with the fix): the
    command line's --variant syntax."""
    name, _, overrides = spec.partition(":")
    changes = {}
    for item in filter(None, overrides.split(",")):
        key, eq, text = item.partition("=")
        if not eq:
            raise ValueError(f"variant {spec!r}: write overrides as key=value, e.g. gpt2:window=16.")
        key, text = key.strip(), text.strip()
        changes[key] = None if key == "window" and text.lower() in ("none", "full") else _value(text)
    unknown = set(changes) - set(ModelConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"variant {spec!r}: {', '.join(sorted(unknown))} is not a ModelConfig field.")
    return preset(name, **changes)


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
