"""One specification per experiment, run by both front ends: `experiment KIND` on the command
line (cli/experiment.py) and the Experiments page (pages/experiments.py) take an experiment's
defaults, its measurement and its table from here, so the two cannot drift apart.

run(model, scored, **parameters) -> the result (the JSON the command line prints);
rows(result, scored, **parameters) -> the table the page shows and the command line prints.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from gpt2viz.analysis import experiments as ex
from gpt2viz.analysis.extension import extension_losses
from gpt2viz.core.config import ROPE_SCALINGS, TrainSettings
from gpt2viz.core.model import GPT2
from gpt2viz.text.corpus import Corpus


@dataclass(frozen=True)
class Scored:
    """What an experiment reads besides the model: the token ids it scores, the length the
    model was trained on (the small models' block size, a pretrained model's context) and,
    for the small models, the corpus and settings they were trained with (uptraining goes on
    with them)."""
    ids: torch.Tensor
    train_len: int
    corpus: Corpus | None = None
    settings: TrainSettings | None = None
    seed: int = 0


@dataclass(frozen=True)
class Experiment:
    defaults: dict
    run: Callable[..., object]
    rows: Callable[..., list[dict]]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# ------------------------------------------------------------------ length generalization
LENGTH_FACTOR = 8  # blocks of 8 x the training length unless told


def _length_run(model: GPT2, scored: Scored, max_len: int | None = None, rope_base: float = 0.0) -> ex.LengthCurve:
    """rope_base: another base at inference (0: as trained)."""
    model = ex.reconfigured(model, rope_base=rope_base) if rope_base else model
    return ex.length_curve(model, scored.ids, scored.train_len, max_len or LENGTH_FACTOR * scored.train_len)


def _length_rows(curve: ex.LengthCurve, scored: Scored, max_len: int | None = None, **_) -> list[dict]:
    """1x (the training length), 2x and the last half of the block: the whole block as
    context against the context cut to the training length."""
    n, row = scored.train_len, {"position table ends at": str(curve.limit or "—")}
    max_len = max_len or LENGTH_FACTOR * n
    for lo, hi, label in ((0, n, "1×"), (n, 2 * n, "2×"), (max_len // 2, max_len, f"{max_len // n}×")):
        row[f"{label}: whole block"] = _rounded(ex.loss_between(curve, lo, hi))
        row[f"{label}: context ≤ {n}"] = _rounded(ex.loss_between(curve, lo, hi, "sliding_loss"))
    return [row]


LENGTH = Experiment({"max_len": None, "rope_base": 0.0}, _length_run, _length_rows)


# ------------------------------------------------------------------ window and sinks
def _window_run(model: GPT2, scored: Scored, windows, sinks) -> dict:
    return ex.window_losses(model, scored.ids, scored.train_len, list(windows), list(sinks))


def _window_rows(result: dict, scored: Scored, windows, sinks) -> list[dict]:
    return [{"window": row["window"], "sinks": row["sinks"], "loss": round(row["loss"], 3),
             "vs full attention": round(row["loss"] - result["full_loss"], 3)} for row in result["rows"]]


WINDOW = Experiment({"windows": (4, 8, 16, 32, 64, 128), "sinks": (0, 4)},
                    _window_run, _window_rows)


# ------------------------------------------------------------------ receptive field
def _receptive_run(model: GPT2, scored: Scored, position: int) -> dict:
    cfg = model.config
    influence = ex.receptive_field(model, scored.ids, position)
    return {"position": position, "window": cfg.window, "reach": ex.reach(influence),
            "theory": ex.theory_reach(cfg.n_layer, cfg.window, position, cfg.sinks),
            "influence": influence}  # (n_layer, position + 1) bool: the page's map


def _receptive_rows(result: dict, scored: Scored, position: int) -> list[dict]:
    return [{"layer": layer, "measured reach": measured, "theory": theory}
            for layer, (measured, theory) in enumerate(zip(result["reach"], result["theory"]), 1)]


RECEPTIVE = Experiment({"position": 100}, _receptive_run, _receptive_rows)


# ------------------------------------------------------------------ GQA frontier
def uptrain_steps(settings: TrainSettings) -> int:
    """About 5 % of the original budget (Ainslie et al. 2023)."""
    return max(1, settings.steps // 20)


def _gqa_run(model: GPT2, scored: Scored, uptrain_steps: int = 0, seconds_per_step: float = 0.0,
             on_step=None) -> dict:
    """A small model: losses on its validation blocks, uptrained on its corpus; a model
    without a corpus (pretrained, a folder): pooled only, scored on the text."""
    if scored.corpus is None:
        return ex.pooled_kv_losses(model, ex.text_loss(scored.ids))
    result = ex.gqa_frontier(model, scored.corpus, scored.settings, uptrain_steps,
                             seconds_per_step, scored.seed, on_step)
    for row in result["rows"]:  # beside the model trained from scratch, where it is cached
        row["scratch_loss"] = ex.scratch_loss(model.config.replace(n_kv_head=row["n_kv_head"]),
                                              scored.corpus, scored.settings, scored.seed)
    return {**result, "uptrain_steps": uptrain_steps}


def _gqa_rows(result: dict, scored: Scored, uptrain_steps: int = 0, **_) -> list[dict]:
    return [{"n_kv_head": r["n_kv_head"], "KV bytes / token": r["kv_bytes_per_token"],
             "pooled": round(r["pooled_loss"], 3),
             f"uptrained ({uptrain_steps} steps)": _rounded(r["uptrained_loss"]),
             "from scratch": _rounded(r.get("scratch_loss"))} for r in result["rows"]]


GQA = Experiment({}, _gqa_run, _gqa_rows)  # its steps default: uptrain_steps(settings)


# ------------------------------------------------------------------ StreamingLLM
def streaming_label(row: dict) -> str:
    """'full attention', 'window 256' or 'window 256 + 4 sinks' for a streaming row."""
    if row["window"] is None:
        return "full attention"
    sinks = row.get("sinks") or 0
    return f"window {row['window']}" + (f" + {sinks} sink{'s' if sinks != 1 else ''}" if sinks else "")


def _streaming_run(model: GPT2, scored: Scored, tokens: int, windows, sinks, progress=None) -> list[dict]:
    return ex.streaming_losses(model, scored.ids, tokens, list(windows), list(sinks), progress)


def _streaming_rows(rows: list[dict], scored: Scored, tokens: int, windows, sinks) -> list[dict]:
    past = f"minus full, positions ≥ {windows[0]}" if len(windows) == 1 else "minus full, positions ≥ w"
    return [{"setting": streaming_label(r), "loss": round(r["loss"], 3), "perplexity": round(r["ppl"], 1),
             past: _rounded(r.get("cost_past_window")),
             **{f"positions {k}": round(v, 3) for k, v in r["buckets"].items()
                if v is not None}} for r in rows]  # buckets past the text: left out


STREAMING = Experiment({"tokens": 2048, "windows": (256,), "sinks": (0, 4)},
                       _streaming_run, _streaming_rows)


# ------------------------------------------------------------------ context extension
def _extend_run(model: GPT2, scored: Scored, methods, factor: float, tokens: int | None = None) -> dict:
    return extension_losses(model, scored.ids, scored.train_len, list(methods), factor,
                            tokens or int(factor * scored.train_len))


def _extend_rows(result: dict, scored: Scored, **_) -> list[dict]:
    return [{"method": r["method"], "loss": round(r["loss"], 3),
             "attention factor": round(r["attention_factor"], 4),
             **{f"positions {k}": round(v, 3) for k, v in r["buckets"].items()}}
            for r in result["rows"]]


EXTEND = Experiment({"methods": ROPE_SCALINGS, "factor": 8}, _extend_run, _extend_rows)

SPECS = {"length": LENGTH, "window": WINDOW, "receptive": RECEPTIVE, "gqa": GQA,
         "streaming": STREAMING, "extend": EXTEND}
