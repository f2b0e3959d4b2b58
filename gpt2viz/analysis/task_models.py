"""Task models: the one model class trained on a synthetic task (gpt2viz.analysis.tasks) with
the loss only on the scored positions, and what they learned.

- `task_config(base, task)`: a variant's config (position scheme, window, KV heads, norm,
  MLP) on a task-sized body (TASK_BODY unless overridden), the task's vocabulary and length.
- `train_task`: AdamW, warm-up then cosine; a fresh seeded batch every step; accuracy on a
  held-out seeded batch every `eval_every` steps, with every head's induction and
  previous-token scores on that batch (analysis/heads.py's definitions) so the birth of an
  induction head shows; `learned_at_step` = the first evaluation with accuracy >= 50 %. It
  stops at the step budget, at `stop_accuracy`, on a plateau once learned, or on time.
  Trained models are cached in the checkpoint cache (folders "task-<key>", key = config, task,
  settings, seed), written whole like every other checkpoint; nothing trains twice.
- accuracy by length (1x, 2x, 4x, 8x the trained length), by distance (passkey; copy by
  offset) and by number of pairs (recall); a length the model cannot read (learned positions
  past max_seq_len) is reported as refused, never guessed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable

import torch
import torch.nn.functional as F

from gpt2viz.analysis.heads import text_measures
from gpt2viz.analysis.tasks import (
    PasskeyTask,
    RecallTask,
    TaskBatch,
    accuracy,
    source_attention,
    task_from_dict,
)
from gpt2viz.core.config import ModelConfig
from gpt2viz.core.model import GPT2
from gpt2viz.core.resources import device
from gpt2viz.weights.checkpoint_cache import (
    cache_dir,
    cache_max_bytes,
    checkpoint_in_use,
    evict,
    read_cached,
    remove_unless_in_use,
)
from gpt2viz.training.train_process import run_in_child
from gpt2viz.weights.checkpoints import save_checkpoint

TASK_BODY = {"n_layer": 2, "n_head": 4, "d_model": 64}  # replaces a preset's 4 x 128 body
LEARNED_ACCURACY = 0.5  # learned_at_step: the first evaluation at or above this
EVAL_SEED = 10**12  # held-out batches: seeds no training step uses (those are < 10**12)
HEAD_ROWS = 32  # rows of the held-out batch the head scores read
LENGTHS = (1, 2, 4, 8)
# Task models are tiny (~30-100k parameters): their steps are dominated by per-op overhead, and
# on the shared 2-core machine one thread ran a copy step in 16 ms where two took 300 ms (load
# average 6, 2026-12-03). Training and evaluation here run on TASK_THREADS, then restore.
TASK_THREADS = 1


@dataclass(frozen=True)
class TaskSettings:
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3  # NOTES 2026-12-02: 3e-3 with the loss on every token never formed induction
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 50
    eval_batch: int = 256
    stop_accuracy: float = 0.99  # stop once the held-out accuracy reaches it
    patience: int = 6  # once learned: stop after this many evaluations without a 1-point gain
    patience_unlearned: int = 20  # before: after this many (a phase change may still come)
    max_seconds: float | None = None

    def __post_init__(self):
        for name in ("steps", "batch_size", "warmup_steps", "eval_every", "eval_batch", "patience",
                     "patience_unlearned"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1.")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr} must be > 0.")


# Per task, what reached its plateau fastest here (2026-12-03): recall learns with a larger
# batch and learning rate; copy needs 1e-3 (NOTES 2026-12-02).
TASK_SETTINGS = {"recall": {"batch_size": 64, "lr": 3e-3}}


def default_settings(task, **changes) -> TaskSettings:
    """The task's default TaskSettings with changes (None = keep)."""
    values = {**TASK_SETTINGS.get(task.name, {}), **{k: v for k, v in changes.items() if v is not None}}
    return TaskSettings(**values)


@dataclass
class TaskHistory:
    steps: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    eval_steps: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    # at every evaluation: {"step", "induction": [[per head] per layer], "prev_token": [[...]]}
    heads: list = field(default_factory=list)
    learned_at_step: int | None = None
    chance: float = 0.0
    seconds: float = 0.0
    stopped: str = ""  # "steps" | "accuracy" | "plateau" | "time"
    device: str = ""
    threads: int = 0
    finished: str = ""

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1] if self.accuracy else float("nan")


