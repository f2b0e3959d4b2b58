"""`python -m gpt2viz experiment tasks --task copy|recall|passkey --variant V ...`: train each
variant on a synthetic task (gpt2viz.analysis.tasks) and report what it learned.

Every override (--n-layer, --d-model, --window, --no-mlp, ...) applies to every variant named;
a variant is a preset, optionally with overrides (`gpt2:position=alibi`). All knobs are checked
before anything trains; a bad one is one `error: ...` line (exit 2). Progress goes to stderr;
with --json the last stdout line is {"task", "settings", "rows": [{"variant", "config",
"seconds", "steps", "learned_at_step", "chance", "accuracy", "by": {...}, ...}]}.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict

from gpt2viz.analysis.task_models import (
    LENGTHS,
    TaskSettings,
    accuracy_by_distance,
    accuracy_by_length,
    accuracy_by_offset,
    accuracy_by_pairs,
    default_distances,
    default_settings,
    task_config,
    train_task,
)
from gpt2viz.analysis.tasks import TASKS, make_task
from gpt2viz.cli.progress import ProgressBar, say
from gpt2viz.core.config import POSITIONS, PRESETS, variant_config


def add_tasks_arguments(kinds) -> None:
    tasks = kinds.add_parser("tasks", help="train variants on a synthetic task (copy / induction, "
                             "associative recall, passkey): accuracy, by distance, length, pairs")
    tasks.add_argument("--task", choices=TASKS, required=True)
    tasks.add_argument("--variant", action="append", required=True,
                       help="a preset (" + ", ".join(PRESETS) + "), optionally with overrides "
                            "(gpt2:position=alibi); repeat to compare")
    tasks.add_argument("--n-layer", type=int)
    tasks.add_argument("--n-head", type=int)
    tasks.add_argument("--d-model", type=int)
    tasks.add_argument("--window", help="keys each query sees, or 'none' for full attention")
    tasks.add_argument("--n-kv-head", type=int)
    tasks.add_argument("--position", choices=POSITIONS)
    tasks.add_argument("--no-mlp", action="store_true", help="attention-only blocks (mlp='none')")
    tasks.add_argument("--train-length", type=int, help="sequence length trained on")
    tasks.add_argument("--vocab", type=int, help="copy / recall: the task's vocabulary size")
    tasks.add_argument("--pairs", type=int, help="recall: key-value pairs")
    tasks.add_argument("--queries", type=int, help="recall: keys asked for")
    tasks.add_argument("--distance", type=int, nargs="+",
                       help="passkey: distances to score (default 1, 2, 4, ... up to length - 2)")
    tasks.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS),
                       help="multiples of the trained length to score (default 1 2 4 8)")
    tasks.add_argument("--steps", type=int, help=f"the step budget (default {TaskSettings.steps}; "
                       f"training stops earlier at 99 %% accuracy or on a plateau)")
    tasks.add_argument("--seconds", type=float, help="stop each variant's training after this long")
    tasks.add_argument("--seed", type=int, default=0)
    tasks.add_argument("--no-cache", action="store_true", help="train even if cached")
    tasks.add_argument("--json", action="store_true", help="print the result as JSON on the last line")


def _window(text: str | None):
    if text is None:
        return {}
    if text.strip().lower() in ("none", "full"):
        return {"window": None}
    try:
        return {"window": int(text)}
    except ValueError:
        raise ValueError(f"--window {text!r}: give a number of keys (e.g. 16) or 'none'.") from None


def build(args):
    """(task, settings, [(variant, config)]): everything checked, nothing trained."""
    knobs = {"length": args.train_length, "vocab": args.vocab, "pairs": args.pairs,
             "queries": args.queries}
    if args.task != "recall":
        for name in ("pairs", "queries"):
            if knobs.pop(name) is not None:
                raise ValueError(f"--{name} is a recall knob; task {args.task} has none.")
    if args.task == "passkey":
        if knobs.pop("vocab") is not None:
            raise ValueError("--vocab: passkey's vocabulary is its markers, fillers and values; "
                             "it has no vocab knob.")
    elif args.distance:
        raise ValueError("--distance is a passkey knob.")
    task = make_task(args.task, **knobs)
    if args.distance:
        for d in args.distance:
            task.check_distance(d)
    for m in args.lengths:
        if m < 1:
            raise ValueError(f"--lengths {m}: give multiples >= 1 of the trained length.")
    settings = default_settings(task, steps=args.steps, max_seconds=args.seconds)
    overrides = {"n_layer": args.n_layer, "n_head": args.n_head, "d_model": args.d_model,
                 "n_kv_head": args.n_kv_head, "position": args.position,
                 "mlp": "none" if args.no_mlp else None, **_window(args.window)}
    variants = []
    for spec in args.variant:
        base = variant_config(spec)
        config = task_config(base, task, **{k: v for k, v in overrides.items() if k != "window"})
        if "window" in overrides:
            config = config.replace(window=overrides["window"],
                                    sinks=config.sinks if overrides["window"] else 0)
        variants.append((spec, config))
    return task, settings, variants


def run_tasks(args) -> int:
    task, settings, variants = build(args)
    rows = []
    for spec, config in variants:
        bar = ProgressBar(f"{task.name} {spec}")

        def report(p, bar=bar):
            bar(p.step, p.steps, f"loss {p.loss:.3f}" + (f", accuracy {p.accuracy:.3f}" if p.accuracy is not None else ""))

        trained = train_task(config, task, settings, args.seed, report, use_cache=not args.no_cache)
        rows.append(result_row(spec, trained, args))
        r = rows[-1]
        say(f"{spec}: {'from the checkpoint cache' if r['from_cache'] else 'trained'} "
            f"in {r['seconds']:.1f} s, {r['steps']} steps, accuracy {r['accuracy']:.3f}")
    result = {"task": task.name,
              "settings": {"task": task.to_dict(), "train": asdict(settings), "seed": args.seed,
                           "lengths": args.lengths},
              "rows": rows}
    for r in rows:
        print(f"{r['variant']}: accuracy {r['accuracy']:.3f} (chance {r['chance']:.3f}), learned at "
              f"step {r['learned_at_step']}, {r['steps']} steps in {r['seconds']:.1f} s; "
              + "; ".join(f"by {k}: " + ", ".join(f"{v}: {'refused' if a is None else f'{a:.2f}'}"
                                                  for v, a in by.items())
                          for k, by in r["by"].items()))
    if args.json:
        print(json.dumps(result))
    return 0


def result_row(spec: str, trained, args) -> dict:
    model, task, h = trained.model, trained.task, trained.history
    by_length, refused = accuracy_by_length(model, task, args.seed, args.lengths)
    by = {"length": by_length}
    if task.name == "passkey":
        by["distance"] = accuracy_by_distance(model, task, args.distance or default_distances(task),
                                              args.seed)
    elif task.name == "copy":
        by["distance"] = accuracy_by_offset(model, task, args.seed)
    else:
        by["pairs"] = accuracy_by_pairs(model, task, args.seed)
    last = h.heads[-1] if h.heads else {"induction": [], "prev_token": []}
    top = max(((layer, head, s) for layer, scores in enumerate(last["induction"])
               for head, s in enumerate(scores)), key=lambda x: x[2], default=None)
    return {"variant": spec, "config": model.config.to_dict(), "seconds": round(h.seconds, 2),
            "steps": h.steps[-1] if h.steps else 0, "learned_at_step": h.learned_at_step,
            "chance": task.chance, "accuracy": h.final_accuracy, "by": by, "refused": refused,
            "stopped": h.stopped, "from_cache": trained.from_cache, "threads": h.threads,
            "top_induction_head": None if top is None else
            {"layer": top[0], "head": top[1], "score": top[2]},
            "eval_steps": h.eval_steps, "eval_accuracy": [round(a, 4) for a in h.accuracy],
            # the strongest head of each layer at each evaluation: the induction head's birth
            "induction_max_by_layer": [[max(layer) for layer in e["induction"]] for e in h.heads],
            "prev_token_max_by_layer": [[max(layer) for layer in e["prev_token"]] for e in h.heads]}


