"""What each attention head does, in five numbers (the head atlas and `experiment heads`).

Every measure is read off the attention probabilities p(i -> j) of one traced forward pass,
averaged over every sequence of the batch and over the queries named here (query 0 can only
attend to itself, so it is left out of the text measures):

- first_token_mass: mean over queries i >= 1 of p(i -> 0). High in the attention sinks of
  StreamingLLM (Xiao et al. 2023): heads that park their attention on the first token.
- prev_token: mean over queries i >= 1 of p(i -> i - 1). Previous-token heads.
- entropy: mean over queries i >= 1 of -sum_j p(i -> j) log p(i -> j), in nats: 0 when a head
  looks at one key, log(i + 1) when it spreads evenly over all it may see.
- mean_distance: sum over queries i >= 1 and keys j >= 1 of p(i -> j) (i - j), divided by the
  same sum of p(i -> j): how far back a head reads, in tokens, with the first token left out
  (0 for a head that only looks at itself, 0 for one that only looks at token 0). With token 0
  counted, a sink head read as the farthest-reaching head of all (L18H8 of SmolLM2: 255.99 =
  the mean query position; correlation with first_token_mass 0.81 over its 270 heads).
- induction: on [r, r], a sequence r of L random tokens followed by itself, mean over the
  second copy's queries i = L .. 2L - 1 of p(i -> i - L + 1): attention to the token right
  after the earlier occurrence of the current token (Olsson et al. 2022). Random tokens carry
  no meaning, so only a head that copies from context scores here. Keys outside a sliding
  window count as probability 0, so a window shorter than L scores 0.

The first four come from the text, the induction score from the repeated sequences: one traced
forward pass each.
"""
from __future__ import annotations

import torch

from gpt2viz.core.config import ModelConfig
from gpt2viz.core.model import GPT2

MEASURES = ("first_token_mass", "prev_token", "induction", "entropy", "mean_distance")
TEXT_TOKENS = 512  # `experiment heads` reads the first 512 tokens of its text
INDUCTION_LENGTH = 64  # L: tokens in r, so each induction sequence is 2L = 128 tokens long
INDUCTION_COUNT = 4  # sequences [r, r] in the batch, each with its own r


def text_tokens(config) -> int:
    """How much text the measures read: TEXT_TOKENS, or the model's context if shorter (a small
    model's max_seq_len is its training block; learned positions do not exist past it)."""
    return min(TEXT_TOKENS, config.max_seq_len)
PRETRAINED_LOW_ID = 256  # a real vocabulary starts with special and single-byte tokens


def repeated_random_tokens(config: ModelConfig, length: int | None = None,
                           count: int = INDUCTION_COUNT, seed: int = 0, low: int = 0) -> torch.Tensor:
    """(count, 2 * length) token ids, each row [r, r]. r holds `length` distinct ids drawn
    uniformly from [low, vocab_size) (distinct, so each token of the second copy has exactly
    one earlier occurrence). length defaults to INDUCTION_LENGTH, or half of max_seq_len when
    that is shorter. Same seed, same tokens."""
    length = length or min(INDUCTION_LENGTH, config.max_seq_len // 2)
    if not 0 <= low < config.vocab_size:
        raise ValueError(f"low={low} must be between 0 and the vocabulary size {config.vocab_size}.")
    if not 1 <= length <= config.vocab_size - low:
        raise ValueError(f"length={length} must be between 1 and the {config.vocab_size - low} ids "
                         f"from {low} up (the tokens of r are distinct).")
    config.check_seq_len(2 * length)
    generator = torch.Generator().manual_seed(seed)
    r = torch.stack([low + torch.randperm(config.vocab_size - low, generator=generator)[:length]
                     for _ in range(count)])  # (count, L)
    return torch.cat([r, r], dim=1)


def induction_ids(model: GPT2, seed: int = 0) -> torch.Tensor:
    """The repeated random sequences a model is measured on: ids from PRETRAINED_LOW_ID up for
    a pretrained model (no byte or special tokens), the whole vocabulary for a small one."""
    return repeated_random_tokens(model.config, seed=seed,
                                  low=PRETRAINED_LOW_ID if model.pretrained else 0)


def text_measures(attn: torch.Tensor) -> dict[str, torch.Tensor]:
    """attn (B, H, T, T) probabilities, T >= 2 -> {measure: (H,) float64} for first_token_mass,
    prev_token, entropy and mean_distance (the module docstring defines them)."""
    t = attn.shape[-1]
    if t < 2:
        raise ValueError("head statistics need a text of at least 2 tokens.")
    p = attn.double()[:, :, 1:]  # (B, H, T-1, T): queries i = 1 .. T-1
    distance = (torch.arange(1, t)[:, None] - torch.arange(t)[None, :]).to(p)  # (T-1, T): i - j
    off_first = p[..., 1:]  # (B, H, T-1, T-1): keys j >= 1
    mass_off_first = off_first.sum((0, 2, 3))  # (H,)
    reach = (off_first * distance[:, 1:]).sum((0, 2, 3))  # (H,); the future has p = 0
    return {
        "first_token_mass": p[..., 0].mean((0, 2)),
        "prev_token": attn.double().diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, 2)),  # p(i, i-1)
        "entropy": -torch.special.xlogy(p, p).sum(-1).mean((0, 2)),
        "mean_distance": torch.where(mass_off_first > 0, reach / mass_off_first.clamp_min(1e-300), 0.0),
    }


def induction_score(attn: torch.Tensor) -> torch.Tensor:
    """attn (B, H, 2L, 2L) on [r, r] -> (H,) float64: mean over i = L .. 2L-1 of p(i -> i-L+1)."""
    length = attn.shape[-1] // 2
    if attn.shape[-1] != 2 * length or length < 1:
        raise ValueError(f"induction sequences must be [r, r], an even length; got {attn.shape[-1]}.")
    # diagonal -(L-1) holds p(i, i-L+1) for i = L-1 .. 2L-1; the second copy starts at i = L
    return attn.double().diagonal(offset=-(length - 1), dim1=-2, dim2=-1)[..., 1:].mean((0, 2))


@torch.no_grad()
def head_stats(model: GPT2, text_ids: torch.Tensor, repeated_ids: torch.Tensor) -> list[dict]:
    """Every head's five measures, layer by layer, head by head: [{"layer", "head", "kv_head",
    "first_token_mass", "prev_token", "induction", "entropy", "mean_distance"}] (the fields of
    `experiment heads`; floats, layer and heads counted from 0). text_ids (T,) or (B, T);
    repeated_ids (N, 2L) from repeated_random_tokens."""
    cfg = model.config
    device = model.wte.weight.device
    text_ids = text_ids.view(1, -1) if text_ids.dim() == 1 else text_ids
    repeated = repeated_ids.view(1, -1) if repeated_ids.dim() == 1 else repeated_ids
    if repeated.shape[1] % 2 or not torch.equal(*repeated.to(device).chunk(2, dim=1)):
        raise ValueError("repeated_ids must be sequences [r, r]: a random r followed by itself.")
    # one trace at a time: a trace holds n_layer * B * n_head * T^2 probabilities
    text = [text_measures(attn) for attn in model.trace(text_ids.to(device)).attn]
    induction = [induction_score(attn) for attn in model.trace(repeated.to(device)).attn]
    rows = []
    for layer in range(cfg.n_layer):
        measures = {**text[layer], "induction": induction[layer]}
        for head in range(cfg.n_head):
            rows.append({"layer": layer, "head": head, "kv_head": head // cfg.group_size,
                         **{name: float(measures[name][head]) for name in MEASURES}})
    return rows