@dataclass
class TaskProgress:
    step: int
    steps: int
    loss: float
    accuracy: float | None  # set on evaluation steps
    seconds: float


@dataclass
class TaskModel:
    model: GPT2
    task: object
    settings: TaskSettings
    history: TaskHistory
    seed: int
    from_cache: bool = False


def task_config(base: ModelConfig, task, **overrides) -> ModelConfig:
    """base's variant (position, window, sinks, KV heads, norm, MLP) on TASK_BODY, with the
    task's vocabulary and length as its max_seq_len; overrides (None = keep) win. n_kv_head
    is kept as a share of the heads: a preset's MHA stays MHA on fewer heads."""
    changes = {**TASK_BODY, **{k: v for k, v in overrides.items() if v is not None}}
    if "n_kv_head" not in changes:
        n_head = changes.get("n_head", base.n_head)
        changes["n_kv_head"] = n_head if base.n_kv_head == base.n_head else max(
            1, min(base.n_kv_head, n_head))
    changes.setdefault("max_seq_len", task.length)
    return base.replace(vocab_size=task.vocab_size, **changes)


def check_task_config(config: ModelConfig, task) -> None:
    if config.vocab_size != task.vocab_size:
        raise ValueError(f"vocab_size={config.vocab_size} is not the task's vocabulary "
                         f"({task.vocab_size}); build the config with task_config().")
    config.check_seq_len(task.length)


