"""What each alteration buys and what it costs, measured on the models the dashboard builds.

Five experiments, each a plain function of a model and token ids (the page and the command
line only call them):

- length generalization: loss by position past the training length, scored twice (the whole
  prefix as context, and the context cut to the training length) so the text's own
  difficulty at a position cancels out in the difference;
- window at inference and attention sinks (StreamingLLM): the same weights evaluated with
  another window and `sinks` always-visible first tokens;
- receptive field: which input positions reach the hidden state at P after each layer,
  measured by gradients, beside the theory l * (w - 1) (the whole prefix with sinks);
- GQA frontier and uptraining (Ainslie et al. 2023): mean-pool K/V heads, evaluate, train a
  few steps more, evaluate again;
- logit lens: the next-token read-out of the residual stream after every layer;
- streaming (StreamingLLM) and head ablation: made for the real pretrained model
  (gpt2viz.weights.pretrained), and they run on any model (head statistics: gpt2viz.analysis.heads).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from gpt2viz.analysis.heads import induction_ids
from gpt2viz.core.config import ModelConfig, TrainSettings, kv_head_choices
from gpt2viz.core.model import GPT2
from gpt2viz.core.resources import device, ensure_fits
from gpt2viz.text.corpus import Corpus
from gpt2viz.training.train import continue_training, evaluate, training_bytes
from gpt2viz.weights.checkpoint_cache import checkpoint_folder
from gpt2viz.weights.checkpoints import to_gqa


def reconfigured(model: GPT2, **changes) -> GPT2:
    """The same weights (shared, not copied) under another config, for evaluation only: an
    inference-time knob (rope_base, window, sinks) changed without retraining."""
    clone = GPT2.from_weights(model.config.replace(**changes), model.state_dict())
    clone.pretrained = model.pretrained
    return clone


# logits of this many positions at a time: (4096, 49152) float32 logits would be 800 MB
HEAD_CHUNK = 1024


@torch.no_grad()
def token_losses(model: GPT2, x: torch.Tensor, y: torch.Tensor, tokens: int = 8192,
                 ablate: dict | None = None) -> torch.Tensor:
    """x, y (N, T) inputs and next tokens -> (N, T) loss (nats) of every token, in batches
    of about `tokens` tokens; the LM head runs on HEAD_CHUNK positions at a time. ablate:
    {layer: query heads} switched off (GPT2.trace)."""
    losses = []
    batch = max(1, tokens // x.shape[1])
    for xb, yb in zip(x.split(batch), y.split(batch)):
        hidden = model.final_hidden(xb, ablate=ablate).flatten(0, 1)  # (b * T, d_model)
        losses.append(torch.cat([
            F.cross_entropy(model.lm_head(h), t, reduction="none")
            for h, t in zip(hidden.split(HEAD_CHUNK), yb.flatten().split(HEAD_CHUNK))]).view(yb.shape))
    return torch.cat(losses)


def blocks(ids: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping (inputs, next tokens) blocks of `length`, (N, length) each."""
    n = (len(ids) - 1) // length
    if n < 1:
        raise ValueError(f"the validation text has {len(ids)} tokens, fewer than one block of "
                         f"{length}; choose a shorter length.")
    return ids[: n * length].view(n, length), ids[1: n * length + 1].view(n, length)


# ------------------------------------------------------------------ 1. length generalization
@dataclass
class LengthCurve:
    positions: list[int]  # first position of each bucket
    loss: list[float]  # mean loss in the bucket, every earlier token of the block as context
    sliding_loss: list[float]  # the same tokens, context cut to the training length
    limit: int | None  # learned positions: max_seq_len, where `loss` stops; else None

    def to_dict(self) -> dict:
        return {"positions": self.positions, "loss": self.loss,
                "sliding_loss": self.sliding_loss, "limit": self.limit}


