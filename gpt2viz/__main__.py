"""Command line: python -m gpt2viz train ... | bench ... | experiment ..."""
from __future__ import annotations

import argparse
import json
import sys

from gpt2viz.core.config import PRESETS, preset
from gpt2viz.weights.pretrained import MissingPackageError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpt2viz")
    commands = parser.add_subparsers(dest="command", required=True)

    train_cmd = commands.add_parser("train", help="train one variant, or the whole matrix, on a corpus")
    what = train_cmd.add_mutually_exclusive_group(required=True)
    what.add_argument("--variant", choices=list(PRESETS))
    what.add_argument("--matrix", action="store_true",
                      help="every position scheme x {MHA, GQA, MQA} x {full, window 16} on the "
                           "gpt2 preset's body; exit 1 if any of them did not learn")
    train_cmd.add_argument("--steps", type=int, help="optimizer steps (default 240)")
    train_cmd.add_argument("--seconds", type=float, help="stop after this many seconds")
    train_cmd.add_argument("--corpus", help="a UTF-8 text file (default: pydoc_data.topics)")
    train_cmd.add_argument("--seed", type=int, default=0)
    train_cmd.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                           help="bf16: forward and loss under bf16 autocast")
    train_cmd.add_argument("--no-cache", action="store_true", help="train even if cached")

    from gpt2viz.cli.bench import add_bench_arguments
    add_bench_arguments(commands.add_parser("bench", help="measure attention and models"))
    from gpt2viz.cli.experiment import add_experiment_arguments
    add_experiment_arguments(commands.add_parser("experiment", help="what each alteration buys and costs"))

    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return run_train(args)
        if args.command == "experiment":
            from gpt2viz.cli.experiment import run_experiment
            return run_experiment(args)
        from gpt2viz.cli.bench import run_bench
        return run_bench(args)
    except (ValueError, MemoryError, MissingPackageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was saved.", file=sys.stderr)
        return 130


def run_train(args) -> int:
    from dataclasses import replace

    from gpt2viz.core.config import TrainSettings
    from gpt2viz.text.corpus import Corpus, read_text
    from gpt2viz.training.train import train

    corpus = Corpus.from_text(read_text(args.corpus), args.corpus) if args.corpus else Corpus.default()
    settings = TrainSettings(precision=args.precision)
    if args.steps is not None:
        settings = replace(settings, steps=args.steps)
    if args.seconds is not None:
        settings = replace(settings, max_seconds=args.seconds)

    def report(p):
        if p.step % 10 == 0 or p.step == p.steps or p.val_loss is not None:
            val = f" val {p.val_loss:.3f}" if p.val_loss is not None else ""
            print(f"step {p.step}/{p.steps} loss {p.loss:.3f}{val} {p.tokens_per_second:,.0f} tok/s "
                  f"~{p.seconds_left:.0f}s left", file=sys.stderr, flush=True)

    if args.matrix:
        return run_matrix(corpus, settings, args)
    result = train(preset(args.variant), corpus, settings, seed=args.seed, callback=report,
                   use_cache=not args.no_cache)
    h = result.history
    print(json.dumps({"variant": args.variant, "params": result.model.num_params(),
                      "seconds": round(h.seconds, 2), "steps": h.steps[-1] if h.steps else 0,
                      "val_loss": round(result.val_loss, 4), "unigram_loss": round(h.unigram_loss, 4),
                      "from_cache": result.from_cache, "stopped_early": h.stopped_early,
                      "corpus": result.corpus_name}))
    return 0


def run_matrix(corpus, settings, args) -> int:
    """A Markdown table on stdout, then the rows as JSON on the last line."""
    from gpt2viz.training.train import training_matrix

    def report(row):
        print(f"{row['position']:>10} {row['attention']} window {row['window'] or 'full'}: val "
              f"{row['val_loss']:.3f} in {row['seconds']:.0f} s"
              f"{' (cached)' if row['from_cache'] else ''}", file=sys.stderr, flush=True)

    rows = training_matrix(preset("gpt2"), corpus, settings, seed=args.seed,
                           use_cache=not args.no_cache, on_row=report)
    print("| position | attention | window | val loss | unigram | seconds | learned |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['position']} | {r['attention']} | {r['window'] or 'full'} | "
              f"{r['val_loss']:.3f} | {r['unigram_loss']:.3f} | {r['seconds']:.0f} | "
              f"{'no: ' + r['problem'] if r['problem'] else 'yes'} |")
    print(json.dumps(rows))
    failed = [r for r in rows if r["problem"]]
    for r in failed:
        print(f"error: {r['position']} {r['attention']} window {r['window'] or 'full'}: "
              f"{r['problem']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