# ---------------------------------------------------------------- the checkpoint cache
def task_cache_key(config: ModelConfig, task, settings: TaskSettings, seed: int) -> str:
    payload = json.dumps([config.to_dict(), task.to_dict(), asdict(settings), seed], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def task_checkpoint_folder(config: ModelConfig, task, settings: TaskSettings, seed: int):
    return cache_dir() / f"task-{task_cache_key(config, task, settings, seed)}"


def load_cached_task(config, task, settings, seed) -> TaskModel | None:
    loaded = read_cached(task_checkpoint_folder(config, task, settings, seed))
    if loaded is None:
        return None
    model, meta = loaded
    try:
        return TaskModel(model, task_from_dict(meta["task"]), settings,
                         TaskHistory(**meta["history"]), seed, from_cache=True)
    except (KeyError, TypeError, ValueError):
        return None


# ---------------------------------------------------------------- training
def train_task(config: ModelConfig, task, settings: TaskSettings = TaskSettings(), seed: int = 0,
               callback: Callable[[TaskProgress], None] | None = None,
               use_cache: bool = True) -> TaskModel:
    """Train config (from task_config) on the task, or load it from the checkpoint cache."""
    check_task_config(config, task)
    if use_cache:
        max_bytes = cache_max_bytes()  # a bad GPT2VIZ_CACHE_MAX fails before training
        cached = load_cached_task(config, task, settings, seed)
        if cached is not None:
            return cached
        folder = task_checkpoint_folder(config, task, settings, seed)
        if folder.is_dir():
            remove_unless_in_use(folder)  # unreadable: retrained and replaced below
    torch.manual_seed(seed)
    model = GPT2(config).to(device())  # initialised on the CPU: the same weights anywhere
    with task_threads():
        history = _optimize(model, task, settings, seed, callback)
    model.eval()
    if use_cache:
        with checkpoint_in_use(folder):
            save_checkpoint(folder, model, {"task": task.to_dict(), "task_settings": asdict(settings),
                                            "history": asdict(history), "seed": seed})
            evict(max_bytes)
    return TaskModel(model, task, settings, history, seed)


def train_task_in_child(config: ModelConfig, task, settings: TaskSettings = TaskSettings(),
                        seed: int = 0, callback: Callable[[TaskProgress], None] | None = None) -> TaskModel:
    """train_task in a child process at nice 10, as the dashboard trains its language models
    (training.train_process): the server's pages keep their cores and the GIL."""
    weights, history, from_cache = run_in_child(trained_task_weights, config, task, settings, seed,
                                                callback=callback)
    model = GPT2(config)
    model.load_state_dict(weights)
    return TaskModel(model.to(device()).eval(), task, settings, history, seed, from_cache)


def trained_task_weights(config, task, settings, seed, callback):
    """The child's job for train_task_in_child: train_task (it writes the cache), then the
    weights on the CPU."""
    trained = train_task(config, task, settings, seed, callback)
    return ({k: v.detach().cpu() for k, v in trained.model.state_dict().items()}, trained.history,
            trained.from_cache)


@contextlib.contextmanager
def task_threads(n: int = TASK_THREADS):
    """Run on n CPU threads (TASK_THREADS: see there), then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def masked_loss(logits: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Cross-entropy on the scored positions only."""
    return F.cross_entropy(logits[batch.mask].float(), batch.targets[batch.mask])


def _learning_rate(step: int, s: TaskSettings) -> float:
    if step <= s.warmup_steps:
        return s.lr * step / s.warmup_steps
    progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _optimize(model: GPT2, task, settings: TaskSettings, seed: int, callback) -> TaskHistory:
    history = TaskHistory(chance=task.chance, threads=torch.get_num_threads())  # as trained
    where = model.wte.weight.device
    held_out = task.generate(settings.eval_batch, seed=EVAL_SEED + seed).to(where)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=settings.lr, betas=(0.9, 0.95))
    best, since_best = -1.0, 0
    start = time.perf_counter()
    model.train()
    for step in range(1, settings.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, settings)
        batch = task.generate(settings.batch_size, seed=seed * 1_000_003 + step).to(where)
        loss = masked_loss(model(batch.ids), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        history.steps.append(step)
        history.train_loss.append(loss.item())
        elapsed = time.perf_counter() - start
        out_of_time = settings.max_seconds is not None and elapsed >= settings.max_seconds
        acc = None
        if step % settings.eval_every == 0 or step == settings.steps or out_of_time:
            acc = _evaluate(model, held_out, step, history)
            if history.learned_at_step is None and acc >= LEARNED_ACCURACY:
                history.learned_at_step = step
            if acc > best + 0.01:
                best, since_best = acc, 0
            else:
                since_best += 1
        if callback is not None:
            callback(TaskProgress(step, settings.steps, loss.item(), acc, elapsed))
        if acc is not None and acc >= settings.stop_accuracy:
            history.stopped = "accuracy"
        elif acc is not None and since_best >= (settings.patience if history.learned_at_step
                                                else settings.patience_unlearned):
            history.stopped = "plateau"
        elif out_of_time:
            history.stopped = "time"
        if history.stopped:
            break
    history.stopped = history.stopped or "steps"
    history.seconds = time.perf_counter() - start
    history.device = where.type
    history.finished = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return history


@torch.no_grad()
def _evaluate(model: GPT2, held_out: TaskBatch, step: int, history: TaskHistory) -> float:
    model.eval()
    acc = accuracy(_logits(model, held_out.ids), held_out)
    history.eval_steps.append(step)
    history.accuracy.append(acc)
    history.heads.append({"step": step, **head_scores(model, _rows(held_out, HEAD_ROWS))})
    model.train()
    return acc


def head_scores(model: GPT2, batch: TaskBatch) -> dict:
    """{"induction": [[score of each head] for each layer], "prev_token": [[...]]} on a task
    batch: induction = attention from each scored query to its source (the token after the
    earlier occurrence; tasks.source_attention), prev_token as analysis/heads.py defines it."""
    attn = model.trace(batch.ids, capture=("attn",)).attn
    return {"induction": [[round(float(x), 4) for x in source_attention(a, batch)] for a in attn],
            "prev_token": [[round(float(x), 4) for x in text_measures(a)["prev_token"]] for a in attn]}


def _rows(batch: TaskBatch, n: int) -> TaskBatch:
    return TaskBatch(batch.ids[:n], batch.targets[:n], batch.mask[:n], batch.source[:n],
                     batch.distance[:n])


def _logits(model: GPT2, ids: torch.Tensor, tokens_per_pass: int = 16384) -> torch.Tensor:
    rows = max(1, tokens_per_pass // ids.shape[1])
    return torch.cat([model(chunk) for chunk in ids.split(rows)])


# ---------------------------------------------------------------- what it learned
EVAL_ROWS = 256


@torch.no_grad()
def predictions(model: GPT2, batch: TaskBatch) -> torch.Tensor:
    """(B, T) argmax predictions; ValueError when the model cannot read the batch's length."""
    model.eval()
    return _logits(model, batch.ids.to(model.wte.weight.device)).argmax(dim=-1).cpu()


def _accuracy_of(model, batch: TaskBatch) -> float:
    right = predictions(model, batch) == batch.targets
    return float(right[batch.mask].float().mean())


def held_out(task, seed: int, rows: int = EVAL_ROWS, **knobs) -> TaskBatch:
    return task.generate(rows, seed=EVAL_SEED + seed, **knobs)


def accuracy_by_length(model: GPT2, task, seed: int = 0, multipliers=LENGTHS,
                       rows: int = EVAL_ROWS) -> tuple[dict, dict]:
    """({"1": acc, "2": acc or None, ...}, {"2": why it was refused, ...}): the task at
    m x its length. A model that cannot read the length (learned positions past max_seq_len)
    is refused, not scored."""
    scores, refused = {}, {}
    for m in multipliers:
        longer = task.at_length(task.length * m)
        try:
            scores[str(m)] = _accuracy_of(model, held_out(longer, seed, rows))
        except ValueError as err:
            scores[str(m)], refused[str(m)] = None, str(err)
    return scores, refused


def default_distances(task: PasskeyTask) -> list[int]:
    top = task.max_distance
    return sorted({d for d in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if d <= top} | {top})


def accuracy_by_distance(model: GPT2, task: PasskeyTask, distances=None, seed: int = 0,
                         rows: int = EVAL_ROWS) -> dict:
    """Passkey: {"d": accuracy with the value exactly d tokens before the question}."""
    distances = list(distances) if distances else default_distances(task)
    for d in distances:
        task.check_distance(d)
    return {str(d): _accuracy_of(model, held_out(task, seed, rows, distance=d)) for d in distances}


def accuracy_by_offset(model: GPT2, task, seed: int = 0, rows: int = EVAL_ROWS) -> dict:
    """Copy: accuracy of the held-out batch's rows grouped by the copy's offset, in spans
    [1, 8], [9, 16], [17, 32], ... ("lo-hi": accuracy; spans with no rows left out)."""
    batch = held_out(task, seed, rows)
    right = (predictions(model, batch) == batch.targets) & batch.mask
    out, lo, hi = {}, 1, 8
    while lo <= task.length:
        rows_in = (batch.distance >= lo) & (batch.distance <= hi)
        if rows_in.any():
            scored = batch.mask[rows_in].sum()
            out[f"{lo}-{hi}"] = float(right[rows_in].sum() / scored)
        lo, hi = hi + 1, hi * 2
    return out


def accuracy_by_pairs(model: GPT2, task: RecallTask, seed: int = 0, rows: int = EVAL_ROWS) -> dict:
    """Recall: {"k": accuracy with k pairs (queries = min(queries, k))}, k = 1, 2, 4, ... and
    the trained number of pairs, at the trained length."""
    counts = sorted({k for k in (1, 2, 4, 8, 16, 32, 64) if k <= task.pairs} | {task.pairs})
    return {str(k): _accuracy_of(model, held_out(task.with_pairs(k), seed, rows)) for k in counts}


def expected_limits(config: ModelConfig, task) -> list[str]:
    """Why a task model is expected to fail, one line each, from its architecture alone (the
    page prints them under the chart; the measurement says whether it did)."""
    lines = []
    if config.window is not None:
        reach = config.n_layer * (config.window - 1)
        what = {"passkey": f"a value farther back than {reach} tokens cannot reach the question: chance there",
                "copy": f"a copy whose source lies more than {reach} tokens back cannot be read",
                "recall": f"a key more than {reach} tokens before its query cannot be recalled"}[task.name]
        lines.append(f"window {config.window} × {config.n_layer} layer{'s' * (config.n_layer > 1)} "
                     f"reaches {reach} tokens back: {what}.")
    if task.name in ("copy", "recall") and config.n_layer == 1:
        lines.append("one layer cannot form an induction head: copying from context needs a "
                     "previous-token head in an earlier layer (Olsson et al. 2022).")
    if config.position == "learned":
        lines.append(f"learned positions have no rows past {config.max_seq_len}: longer lengths "
                     f"are refused, not guessed.")
    return lines