def length_curve(model: GPT2, val_ids: torch.Tensor, train_len: int, max_len: int,
                 bucket: int | None = None, stride: int | None = None) -> LengthCurve:
    """Loss by position on validation blocks of max_len tokens, in buckets.

    `loss` sees the whole block before each token; `sliding_loss` scores the same tokens with
    windows of train_len tokens moved by `stride` (default train_len / 4), so each token past
    the first window has between train_len - stride + 1 and train_len tokens of context at
    the positions the model was trained on. Their difference is what positions past the
    training length cost; the text's own difficulty is in both.
    """
    if max_len < 2 or train_len < 2:
        raise ValueError(f"max_len={max_len} and train_len={train_len} must be at least 2.")
    bucket = bucket or max(1, train_len // 4)
    stride = stride or max(1, train_len // 4)
    device = model.wte.weight.device
    x, y = (t.to(device) for t in blocks(val_ids, max_len))
    cfg = model.config
    limit = cfg.max_seq_len if cfg.position == "learned" and max_len > cfg.max_seq_len else None
    reach = limit or max_len
    full = token_losses(model, x[:, :reach], y[:, :reach]).mean(0)  # (reach,)
    sliding = sliding_token_losses(model, x, y, min(train_len, max_len), stride).mean(0)  # (max_len,)
    starts = list(range(0, max_len, bucket))
    return LengthCurve(
        positions=starts,
        loss=[float(full[s:s + bucket].mean()) for s in starts if s + bucket <= reach],
        sliding_loss=[float(sliding[s:s + bucket].mean()) for s in starts],
        limit=limit)


def sliding_token_losses(model: GPT2, x: torch.Tensor, y: torch.Tensor, context: int,
                         stride: int) -> torch.Tensor:
    """(N, M) loss of every token, each scored in a window of `context` tokens: the first
    window scores all its tokens, each later one (moved by `stride`) only its new ones."""
    n, m = x.shape
    starts = list(range(0, m - context + 1, stride))
    if starts[-1] != m - context:
        starts.append(m - context)
    windows_x = torch.stack([x[:, s:s + context] for s in starts], dim=1)  # (N, W, context)
    windows_y = torch.stack([y[:, s:s + context] for s in starts], dim=1)
    losses = token_losses(model, windows_x.flatten(0, 1), windows_y.flatten(0, 1))
    losses = losses.view(n, len(starts), context)
    out = torch.empty(n, m, device=x.device, dtype=losses.dtype)
    scored_to = 0
    for w, s in enumerate(starts):
        out[:, scored_to:s + context] = losses[:, w, scored_to - s:]
        scored_to = s + context
    return out


def loss_between(curve: LengthCurve, lo: int, hi: int, key: str = "loss") -> float | None:
    """Mean of the buckets that start in [lo, hi); None where the curve has none (past a
    learned table)."""
    values = [v for p, v in zip(curve.positions, getattr(curve, key)) if lo <= p < hi]
    return sum(values) / len(values) if values else None


# ------------------------------------------------------------------ 2. window and sinks at inference
def check_window_sinks(windows: list[int], sinks: list[int], block_size: int) -> None:
    for w in windows:
        if w < 1:
            raise ValueError(f"window={w}: a window holds at least the token itself (>= 1).")
    for s in sinks:
        if not 0 <= s < block_size:
            raise ValueError(f"sinks={s} must be between 0 and {block_size - 1}: the blocks have "
                             f"{block_size} tokens, and sinks are the first tokens of a block.")


def window_losses(model: GPT2, val_ids: torch.Tensor, block_size: int, windows: list[int],
                  sinks: list[int]) -> dict:
    """Validation loss (blocks of block_size) with every (window, sinks) pair at inference,
    beside the loss with full causal attention."""
    check_window_sinks(windows, sinks, block_size)
    full = evaluate(reconfigured(model, window=None, sinks=0), val_ids, block_size)
    # a window that covers the block is full attention (attention() runs it as such): its loss
    # is the full loss exactly, so it is not evaluated again
    rows = [{"window": w, "sinks": s,
             "loss": full if w >= block_size else
             evaluate(reconfigured(model, window=w, sinks=s), val_ids, block_size)}
            for s in sinks for w in windows]
    return {"full_loss": full, "trained_window": model.config.window, "rows": rows}


# ------------------------------------------------------------------ 3. receptive field
def check_position(config: ModelConfig, position: int, n_tokens: int) -> None:
    if not 0 <= position < n_tokens:
        raise ValueError(f"position {position} is past the text ({n_tokens} tokens); choose "
                         f"0 to {n_tokens - 1}.")
    config.check_seq_len(position + 1)


def receptive_field(model: GPT2, ids: torch.Tensor, position: int) -> torch.Tensor:
    """(n_layer, position + 1) bool: [l, j] is True where input token j changes the output
    of layer l + 1 at `position` (a non-zero gradient; masked keys get exactly zero)."""
    check_position(model.config, position, len(ids))
    ids = ids[: position + 1][None].to(model.wte.weight.device)  # (1, P + 1)
    with torch.enable_grad():
        stream = model.trace(ids, capture=("resid",)).resid
        rows = []
        for hidden in stream[1:]:
            (grad,) = torch.autograd.grad(hidden[0, position].sum(), stream[0], retain_graph=True)
            rows.append(grad[0].abs().sum(-1) > 0)  # (P + 1,)
    return torch.stack(rows).cpu()


def reach(influence: torch.Tensor) -> list[int]:
    """How many positions back each layer's output at the last position is influenced."""
    last = influence.shape[1] - 1
    return [last - int(row.nonzero()[0]) for row in influence]


def theory_reach(n_layer: int, window: int | None, position: int, sinks: int = 0) -> list[int]:
    """After l layers of window w, information travels l * (w - 1) positions (DESIGN.md);
    with sinks every query also reads the first keys, so from layer 1 on the reach is the
    whole prefix (what lies between the sinks and the window band stays out of reach)."""
    return [position if window is None or sinks else min(position, layer * (window - 1))
            for layer in range(1, n_layer + 1)]


# ------------------------------------------------------------------ 4. GQA frontier and uptraining
UPTRAIN_MAX_SECONDS = 600.0  # one experiment's budget for all its uptraining runs


def uptrain_settings(settings: TrainSettings, steps: int) -> TrainSettings:
    """Continue at the rate the original schedule ended with, constant after a short warm-up,
    one evaluation at the end. Measured on the gpt2 preset pooled to MQA, 12 steps: from 4.100
    to 4.014 nats at 3e-4; restarting at the peak 3e-3 made it worse (4.130)."""
    return replace(settings, steps=steps, lr=settings.lr * settings.min_lr_ratio, min_lr_ratio=1.0,
                   warmup_steps=max(1, steps // 10), eval_every=steps, max_seconds=None)


def check_uptrain_budget(config: ModelConfig, settings: TrainSettings, steps: int, runs: int,
                         seconds_per_step: float) -> None:
    """Refuse, before anything trains, a budget over the memory or time limit."""
    if steps < 0:
        raise ValueError(f"uptraining steps={steps} must be >= 0.")
    ensure_fits(training_bytes(config, settings), "uptraining", device())
    estimate = steps * runs * seconds_per_step
    if estimate > UPTRAIN_MAX_SECONDS:
        most = int(UPTRAIN_MAX_SECONDS / (runs * seconds_per_step))
        raise ValueError(f"uptraining {runs} models for {steps} steps needs about {estimate:.0f} s "
                         f"at the measured {seconds_per_step:.2f} s a step, over the "
                         f"{UPTRAIN_MAX_SECONDS:.0f} s limit; use at most {most} steps.")


def gqa_frontier(model: GPT2, corpus: Corpus, settings: TrainSettings, uptrain_steps: int,
                 seconds_per_step: float, seed: int = 0, on_step=None) -> dict:
    """For every n_kv_head the model's kv heads divide into: KV-cache bytes per token, the
    loss after mean-pooling (to_gqa) and after `uptrain_steps` more training steps.
    on_step(n_kv_head, Progress) reports uptraining progress."""
    runs = len(kv_head_choices(model.config.n_kv_head))
    check_uptrain_budget(model.config, settings, uptrain_steps, runs, seconds_per_step)

    def uptrain(kv, pooled):
        report = None if on_step is None else (lambda p: on_step(kv, p))
        history = continue_training(pooled, corpus, uptrain_settings(settings, uptrain_steps),
                                    seed, report)
        return history.val_loss[-1]

    return pooled_kv_losses(model, lambda m: evaluate(m, corpus.val, settings.block_size),
                            uptrain if uptrain_steps else None)


def scratch_loss(config: ModelConfig, corpus: Corpus, settings: TrainSettings,
                 seed: int = 0) -> float | None:
    """Validation loss of config trained from scratch, if its checkpoint is cached (read from
    its history; nothing is trained or loaded)."""
    meta = checkpoint_folder(config, corpus, settings, seed) / "meta.json"
    try:
        return json.loads(meta.read_text())["history"]["val_loss"][-1]
    except (OSError, ValueError, KeyError, IndexError):
        return None


# ------------------------------------------------------------------ 5. logit lens
@torch.no_grad()
def logit_lens(model: GPT2, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (T,) -> the top-1 next-token probability and id read from the residual stream
    (final layer norm + LM head) at the embeddings and after every layer: (n_layer + 1, T)."""
    stream = model.trace(ids[None].to(model.wte.weight.device), capture=("resid",)).resid
    hidden = torch.cat(stream)  # (n_layer + 1, T, d_model)
    probs = model.lm_head(model.ln_f(hidden)).softmax(-1)
    top = probs.max(-1)
    return top.values.cpu(), top.indices.cpu()



# ------------------------------------------------------------------ 6. streaming (StreamingLLM)
STREAM_BUCKETS = ((0, 256), (256, 1024), (1024, 2048), (2048, 4096))


def streaming_losses(model: GPT2, ids: torch.Tensor, tokens: int, windows: list[int],
                     sinks: list[int], progress=None) -> list[dict]:
    """Xiao et al. 2023's headline: the next-token loss of tokens 0 .. tokens-1 of one text
    (ids (>= tokens + 1,)) under full causal attention, then under each window w with each
    number of sinks s (query i sees keys j <= i with i - w < j or j < s), at true positions,
    one pass per setting. The weights are shared, never copied; windowed passes run the
    banded kernel (attention.resolve), so they cost less than the dense one.

    Rows: {"window" (None = full), "sinks", "loss", "ppl", "buckets": {"0-255": mean loss of
    the tokens at those positions or None, "256-1023", "1024-2047", "2048-4095"}, "per_token":
    the loss at every position, for viz.experiments.streaming_figure}; a windowed row also has
    "cost_past_window": its mean loss minus full attention's over positions w .. tokens-1, the
    only ones a window of w keys changes (None when the text is no longer than w).
    progress(done, total, what) after each pass."""
    if tokens < 2 or len(ids) < tokens + 1:
        raise ValueError(f"the text has {len(ids)} tokens; streaming over {tokens} needs "
                         f"{tokens + 1} (give a longer --text or fewer --tokens).")
    model.config.check_seq_len(tokens)
    check_window_sinks(windows, sinks, tokens)
    device = model.wte.weight.device
    x, y = ids[:tokens][None].to(device), ids[1:tokens + 1][None].to(device)  # (1, tokens)
    settings = [(None, 0)] + [(w, s) for w in windows for s in sinks]
    rows, full = [], None
    for window, n_sinks in settings:
        losses = token_losses(reconfigured(model, window=window, sinks=n_sinks if window else 0),
                              x, y)[0].cpu()  # (tokens,)
        full = losses if window is None else full
        loss = float(losses.mean())
        row = {"window": window, "sinks": n_sinks, "loss": loss, "ppl": math.exp(loss),
               "buckets": {f"{lo}-{hi - 1}": float(losses[lo:hi].mean()) if lo < tokens else None
                           for lo, hi in STREAM_BUCKETS},
               "per_token": losses.tolist()}
        if window is not None:
            row["cost_past_window"] = float((losses - full)[window:].mean()) if window < tokens else None
        rows.append(row)
        if progress is not None:
            progress(len(rows), len(settings), f"{len(rows)} of {len(settings)} passes over {tokens:,} tokens")
    return rows


# ------------------------------------------------------------------ 7. head ablation
ABLATE_TEXT_TOKENS = 1024  # text loss over the first 1024 tokens, one sequence


def ablation(model: GPT2, text_ids: torch.Tensor, layer: int, head: int | None = None,
             kv_group: int | None = None, seed: int = 0, base: dict | None = None,
             prompt_ids: torch.Tensor | None = None) -> dict:
    """Zero one query head (or every query head reading KV head `kv_group`) of `layer`: the
    loss on the first ABLATE_TEXT_TOKENS tokens of the text, and on the second copy of the
    repeated random sequences (positions L .. 2L-2 predicting the next token, which only
    copying can get right), before and after; with prompt_ids (T,), on the prompt too.
    `base`: ablation_losses(model, text_ids, seed, prompt_ids) from an earlier call, which
    halves the cost of every later ablation."""
    cfg = model.config
    if (head is None) == (kv_group is None):
        raise ValueError("give either a head or a kv_group to ablate.")
    if kv_group is not None and not 0 <= kv_group < cfg.n_kv_head:
        raise ValueError(f"kv_group {kv_group} does not exist; choose 0 to {cfg.n_kv_head - 1}.")
    heads = [head] if head is not None else list(range(kv_group * cfg.group_size,
                                                        (kv_group + 1) * cfg.group_size))
    model._trace_request((), {layer: heads})  # checks the layer and heads before any pass
    base = ablation_losses(model, text_ids, seed, prompt_ids) if base is None else base
    ablated = ablation_losses(model, text_ids, seed, prompt_ids, ablate={layer: heads})
    return {"layer": layer, "head": head, "kv_group": kv_group, "base": base, "ablated": ablated}


def ablation_losses(model: GPT2, text_ids: torch.Tensor, seed: int = 0,
                    prompt_ids: torch.Tensor | None = None, ablate: dict | None = None) -> dict:
    """Losses on the text, on repeated random tokens (their second copy) and the prompt;
    ablate: {layer: query heads} switched off (GPT2.trace)."""
    if len(text_ids) < 2 or (prompt_ids is not None and len(prompt_ids) < 2):
        raise ValueError("the text (and the prompt) need at least 2 tokens.")
    device = model.wte.weight.device
    repeats = induction_ids(model, seed).to(device)  # (N, 2L)
    length = repeats.shape[1] // 2
    second = slice(length, 2 * length - 1)
    losses = {"text_loss": text_loss(text_ids, ablate)(model),
              "induction_loss": float(token_losses(model, repeats[:, :-1], repeats[:, 1:],
                                                   ablate=ablate)[:, second].mean())}
    if prompt_ids is not None:
        prompt = prompt_ids.to(device)
        losses["prompt_loss"] = float(token_losses(model, prompt[None, :-1], prompt[None, 1:],
                                                   ablate=ablate).mean())
    return losses


# ------------------------------------------------------------------ 8. mean-pooling KV heads
def pooled_kv_losses(model: GPT2, loss, uptrain=None) -> dict:
    """The one mean-pooling loop (to_gqa, Ainslie et al. 2023): loss(model) -> nats of the
    model with its own KV heads, then pooled into every count that divides them, most first
    (its own count included: unchanged). uptrain(n_kv_head, pooled) -> the loss after more
    training, or no uptraining when None. Rows: {"n_kv_head", "kv_bytes_per_token",
    "pooled_loss", "uptrained_loss"}."""
    own = model.config.n_kv_head
    base_loss = loss(model)
    rows = []
    for kv in kv_head_choices(own):
        pooled = model if kv == own and uptrain is None else to_gqa(model, kv).eval()  # no copy to score
        rows.append({"n_kv_head": kv, "kv_bytes_per_token": pooled.config.kv_cache_bytes_per_token(),
                     "pooled_loss": base_loss if pooled is model else loss(pooled),
                     "uptrained_loss": None if uptrain is None else uptrain(kv, pooled)})
        del pooled
    return {"base_loss": base_loss, "n_kv_head": own,
            "kv_bytes_per_token": model.config.kv_cache_bytes_per_token(), "rows": rows}


def text_loss(text_ids: torch.Tensor, ablate: dict | None = None):
    """loss(model) -> the mean next-token loss on the first ABLATE_TEXT_TOKENS tokens of the
    text, one sequence (ablate: heads switched off, as token_losses): how a real model's
    pooled KV heads and its ablations are scored."""
    text = text_ids[:ABLATE_TEXT_TOKENS + 1][None]

    def loss(model: GPT2) -> float:
        on_device = text.to(model.wte.weight.device)
        return float(token_losses(model, on_device[:, :-1], on_device[:, 1:], ablate=ablate).mean())

    return loss
