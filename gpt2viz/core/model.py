"""GPT-2 with every variant: positions (learned / sinusoidal / rope / alibi / none),
grouped-query attention, sliding windows and attention sinks, all chosen by one ModelConfig.

The vanilla config is GPT-2 exactly (pre-LN, tanh GELU, tied embeddings): tests load Hugging
Face's weights and compare logits. norm="rmsnorm", mlp="swiglu", bias=False, position="rope"
make the same class a Llama body (tests compare it with transformers' LlamaForCausalLM).
`trace` returns the internals the dashboard draws.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2viz.core.attention import attention
from gpt2viz.core.config import ModelConfig
from gpt2viz.core.kv_cache import KVCache
from gpt2viz.core.positions import (
    alibi_slopes,
    apply_rope,
    positions_from_mask,
    rope_cos_sin,
    rope_parameters,
    sinusoidal_table,
)
from gpt2viz.core.resources import ensure_fits

INIT_STD = 0.02  # GPT-2's init of every weight matrix and embedding
# The fixed sinusoidal table has unit amplitude while token embeddings start at std INIT_STD:
# added as is, position outweighs content 35 to 1 (rms) and the model ends above the unigram
# baseline. We multiply the table by INIT_STD, as if it were an embedding table drawn on the
# same scale as the learned ones; it stays exactly Vaswani's sin/cos up to that constant.
# Measured (gpt2 body, defaults, seed 0; README): unscaled 5.436 nats, x INIT_STD 3.952,
# x INIT_STD*sqrt(2) (equal rms) 3.996, Vaswani's own fix (embeddings x sqrt(d_model),
# table unscaled) 4.193; learned positions 3.944.
SINUSOIDAL_SCALE = INIT_STD


# What trace() can capture, per layer ("resid": the residual stream, n_layer + 1 entries).
CAPTURES = ("attn", "q", "k", "v", "resid")


@dataclass
class Trace:
    """What one forward pass computed that a caller asked for (`capture`), per layer, and the
    query heads it switched off (`ablate`: layer -> heads whose outputs are zero before the
    output projection). Only a captured "attn" makes attention materialize its probabilities."""
    logits: torch.Tensor | None  # (B, T, vocab_size)
    attn: list = field(default_factory=list)  # (B, n_head, T, T) probabilities
    q: list = field(default_factory=list)  # (B, n_head, T, head_dim), after rotation
    k: list = field(default_factory=list)  # (B, n_kv_head, T, head_dim), after rotation
    v: list = field(default_factory=list)  # (B, n_kv_head, T, head_dim)
    # (B, T, d_model): the input embeddings (positions added; a leaf when grad is enabled, so
    # d(later layer)/d(input) can be taken), then the output of every block
    resid: list = field(default_factory=list)
    positions: torch.Tensor | None = None  # (B, T) position of each token (real tokens only)
    capture: tuple = CAPTURES
    ablate: dict = field(default_factory=dict)


@dataclass
class Step:
    """What every layer of one forward pass shares."""
    positions: torch.Tensor  # (B, T) position of each token, real tokens only
    key_mask: torch.Tensor | None  # (B, T) True for real tokens; None: no padding
    rope: tuple | None  # cos, sin (B, 1, T, head_dim) under RoPE
    alibi: torch.Tensor | None  # (n_head,) slopes under ALiBi
    cache: KVCache | None
    trace: Trace | None


class SelfAttention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.config, self.layer = config, layer
        kv_width = config.n_kv_head * config.head_dim
        qkv_bias = config.bias or config.qkv_bias
        self.q_proj = nn.Linear(config.d_model, config.d_model, bias=qkv_bias)
        self.k_proj = nn.Linear(config.d_model, kv_width, bias=qkv_bias)
        self.v_proj = nn.Linear(config.d_model, kv_width, bias=qkv_bias)
        self.out_proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, step: Step):
        cfg, cache, trace = self.config, step.cache, step.trace
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, cfg.n_head, cfg.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = self.k_proj(x).view(b, t, cfg.n_kv_head, cfg.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = self.v_proj(x).view(b, t, cfg.n_kv_head, cfg.head_dim).transpose(1, 2)
        if step.rope is not None:
            q, k = apply_rope(q, *step.rope), apply_rope(k, *step.rope)
        if cache is not None:
            cache.store(self.layer, k, v)
        same = (step.positions, step.positions)  # query and key positions for ALiBi
        if cache is not None and cache.decoding:
            # every cached slot is a sink or inside the window: no window mask needed
            k_all, v_all, cached_mask, cached_positions = cache.keys_values(self.layer)
            y = attention(q, k_all, v_all, key_mask=cached_mask, alibi=step.alibi,
                          positions=(step.positions, cached_positions))
        else:
            # resolve() sends a trace (it needs the probabilities) and attention dropout to eager
            wants_probs = trace is not None and "attn" in trace.capture
            y = attention(q, k, v, cfg.window, cfg.sinks, key_mask=step.key_mask,
                          alibi=step.alibi, positions=same,
                          dropout=cfg.dropout if self.training else 0.0,
                          return_probs=wants_probs)
            if wants_probs:
                y, probs = y
                trace.attn.append(probs)
            if trace is not None:
                for name, value in (("q", q), ("k", k), ("v", v)):
                    if name in trace.capture:
                        getattr(trace, name).append(value)
        if trace is not None and trace.ablate.get(self.layer):
            y = y.clone()
            y[:, list(trace.ablate[self.layer])] = 0  # (B, nh, T, hd): those heads add nothing
        y = y.transpose(1, 2).reshape(b, t, cfg.d_model)  # (B, T, d_model)
        return self.resid_dropout(self.out_proj(y))


class MLP(nn.Module):
    """GPT-2's c_proj(gelu(c_fc(x))), or Llama's SwiGLU c_proj(silu(c_gate(x)) * c_fc(x))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        width = config.ff_width
        self.c_fc = nn.Linear(config.d_model, width, bias=config.bias)  # Llama's up_proj
        self.c_gate = (nn.Linear(config.d_model, width, bias=config.bias)
                       if config.mlp == "swiglu" else None)  # Llama's gate_proj
        self.c_proj = nn.Linear(width, config.d_model, bias=config.bias)  # Llama's down_proj
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        if self.c_gate is None:
            hidden = F.gelu(self.c_fc(x), approximate="tanh")
        else:
            hidden = F.silu(self.c_gate(x)) * self.c_fc(x)  # (B, T, d_ff)
        return self.dropout(self.c_proj(hidden))


