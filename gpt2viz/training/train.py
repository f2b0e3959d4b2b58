"""Training on demand: AdamW, linear warm-up then cosine decay, gradient clipping, seeded.

Fair comparison: every variant trained with the same TrainSettings and seed sees the same
batches in the same order (the batch sampler has its own generator, untouched by model init).
Checkpoints are cached by (config, corpus hash, settings, seed) in checkpoint_cache: nothing
trains twice.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Callable

import torch
import torch.nn.functional as F

from gpt2viz.core.config import POSITIONS, PRESETS, ModelConfig, TrainSettings
from gpt2viz.core.model import GPT2
from gpt2viz.core.resources import device, ensure_fits, training_threads
from gpt2viz.text.corpus import Corpus, Vocabulary
from gpt2viz.weights.checkpoint_cache import (
    cache_max_bytes,
    checkpoint_folder,
    checkpoint_in_use,
    evict,
    read_cached,
    remove_unless_in_use,
)
from gpt2viz.weights.checkpoints import save_checkpoint


@dataclass
class Progress:
    """What the callback gets after every step."""
    step: int
    steps: int
    loss: float
    tokens_per_second: float
    seconds_left: float
    val_loss: float | None = None  # set on evaluation steps


@dataclass
class History:
    steps: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    eval_steps: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    unigram_loss: float = float("nan")
    seconds: float = 0.0
    tokens_per_second: float = 0.0  # with the date: a time alone says little on a shared machine
    finished: str = ""  # when the run ended, UTC
    device: str = ""  # where it trained ("cpu", "cuda"): paces differ by orders of magnitude
    stopped_early: bool = False


@dataclass
class TrainedModel:
    model: GPT2
    vocab: Vocabulary
    history: History
    corpus_name: str
    from_cache: bool = False

    @property
    def val_loss(self) -> float:
        return self.history.val_loss[-1]


def train(config: ModelConfig, corpus: Corpus, settings: TrainSettings = TrainSettings(),
          seed: int = 0, callback: Callable[[Progress], None] | None = None,
          use_cache: bool = True) -> TrainedModel:
    """Train config (its vocab_size is replaced by the corpus vocabulary's) or load it from
    the checkpoint cache."""
    config = config.replace(vocab_size=corpus.vocab.size)
    check_trainable(config, corpus, settings)
    folder = checkpoint_folder(config, corpus, settings, seed)
    max_bytes = cache_max_bytes() if use_cache else None  # a bad GPT2VIZ_CACHE_MAX fails first
    cached = load_cached(config, corpus, settings, seed) if use_cache else None
    if cached is not None:
        return cached
    if use_cache and folder.is_dir():
        remove_unless_in_use(folder)  # unreadable: retrained and replaced below

    torch.manual_seed(seed)
    model = GPT2(config).to(device())  # initialised on the CPU: the same weights on any device
    history = _optimize(model, corpus, settings, seed, callback)
    model.eval()
    if use_cache:
        with checkpoint_in_use(folder):
            save_checkpoint(folder, model, {"vocab": corpus.vocab.gpt2_ids, "corpus": corpus.name,
                                            "history": asdict(history), "seed": seed,
                                            "settings": asdict(settings)})
            evict(max_bytes)
    return TrainedModel(model, corpus.vocab, history, corpus.name)


def check_trainable(config: ModelConfig, corpus: Corpus, settings: TrainSettings) -> None:
    """ValueError / MemoryError, naming the fix, for settings that cannot train this config
    on this corpus: checked before a run is queued, so nothing starts that must fail."""
    config = config.replace(vocab_size=corpus.vocab.size)
    config.check_seq_len(settings.block_size)
    for split, ids in (("training", corpus.train), ("validation", corpus.val)):
        if len(ids) <= settings.block_size:
            raise ValueError(f"the {split} split has {len(ids)} tokens, fewer than one block of "
                             f"{settings.block_size}; give a longer text or a smaller block.")
    ensure_fits(training_bytes(config, settings), f"training with batch {settings.batch_size} x "
                f"{settings.block_size} tokens", device())


def load_cached(config: ModelConfig, corpus: Corpus, settings: TrainSettings, seed: int) -> TrainedModel | None:
    """The model train() would return from the checkpoint cache; None when it is not there
    or cannot be read."""
    loaded = read_cached(checkpoint_folder(config, corpus, settings, seed))
    if loaded is None:
        return None
    model, meta = loaded
    try:
        return TrainedModel(model, Vocabulary(meta["vocab"]), History(**meta["history"]),
                            corpus.name, from_cache=True)
    except (KeyError, TypeError):
        return None


def learning_problem(history: History) -> str | None:
    """Why a trained model must not be shown as if it were fine, or None: a loss that became
    NaN, or a validation loss at or above the unigram baseline (what a model that ignores
    context scores), i.e. nothing learned from context."""
    if not history.val_loss:
        return None
    val = history.val_loss[-1]
    if not all(math.isfinite(x) for x in history.train_loss + history.val_loss):
        return "its loss became NaN or infinite during training (training diverged)."
    if val >= history.unigram_loss:
        return (f"its validation loss {val:.3f} is at or above the unigram baseline "
                f"{history.unigram_loss:.3f}: it learned nothing from context.")
    return None


def training_matrix(base: ModelConfig, corpus: Corpus, settings: TrainSettings = TrainSettings(),
                    kv_heads: tuple | None = None, windows: tuple = (None, 16), seed: int = 0,
                    use_cache: bool = True, on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Train every position scheme x kv heads (default MHA, GQA with 2, MQA) x window on one
    body with the same settings: every variant the dashboard can build must learn."""
    rows = []
    for position in POSITIONS:
        for n_kv_head in kv_heads or (base.n_head, 2, 1):
            for window in windows:
                config = base.replace(position=position, n_kv_head=n_kv_head, window=window)
                result = train(config, corpus, settings, seed=seed, use_cache=use_cache)
                h = result.history
                rows.append({"position": position, "attention": config.attention_kind,
                             "n_kv_head": n_kv_head, "window": window,
                             "val_loss": result.val_loss, "unigram_loss": h.unigram_loss,
                             "seconds": h.seconds, "from_cache": result.from_cache,
                             "problem": learning_problem(h)})
                if on_row is not None:
                    on_row(rows[-1])
    return rows


def training_bytes(config: ModelConfig, settings: TrainSettings) -> int:
    """Rough peak: weights + AdamW state + activations kept for backward + logits."""
    params = param_count(config)
    tokens = settings.batch_size * settings.block_size
    activations = tokens * config.d_model * config.n_layer * 34 * 4
    attention = settings.batch_size * config.n_head * settings.block_size ** 2 * config.n_layer * 4
    logits = tokens * config.vocab_size * 4 * 3
    return params * 4 * 4 + activations + attention + logits


@lru_cache(maxsize=256)
def param_count(config: ModelConfig) -> int:
    """Parameters of GPT2(config), counted on the meta device: no memory (building the modules
    still takes tens of ms, so each config is counted once)."""
    with torch.device("meta"):
        return GPT2(config).num_params()


def continue_training(model: GPT2, corpus: Corpus, settings: TrainSettings, seed: int = 0,
                      callback: Callable[[Progress], None] | None = None) -> History:
    """Train an existing model further (GQA uptraining) with train()'s optimizer and data
    order; nothing is cached. A pretrained model's weights are fixed: train a copy
    (to_gqa makes one)."""
    if model.pretrained:
        raise ValueError(f"{model.pretrained} is a pretrained model with fixed weights; it "
                         f"never trains (uptrain a converted copy, e.g. to_gqa(model, k)).")
    ensure_fits(training_bytes(model.config, settings), f"training with batch "
                f"{settings.batch_size} x {settings.block_size} tokens", model.wte.weight.device)
    history = _optimize(model, corpus, settings, seed, callback)
    model.eval()
    return history


def _optimize(model, corpus, settings, seed, callback) -> History:
    history = History(unigram_loss=corpus.unigram_loss())
    batches = torch.Generator().manual_seed(seed)  # the data order: same for every variant
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=settings.lr, betas=(0.9, 0.95))
    tokens_per_step = settings.batch_size * settings.block_size
    start = time.perf_counter()
    model.train()
    for step in range(1, settings.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, settings)
        x, y = (t.to(model.wte.weight.device) for t in sample_batch(corpus.train, settings, batches))
        with torch.autocast(x.device.type, torch.bfloat16, enabled=settings.precision == "bf16"):
            loss = F.cross_entropy(model(x).flatten(0, 1).float(), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        elapsed = time.perf_counter() - start
        history.steps.append(step)
        history.train_loss.append(loss.item())
        out_of_time = settings.max_seconds is not None and elapsed >= settings.max_seconds
        val = None
        if step % settings.eval_every == 0 or step == settings.steps or out_of_time:
            val = evaluate(model, corpus.val, settings.block_size)
            history.eval_steps.append(step)
            history.val_loss.append(val)
        if callback is not None:
            callback(Progress(step, settings.steps, history.train_loss[-1], step * tokens_per_step / elapsed,
                              elapsed / step * (settings.steps - step), val))
        if out_of_time:
            history.stopped_early = step < settings.steps
            break
    history.seconds = time.perf_counter() - start
    history.tokens_per_second = len(history.steps) * tokens_per_step / history.seconds
    history.finished = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    history.device = next(model.parameters()).device.type
    return history


# The default budget (240 steps of 16 x 128 tokens) took 5.8 s for the slowest preset on one
# H100 (torch 2.11, 2026-11-27, NOTES.md): the first guess on a GPU. On the CPU the first guess
# is timed here (a constant from another machine was 2.4x off on this project's 2-core VMs).
MEASURED_CUDA_PACE = 491_520 / 5.8
CALIBRATION_STEPS = 3
CALIBRATION_VOCAB = 5008  # the embedded corpus's vocabulary: the default preset as it trains


@lru_cache(maxsize=None)
def expected_tokens_per_second(device_type: str | None = None) -> float:
    """The training pace to expect before anything of a kind was trained here (default: the
    device training would use). On the CPU, CALIBRATION_STEPS steps of the default preset timed
    on this machine now, at the training child's thread count: this machine's pace under its
    present load, not another's (about 1.5 s, once per process). On CUDA, the H100's pace."""
    if (device_type or device().type) == "cuda":
        return MEASURED_CUDA_PACE
    settings = TrainSettings()
    torch.manual_seed(0)
    model = GPT2(PRESETS["gpt2"].replace(vocab_size=CALIBRATION_VOCAB)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    x, y = torch.randint(0, CALIBRATION_VOCAB, (2, settings.batch_size, settings.block_size))
    threads = torch.get_num_threads()
    torch.set_num_threads(training_threads())
    try:
        for step in range(CALIBRATION_STEPS + 1):  # the first is a warm-up
            if step == 1:
                start = time.perf_counter()
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return CALIBRATION_STEPS * settings.batch_size * settings.block_size / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


def learning_rate(step: int, s: TrainSettings) -> float:
    if step <= s.warmup_steps:
        return s.lr * step / s.warmup_steps
    progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def sample_batch(ids: torch.Tensor, s: TrainSettings, generator: torch.Generator):
    starts = torch.randint(0, len(ids) - s.block_size - 1, (s.batch_size,), generator=generator)
    rows = starts[:, None] + torch.arange(s.block_size + 1)
    window = ids[rows]  # (B, block + 1)
    return window[:, :-1], window[:, 1:]


@torch.no_grad()
def evaluate(model: GPT2, ids: torch.Tensor, block_size: int) -> float:
    """Mean next-token loss (nats) over every token of `ids`, in non-overlapping blocks."""
    was_training = model.training
    model.eval()
    ids = ids.to(next(model.parameters()).device)
    n_blocks = (len(ids) - 1) // block_size
    x = ids[: n_blocks * block_size].view(n_blocks, block_size)
    y = ids[1: n_blocks * block_size + 1].view(n_blocks, block_size)
    total = 0.0
    blocks_per_batch = max(1, 8192 // block_size)  # ~8k tokens a forward pass, short blocks too
    for xb, yb in zip(x.split(blocks_per_batch), y.split(blocks_per_batch)):
        total += float(F.cross_entropy(model(xb).flatten(0, 1), yb.flatten(), reduction="sum"))
    model.train(was_training)
    return total / y.numel()
