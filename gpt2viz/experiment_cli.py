"""`python -m gpt2viz experiment length|window|receptive|gqa`: the experiments on presets.

Scripts rely on the JSON (the last stdout line with --json; progress goes to stderr). A
variant is a preset name, optionally with overrides: `gpt2:position=alibi,window=16`.
Trained weights come from the checkpoint cache, and are trained (and cached) when missing.
"""
from __future__ import annotations

import json
import sys

import torch

from .config import PRESETS, ModelConfig, preset
from .corpus import Corpus
from .model import GPT2
from .config import TrainSettings
from .train import train

DEFAULT_WINDOWS = [4, 8, 16, 32, 64, 128]


def add_experiment_arguments(parser) -> None:
    kinds = parser.add_subparsers(dest="experiment", required=True)
    variant_help = ("a preset (" + ", ".join(PRESETS) + "), optionally with overrides, "
                    "e.g. gpt2:position=alibi,window=16")
    length = kinds.add_parser("length", help="loss by position up to max-len (past the training length)")
    length.add_argument("--variant", action="append", required=True, help=variant_help + "; repeat to compare")
    length.add_argument("--max-len", type=int, default=1024, help="block length evaluated (default 1024)")
    length.add_argument("--rope-base", type=float, help="RoPE base at inference (RoPE variants only)")
    window = kinds.add_parser("window", help="loss with another window and attention sinks at inference")
    window.add_argument("--variant", action="append", required=True, help=variant_help + "; repeat to compare")
    window.add_argument("--windows", type=int, nargs="+", default=DEFAULT_WINDOWS)
    window.add_argument("--sinks", type=int, nargs="+", default=[0, 4])
    receptive = kinds.add_parser("receptive", help="which inputs reach position P after each layer")
    receptive.add_argument("--variant", required=True, help=variant_help)
    receptive.add_argument("--weights", choices=["random", "trained"], default="trained")
    receptive.add_argument("--position", type=int, default=100)
    gqa = kinds.add_parser("gqa", help="mean-pool K/V heads, then uptrain: loss against KV bytes")
    gqa.add_argument("--variant", default="gpt2", help=variant_help + " (an MHA model)")
    gqa.add_argument("--uptrain-steps", type=int,
                     help="steps of training after pooling (default 5%% of the original budget)")
    for sub in (length, window, receptive, gqa):
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--json", action="store_true", help="print the result as JSON on the last line")


def variant_config(spec: str) -> ModelConfig:
    """'rope' or 'gpt2:position=alibi,window=16' -> ModelConfig (ValueError with the fix)."""
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


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def trained_model(spec: str, corpus: Corpus, settings: TrainSettings, seed: int):
    config = variant_config(spec)

    def report(p):
        if p.step % 20 == 0 or p.step == p.steps:
            progress(f"training {spec}: step {p.step}/{p.steps} loss {p.loss:.3f}")

    result = train(config, corpus, settings, seed=seed, callback=report)
    progress(f"{spec}: {'from the checkpoint cache' if result.from_cache else 'trained'}, "
             f"validation loss {result.val_loss:.3f}")
    return result


def run_experiment(args) -> int:
    from . import experiments as ex

    corpus, settings = Corpus.default(), TrainSettings()
    if args.experiment == "length":
        curves = {}
        for spec in args.variant:
            model = trained_model(spec, corpus, settings, args.seed).model
            if args.rope_base is not None:
                model = ex.reconfigured(model, rope_base=args.rope_base)
            curves[spec] = ex.length_curve(model, corpus.val, settings.block_size, args.max_len)
        result = {"train_len": settings.block_size, "max_len": args.max_len,
                  "variants": {v: c.to_dict() for v, c in curves.items()}}
        summary = [f"{v}: " + ", ".join(f"{lo}-{hi - 1}: {_nats(ex.loss_between(c, lo, hi))}"
                                        for lo, hi in _spans(settings.block_size, args.max_len))
                   for v, c in curves.items()]
    elif args.experiment == "window":
        ex.check_window_sinks(args.windows, args.sinks, settings.block_size)  # before any training
        result = {"variants": {}}
        for spec in args.variant:
            model = trained_model(spec, corpus, settings, args.seed).model
            result["variants"][spec] = ex.window_losses(model, corpus.val, settings.block_size,
                                                        args.windows, args.sinks)
        summary = [f"{v}: full {r['full_loss']:.3f}; " + ", ".join(
            f"w={row['window']} s={row['sinks']}: {row['loss']:.3f}" for row in r["rows"])
            for v, r in result["variants"].items()]
    elif args.experiment == "receptive":
        config = variant_config(args.variant).replace(vocab_size=corpus.vocab.size)
        ex.check_position(config, args.position, len(corpus.val))  # before any training
        if args.weights == "trained":
            model = trained_model(args.variant, corpus, settings, args.seed).model
        else:
            torch.manual_seed(args.seed)
            model = GPT2(config).eval()
        influence = ex.receptive_field(model, corpus.val, args.position)
        result = {"position": args.position, "window": config.window, "reach": ex.reach(influence),
                  "theory": ex.theory_reach(config.n_layer, config.window, args.position, config.sinks)}
        summary = [f"reach by layer {result['reach']}, theory l*(w-1): {result['theory']}"]
        if config.window is None:
            summary.append(f"{args.variant} has no window: every layer sees all {args.position} "
                           f"earlier positions.")
    else:
        trained = trained_model(args.variant, corpus, settings, args.seed)
        if trained.model.config.n_kv_head != trained.model.config.n_head:
            progress(f"note: {args.variant} already shares K/V heads; pooling starts from its "
                     f"{trained.model.config.n_kv_head} kv heads.")
        steps = args.uptrain_steps if args.uptrain_steps is not None else max(1, settings.steps // 20)
        seconds_per_step = trained.history.seconds / max(1, len(trained.history.steps))

        def report(kv, p):
            if p.step % 5 == 0 or p.step == p.steps:
                progress(f"uptraining n_kv_head={kv}: step {p.step}/{p.steps} loss {p.loss:.3f}")

        result = ex.gqa_frontier(trained.model, corpus, settings, steps, seconds_per_step,
                                 args.seed, report)
        for row in result["rows"]:
            row["scratch_loss"] = ex.scratch_loss(trained.model.config.replace(n_kv_head=row["n_kv_head"]),
                                                  corpus, settings, args.seed)
        result["uptrain_steps"] = steps
        summary = [f"MHA {result['base_loss']:.3f}"] + [
            f"n_kv_head {r['n_kv_head']}: {r['kv_bytes_per_token']} B/token, pooled {r['pooled_loss']:.3f}, "
            f"uptrained {_nats(r['uptrained_loss'])}"
            for r in result["rows"]]
    print("\n".join(summary))
    if args.json:
        print(json.dumps(result))
    return 0


def _spans(train_len: int, max_len: int) -> list[tuple[int, int]]:
    """[0, L), [L, 2L), [2L, 4L), ... up to max_len: where the summary averages."""
    spans, lo, hi = [], 0, train_len
    while lo < max_len:
        spans.append((lo, min(hi, max_len)))
        lo, hi = hi, hi * 2
    return spans


def _nats(loss: float | None) -> str:
    return "n/a" if loss is None else f"{loss:.3f}"