def norm_layer(config: ModelConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.d_model, eps=config.layer_norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.ln_1 = norm_layer(config)
        self.attn = SelfAttention(config, layer)
        attention_only = config.mlp == "none"  # no MLP and no norm before it: no parameters
        self.ln_2 = None if attention_only else norm_layer(config)
        self.mlp = None if attention_only else MLP(config)

    def forward(self, x, step: Step):
        x = x + self.attn(self.ln_1(x), step)
        return x if self.mlp is None else x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    # The name of a pretrained model (gpt2viz.weights.pretrained) whose weights are fixed: nothing
    # trains it. None for the models built and trained here.
    pretrained: str | None = None

    def __init__(self, config: ModelConfig, init_weights: bool = True):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.d_model)
        self.wpe = nn.Embedding(config.max_seq_len, config.d_model) if config.position == "learned" else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = norm_layer(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight  # tied, as in GPT-2
        if config.position == "alibi":  # fixed, so not in the state dict
            self.register_buffer("alibi", alibi_slopes(config.n_head).float(), persistent=False)
        if init_weights:
            self._init_all()

    def _init_all(self):
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith(("out_proj.weight", "c_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=INIT_STD / math.sqrt(2 * self.config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)

    @classmethod
    def from_weights(cls, config: ModelConfig, state: dict) -> "GPT2":
        """A model in eval mode holding `state`'s tensors themselves: no random init, no copy
        (a 135M-parameter model loads in a fraction of a second). Shapes must match."""
        with torch.device("meta"):
            model = cls(config, init_weights=False)
        model.load_state_dict(state, strict=True, assign=True)
        if config.tie_embeddings:  # assign made two parameters of one tensor: one again
            model.lm_head.weight = model.wte.weight
        if config.position == "alibi":  # not in the state dict
            model.alibi = alibi_slopes(config.n_head).float().to(model.wte.weight.device)
        return model.eval()

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx, padding_mask=None):
        """idx (B, T) token ids -> logits (B, T, vocab_size)."""
        return self._run(idx, padding_mask)

    def final_hidden(self, idx, padding_mask=None, ablate=None):
        """idx (B, T) -> the final-norm hidden states (B, T, d_model), the LM head's input:
        long texts score their loss in chunks instead of holding (T, vocab_size) logits.
        ablate: as in `trace`."""
        return self._run(idx, padding_mask, head=False,
                         trace=self._trace_request((), ablate) if ablate else None)

    def trace(self, idx, padding_mask=None, capture=CAPTURES, ablate=None) -> Trace:
        """Logits plus what `capture` names (a subset of CAPTURES), per layer, as
        TransformerLens's names_filter: ask for q and k only and no probabilities are built.
        ablate {layer: [query heads]}: those heads' outputs are zero before the output
        projection, in this pass only."""
        trace = self._trace_request(capture, ablate)
        trace.logits = self._run(idx, padding_mask, trace=trace)
        return trace

    def _trace_request(self, capture, ablate) -> Trace:
        cfg = self.config
        unknown = set(capture) - set(CAPTURES)
        if unknown:
            raise ValueError(f"cannot capture {sorted(unknown)}; choose from {', '.join(CAPTURES)}.")
        for layer, heads in (ablate or {}).items():
            if not 0 <= layer < cfg.n_layer:
                raise ValueError(f"layer {layer} does not exist; choose 0 to {cfg.n_layer - 1}.")
            for head in heads:
                if not 0 <= head < cfg.n_head:
                    raise ValueError(f"head {head} does not exist; choose 0 to {cfg.n_head - 1}.")
        return Trace(logits=None, capture=tuple(capture), ablate=dict(ablate or {}))

    def _run(self, idx, padding_mask=None, cache: KVCache | None = None, trace=None,
             last_only=False, head=True, rope_length: int | None = None):
        cfg = self.config
        b, t = idx.shape
        if padding_mask is not None:
            if tuple(padding_mask.shape) != (b, t):
                raise ValueError(f"padding_mask must be (B, T) = ({b}, {t}); "
                                 f"got {tuple(padding_mask.shape)}.")
            padding_mask = padding_mask.to(device=idx.device, dtype=torch.bool)
            if bool(padding_mask.all()):
                padding_mask = None
        offset = 0 if cache is None else cache.n_real.clone()
        positions = positions_from_mask(padding_mask, b, t, idx.device, offset)  # (B, T)
        if cache is not None:
            cache.begin(positions, padding_mask)
        if cfg.position == "learned":  # the only scheme with a table that can run out
            cfg.check_seq_len(int(positions.max()) + 1)
        x = self.wte(idx)  # (B, T, d_model)
        if cfg.position == "learned":
            x = x + self.wpe(positions)
        elif cfg.position == "sinusoidal":
            x = x + SINUSOIDAL_SCALE * sinusoidal_table(positions, cfg.d_model, x.dtype)
        rope = None
        if cfg.position == "rope":
            if cfg.rope_scaling == "dynamic":  # the length of the whole sequence (positions.py)
                rope_length = rope_length or (cache.rope_length if cache is not None
                                              else int(positions.max()) + 1)
            rope = rope_cos_sin(positions, cfg.head_dim, cfg.rope_base, x.dtype,
                                rope_parameters(cfg, rope_length))
        step = Step(positions, padding_mask, rope, self.alibi if cfg.position == "alibi" else None,
                    cache, trace)
        x = self.drop(x)
        resid = trace.resid if trace is not None and "resid" in trace.capture else None
        if resid is not None:
            x = x.detach().requires_grad_(torch.is_grad_enabled())  # the leaf the stream starts at
            resid.append(x)
        for block in self.blocks:
            x = block(x, step)
            if resid is not None:
                resid.append(x)
        if trace is not None:
            trace.positions = positions
        x = self.ln_f(x)
        if last_only:
            x = x[:, -1:]
        return self.lm_head(x) if head else x

    @torch.inference_mode()
    def generate(self, idx, max_new_tokens=50, temperature=1.0, top_k=None, seed=None,
                 use_cache=True, padding_mask=None):
        """Prompt (B, T), left-padded if its rows differ in length, -> (B, T + max_new_tokens).

        temperature=0.0 is greedy. Without the cache every step reruns the whole sequence
        but computes logits for the last position only (the fair uncached baseline).
        """
        if max_new_tokens < 0 or temperature < 0:
            raise ValueError("max_new_tokens and temperature must be >= 0.")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k={top_k} must be None or >= 1.")
        b, t = idx.shape
        total = t + max_new_tokens
        self.config.check_seq_len(total)
        ensure_fits(self.generate_bytes(b, total), f"generating {max_new_tokens} tokens for a "
                    f"batch of {b} after a {t}-token prompt", idx.device)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=idx.device).manual_seed(seed)
        cache = KVCache(self.config, b, total, idx.device, self.wte.weight.dtype) if use_cache else None
        out, mask = idx, padding_mask
        step_input = idx
        # dynamic RoPE scaling scales by the final length, so every step equals one full pass
        # over the generated sequence (gpt2viz.core.positions); the cache knows it by itself
        final_length = (total if padding_mask is None
                        else int(padding_mask.sum(dim=1).max()) + max_new_tokens)
        for _ in range(max_new_tokens):
            if cache is not None:
                logits = self.decode_step(step_input, cache, mask if cache.length == 0 else None)
            else:
                logits = self._run(out, mask, last_only=True, rope_length=final_length)
            next_token = sample(logits[:, -1], temperature, top_k, generator)  # (B, 1)
            out = torch.cat([out, next_token], dim=1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(next_token, dtype=torch.bool)], dim=1)
            step_input = next_token
        return out

    def decode_step(self, idx, cache: KVCache, padding_mask=None):
        """Run idx (B, T) after the tokens already in `cache` (the prompt, then one token per
        step), writing their K/V into it: logits of the last position (B, 1, vocab_size)."""
        return self._run(idx, padding_mask, cache, last_only=True)

    def generate_bytes(self, batch: int, total_tokens: int) -> int:
        """Up-front estimate: KV cache + one full-length activation pass + logits."""
        cfg = self.config
        itemsize = self.wte.weight.element_size()
        activations = batch * total_tokens * cfg.d_model * 8 * itemsize
        return cfg.kv_cache_bytes(total_tokens, batch, itemsize) + activations + batch * cfg.vocab_size * itemsize


def sample(logits, temperature, top_k, generator):
    """logits (B, V) -> next token ids (B, 1)."""
    if temperature == 0.0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)
