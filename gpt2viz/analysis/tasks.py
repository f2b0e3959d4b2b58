"""Synthetic tasks where context matters: generated, seeded data with its own small vocabulary
and an exact definition of which positions are scored (DESIGN.md, "Tasks").

Every generator returns a TaskBatch: ids (B, T), targets (B, T) (the token the model must
output at each position: the next token for copy and recall, the answer at the question for
passkey), mask (B, T) True exactly where that output is determined by the context (the only
positions the loss and the accuracy read), source (B, T) the position the answer is read from
(the token right after the earlier occurrence of the current token for copy and recall: the
induction target of Olsson et al. 2022; the value itself for passkey; -1 where not scored) and
distance (B,) how far back the answer lies.

- copy (induction): a segment of `min_segment`..`max_segment` distinct tokens at a random
  start, repeated at a random later offset, random filler (never a segment token) around them.
  Scored: the repeated tokens after the first (its first token is not determined: the copy
  may start anywhere). distance = the offset between segment and copy.
- recall (MQAR, Arora et al. 2023, Zoology): `pairs` key-value pairs (distinct keys), filler,
  then `queries` of those keys (distinct, in random order), each followed by its value.
  Scored: the value after each query key. distance = from the farthest query key back to its
  pair's value. Chance is 1 / n_values; a model that only knows "one of the values shown, not
  yet asked" scores 1 / pairs .. 1 / (pairs - queries + 1) without any recall.
- passkey: a marker K, the value v, filler, then the question marker Q as the last token;
  scored: the answer v at Q. distance d = position(Q) - position(v), uniform in
  1 .. length - 2 unless fixed.
- length: any task generated at another length (`task.at_length(n)`, same knobs).

Same task, batch size and seed: the same batch, on any machine (a torch.Generator on the CPU).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

TASKS = ("copy", "recall", "passkey")


@dataclass
class TaskBatch:
    ids: torch.Tensor  # (B, T) token ids
    targets: torch.Tensor  # (B, T) what the model must output there (meaningful where mask)
    mask: torch.Tensor  # (B, T) bool: the scored positions, exactly the determined ones
    source: torch.Tensor  # (B, T) the position the answer is read from; -1 where not scored
    distance: torch.Tensor  # (B,) how far back the answer lies (per task: see module doc)

    def to(self, device) -> "TaskBatch":
        return TaskBatch(*(t.to(device) for t in (self.ids, self.targets, self.mask,
                                                    self.source, self.distance)))


def _positive(name, value, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}.")


def _next_token_targets(ids: torch.Tensor) -> torch.Tensor:
    targets = torch.zeros_like(ids)
    targets[:, :-1] = ids[:, 1:]
    return targets


@dataclass(frozen=True)
class CopyTask:
    length: int = 48
    vocab: int = 64  # no ambiguity at any size: the filler never holds a segment token
    min_segment: int = 6
    max_segment: int = 12
    name = "copy"

    def __post_init__(self):
        for field in ("length", "vocab"):
            _positive(field, getattr(self, field))
        _positive("min_segment", self.min_segment, 2)
        _positive("max_segment", self.max_segment, 2)
        if self.min_segment > self.max_segment:
            raise ValueError(f"min_segment={self.min_segment} is larger than max_segment="
                             f"{self.max_segment}.")
        if 2 * self.max_segment > self.length:
            raise ValueError(f"a segment of up to {self.max_segment} tokens and its copy need "
                             f"{2 * self.max_segment} tokens, more than length={self.length}; "
                             f"use a longer length or a shorter max_segment.")
        if self.vocab < 2 * self.max_segment:
            raise ValueError(f"vocab={self.vocab} is too small: the segment's {self.max_segment} "
                             f"distinct tokens and a filler that never repeats them need at least "
                             f"{2 * self.max_segment} token ids.")

    @property
    def vocab_size(self) -> int:
        return self.vocab

    @property
    def chance(self) -> float:
        return 1.0 / self.vocab

    def generate(self, batch: int, seed: int = 0) -> TaskBatch:
        g = torch.Generator().manual_seed(seed)
        t, top = self.length, self.max_segment
        seg = torch.randint(self.min_segment, top + 1, (batch,), generator=g)  # (B,)
        a = (torch.rand(batch, generator=g) * (t - 2 * seg + 1)).long()  # segment start
        b = a + seg + (torch.rand(batch, generator=g) * (t - a - 2 * seg + 1)).long()  # copy start
        perm = torch.rand(batch, self.vocab, generator=g).argsort(dim=1)  # (B, V) distinct ids
        segment = perm[:, :top]  # (B, max_segment): the first `seg` are the segment
        filler_index = top + torch.randint(0, self.vocab - top, (batch, t), generator=g)
        ids = perm.gather(1, filler_index)  # (B, T): never a segment token
        pos = torch.arange(t)[None, :]
        for start in (a, b):
            offset = pos - start[:, None]  # (B, T) index into the segment
            inside = (offset >= 0) & (offset < seg[:, None])
            ids = torch.where(inside, segment.gather(1, offset.clamp(0, top - 1)), ids)
        mask = (pos >= b[:, None]) & (pos < (b + seg - 1)[:, None])  # next token determined
        distance = b - a
        source = torch.where(mask, pos - distance[:, None] + 1, torch.full_like(ids, -1))
        return TaskBatch(ids, _next_token_targets(ids), mask, source, distance)

    def at_length(self, length: int) -> "CopyTask":
        return dataclasses.replace(self, length=length)

    def to_dict(self) -> dict:
        return {"task": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class RecallTask:
    """Token 0 is filler; keys are ids 1 .. n_keys, values the ids after them."""
    length: int = 24
    vocab: int = 17  # 8 keys, 8 values
    pairs: int = 4
    # 2 of the 4 keys: with every key queried, exclusion alone (the last query's value is the
    # one not yet asked) scores (1/4 + 1/3 + 1/2 + 1) / 4 = 52 %, above the 50 % "learned"
    # mark without any recall; with 2 it scores at most (1/4 + 1/3) / 2 = 29 %.
    queries: int = 2
    name = "recall"

    def __post_init__(self):
        for field in ("length", "pairs", "queries"):
            _positive(field, getattr(self, field))
        _positive("vocab", self.vocab, 3)
        if self.pairs > self.n_keys:
            raise ValueError(f"{self.pairs} pairs need {self.pairs} distinct keys, but vocab="
                             f"{self.vocab} has {self.n_keys} key ids ((vocab - 1) // 2); use "
                             f"vocab >= {2 * self.pairs + 1} or fewer pairs.")
        if self.queries > self.pairs:
            raise ValueError(f"queries={self.queries} is more than pairs={self.pairs}: each query "
                             f"asks for a different key.")
        if 2 * (self.pairs + self.queries) > self.length:
            raise ValueError(f"{self.pairs} pairs and {self.queries} queries take "
                             f"{2 * (self.pairs + self.queries)} tokens, more than length="
                             f"{self.length}; use a longer length or fewer pairs.")

    @property
    def n_keys(self) -> int:
        return (self.vocab - 1) // 2

    @property
    def n_values(self) -> int:
        return self.vocab - 1 - self.n_keys

    @property
    def vocab_size(self) -> int:
        return self.vocab

    @property
    def chance(self) -> float:
        return 1.0 / self.n_values

    def generate(self, batch: int, seed: int = 0) -> TaskBatch:
        g = torch.Generator().manual_seed(seed)
        k, q, t = self.pairs, self.queries, self.length
        keys = 1 + torch.rand(batch, self.n_keys, generator=g).argsort(dim=1)[:, :k]  # (B, k)
        values = 1 + self.n_keys + torch.randint(0, self.n_values, (batch, k), generator=g)
        asked = torch.rand(batch, k, generator=g).argsort(dim=1)[:, :q]  # (B, q) pair indices
        ids = torch.zeros(batch, t, dtype=torch.long)
        ids[:, 0:2 * k:2], ids[:, 1:2 * k:2] = keys, values
        start = t - 2 * q
        ids[:, start::2], ids[:, start + 1::2] = keys.gather(1, asked), values.gather(1, asked)
        mask = torch.zeros(batch, t, dtype=torch.bool)
        mask[:, start::2] = True
        source = torch.full_like(ids, -1)
        source[:, start::2] = 2 * asked + 1  # the pair's value
        pos = torch.arange(t)[None, :]
        distance = (pos - source).masked_fill(~mask, 0).amax(dim=1)  # the farthest query
        return TaskBatch(ids, _next_token_targets(ids), mask, source, distance)

    def at_length(self, length: int) -> "RecallTask":
        return dataclasses.replace(self, length=length)

    def with_pairs(self, pairs: int) -> "RecallTask":
        return dataclasses.replace(self, pairs=pairs, queries=min(self.queries, pairs))

    def to_dict(self) -> dict:
        return {"task": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class PasskeyTask:
    """Ids: 0 the key marker K, 1 the question marker Q, then `fillers` filler ids, then
    `values` value ids."""
    length: int = 64
    values: int = 32
    fillers: int = 16
    name = "passkey"
    KEY, QUESTION = 0, 1

    def __post_init__(self):
        _positive("length", self.length, 3)
        _positive("values", self.values, 2)
        _positive("fillers", self.fillers)

    @property
    def vocab_size(self) -> int:
        return 2 + self.fillers + self.values

    @property
    def chance(self) -> float:
        return 1.0 / self.values

    @property
    def max_distance(self) -> int:
        return self.length - 2  # K, v, ..., Q: d + 2 tokens at least

    def check_distance(self, distance: int) -> None:
        if not isinstance(distance, int) or isinstance(distance, bool) or distance < 1:
            raise ValueError(f"distance={distance!r} must be an integer >= 1.")
        if distance > self.max_distance:
            raise ValueError(f"distance={distance} is longer than the context: the key, its "
                             f"value and the question need distance + 2 = {distance + 2} tokens, "
                             f"and length={self.length} (at most distance {self.max_distance}).")

    def generate(self, batch: int, seed: int = 0, distance: int | None = None,
                 remove_key: bool = False) -> TaskBatch:
        """distance fixes d for every row; remove_key puts filler where K and v were (the
        same sequence otherwise: the question has nothing to find)."""
        if distance is not None:
            self.check_distance(distance)
        g = torch.Generator().manual_seed(seed)
        t = self.length
        ids = 2 + torch.randint(0, self.fillers, (batch, t), generator=g)
        if distance is None:
            d = torch.randint(1, self.max_distance + 1, (batch,), generator=g)
        else:
            d = torch.full((batch,), distance, dtype=torch.long)
        value = 2 + self.fillers + torch.randint(0, self.values, (batch,), generator=g)
        rows = torch.arange(batch)
        value_pos = t - 1 - d
        if not remove_key:
            ids[rows, value_pos - 1] = self.KEY
            ids[rows, value_pos] = value
        ids[:, -1] = self.QUESTION
        targets = torch.zeros_like(ids)
        targets[:, -1] = value
        mask = torch.zeros(batch, t, dtype=torch.bool)
        mask[:, -1] = True
        source = torch.full_like(ids, -1)
        source[:, -1] = value_pos
        return TaskBatch(ids, targets, mask, source, d)

    def at_length(self, length: int) -> "PasskeyTask":
        return dataclasses.replace(self, length=length)

    def to_dict(self) -> dict:
        return {"task": self.name, **dataclasses.asdict(self)}


TASK_CLASSES = {"copy": CopyTask, "recall": RecallTask, "passkey": PasskeyTask}


def make_task(name: str, **knobs):
    """'copy' | 'recall' | 'passkey' with its knobs (None = the default); ValueError naming
    the fix for an unknown task, an unknown knob or an impossible combination."""
    if name not in TASK_CLASSES:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}.")
    cls = TASK_CLASSES[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in knobs.items() if v is not None}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise ValueError(f"task {name} has no knob {', '.join(unknown)}; its knobs are "
                         f"{', '.join(sorted(fields))}.")
    return cls(**given)


def task_from_dict(values: dict):
    values = dict(values)
    return make_task(values.pop("task"), **values)


# ---------------------------------------------------------------- scoring
def accuracy(logits: torch.Tensor, batch: TaskBatch) -> float:
    """Fraction of scored positions whose argmax is the target."""
    right = logits.argmax(dim=-1) == batch.targets
    return float(right[batch.mask].float().mean())


def source_attention(attn: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """attn (B, H, T, T) -> (H,) float64: mean over the scored queries i of p(i -> source[i]).
    For copy and recall this is analysis/heads.py's induction score (attention to the token
    right after the earlier occurrence of the current token) on the task batch (with mask =
    the second copy of [r, r] and source i - L + 1 it is heads.induction_score exactly); for
    passkey, attention from the question to the value."""
    rows, queries = batch.mask.nonzero(as_tuple=True)
    keys = batch.source[rows, queries]
    picked = attn.double()[rows, :, queries, keys]  # (N, H)
    return picked.mean(dim=0)
