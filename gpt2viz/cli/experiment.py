"""`python -m gpt2viz experiment length|window|receptive|gqa|streaming|heads|ablate|extend|tasks`.

Scripts rely on the JSON (the last stdout line with --json; progress goes to stderr). A
variant is a preset name, optionally with overrides: `gpt2:position=alibi,window=16`, a
real pretrained model (`smollm2-135m`, gpt2viz.weights.pretrained), or `path:DIR`, a local
folder (a Hugging Face GPT-2 / Llama / Mistral / Qwen2 folder, or one of our checkpoints). Trained weights come from the
checkpoint cache, and are trained (and cached) when missing. `--text FILE` scores another
text (default: the validation split of the default corpus).
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch

from gpt2viz.analysis.heads import head_stats, induction_ids, text_tokens
from gpt2viz.analysis.specs import LENGTH_FACTOR, SPECS, Scored, uptrain_steps
from gpt2viz.cli.progress import ProgressBar, say
from gpt2viz.core.config import PRESETS, TrainSettings, variant_config
from gpt2viz.core.model import GPT2
from gpt2viz.text.corpus import Corpus, Vocabulary, default_text, read_text, validation_text
from gpt2viz.text.tokenizer import get_tokenizer
from gpt2viz.training.train import train
from gpt2viz.weights.checkpoints import load_checkpoint, load_hf_folder
from gpt2viz.weights.pretrained import PRETRAINED
from gpt2viz.weights.serving import checkpoint_path

PATH_PREFIX = "path:"  # --variant path:DIR, a local folder


def add_experiment_arguments(parser) -> None:
    kinds = parser.add_subparsers(dest="experiment", required=True)
    variant_help = ("a preset (" + ", ".join(PRESETS) + "), optionally with overrides, "
                    "e.g. gpt2:position=alibi,window=16, a pretrained model ("
                    + ", ".join(PRETRAINED) + "), or path:DIR, a local Hugging Face folder "
                    "(GPT-2, Llama, Mistral, Qwen2) or gpt2viz checkpoint")
    length = kinds.add_parser("length", help="loss by position up to max-len (past the training length)")
    length.add_argument("--variant", action="append", required=True, help=variant_help + "; repeat to compare")
    length.add_argument("--max-len", type=int, help=f"block length evaluated (default {LENGTH_FACTOR} x "
                        f"the training length: {LENGTH_FACTOR * TrainSettings().block_size} for the presets)")
    length.add_argument("--rope-base", type=float, default=SPECS["length"].defaults["rope_base"],
                        help="RoPE base at inference (RoPE variants only; 0: as trained)")
    window = kinds.add_parser("window", help="loss with another window and attention sinks at inference")
    window.add_argument("--variant", action="append", required=True, help=variant_help + "; repeat to compare")
    window.add_argument("--windows", type=int, nargs="+", default=list(SPECS["window"].defaults["windows"]))
    window.add_argument("--sinks", type=int, nargs="+", default=list(SPECS["window"].defaults["sinks"]))
    receptive = kinds.add_parser("receptive", help="which inputs reach position P after each layer")
    receptive.add_argument("--variant", required=True, help=variant_help)
    receptive.add_argument("--weights", choices=["random", "trained"], default="trained")
    receptive.add_argument("--position", type=int, default=SPECS["receptive"].defaults["position"])
    gqa = kinds.add_parser("gqa", help="mean-pool K/V heads, then uptrain: loss against KV bytes")
    gqa.add_argument("--variant", default="gpt2", help=variant_help + " (an MHA model)")
    gqa.add_argument("--uptrain-steps", type=int,
                     help="steps of training after pooling (default 5%% of the original budget; "
                          "a pretrained model is pooled only, never uptrained here)")
    streaming = kinds.add_parser("streaming", help="StreamingLLM: loss over N tokens, full vs "
                                 "window vs window + sinks")
    streaming.add_argument("--variant", required=True, help=variant_help)
    streaming.add_argument("--tokens", type=int, default=SPECS["streaming"].defaults["tokens"])
    streaming.add_argument("--windows", type=int, nargs="+", default=list(SPECS["streaming"].defaults["windows"]))
    streaming.add_argument("--sinks", type=int, nargs="+", default=list(SPECS["streaming"].defaults["sinks"]))
    heads = kinds.add_parser("heads", help="per head: first-token mass, previous-token, "
                             "induction, entropy, mean distance")
    heads.add_argument("--variant", required=True, help=variant_help)
    ablate = kinds.add_parser("ablate", help="zero one head (or one KV group) of a layer: loss before/after")
    ablate.add_argument("--variant", required=True, help=variant_help)
    ablate.add_argument("--layer", type=int, required=True)
    which = ablate.add_mutually_exclusive_group(required=True)
    which.add_argument("--head", type=int)
    which.add_argument("--kv-group", type=int)
    costs = kinds.add_parser("costs", help="what a pretrained model costs here: load (cold, warm), "
                             "memory, streaming, heads, one ablation")
    costs.add_argument("--variant", default="smollm2-135m", choices=list(PRETRAINED))
    costs.add_argument("--tokens", type=int, default=2048)
    from gpt2viz.cli.tasks import add_tasks_arguments  # synthetic tasks: own module

    add_tasks_arguments(kinds)
    for sub in (length, window, receptive, gqa, streaming, heads, ablate, costs):
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--text", help="a UTF-8 text file to score (default: the validation "
                                        "split of the default corpus)")
        sub.add_argument("--json", action="store_true", help="print the result as JSON on the last line")
    extend = kinds.add_parser("extend", help="RoPE scaling past the trained length: loss by "
                              "position bucket per method, pass-key retrieval (real model)")
    extend.add_argument("--variant", required=True, help=variant_help + " (a RoPE model)")
    extend.add_argument("--method", nargs="+", default=list(SPECS["extend"].defaults["methods"]),
                        help="none | linear | ntk | dynamic | yarn | llama3 (default: all)")
    extend.add_argument("--factor", type=float, default=float(SPECS["extend"].defaults["factor"]),
                        help=f"s: new context / trained (default {SPECS['extend'].defaults['factor']}; "
                             f"the real model at 2: 16,384 tokens)")
    extend.add_argument("--tokens", type=int, help="tokens per scored block (default s x the trained length)")
    extend.add_argument("--blocks", type=int, help="score at most this many blocks of the text "
                        "(default: every whole block; one 16k block of the real model is ~2 min a "
                        "method on 2 CPU cores)")
    extend.add_argument("--passkey-trials", type=int, default=2, help="keys per length and depth")
    extend.add_argument("--passkey-lengths", type=int, nargs="+",
                        help="prompt lengths (default 2L, 4L, ... up to s L)")
    extend.add_argument("--seed", type=int, default=0)
    extend.add_argument("--text", help="a UTF-8 text file to score (default: the validation "
                                       "split of the default corpus)")
    extend.add_argument("--json", action="store_true", help="print the result as JSON on the last line")


@dataclass
class Loaded:
    """A variant ready to run: its model and how it turns text into ids."""
    model: GPT2
    encode: Callable[[str], torch.Tensor]
    val_ids: torch.Tensor | None = None  # presets: the default corpus's validation ids
    decode: Callable[[list[int]], str] | None = None  # pretrained: its tokenizer's decode


def fixed_weights(spec: str) -> bool:
    """A model loaded as it is (a pretrained one, or a folder: path:DIR), not a preset to train."""
    return spec in PRETRAINED or spec.startswith(PATH_PREFIX)


def load_variant(spec: str, corpus: Corpus, settings: TrainSettings, seed: int) -> Loaded:
    if spec.startswith(PATH_PREFIX):
        return folder_loaded(spec[len(PATH_PREFIX):])
    if spec in PRETRAINED:
        from gpt2viz.weights.pretrained import load

        say(f"loading {spec} ...")
        model, tokenizer = load(spec)
        return Loaded(model, lambda text: torch.tensor(tokenizer.encode(text)), decode=tokenizer.decode)
    return preset_loaded(trained_model(spec, corpus, settings, seed).model, corpus)


def folder_loaded(text: str) -> Loaded:
    """A Hugging Face folder (GPT-2 or the Llama family) or one of our checkpoints, with the
    tokenizer it is read with: the folder's tokenizer.json, GPT-2's BPE for GPT-2, or our
    checkpoint's corpus vocabulary."""
    folder = checkpoint_path(text, None)  # exists, is a folder, readable (Refused: ValueError)
    say(f"loading {folder} ...")
    if (folder / "meta.json").is_file():
        model, meta = load_checkpoint(folder)
        if "vocab" not in meta:
            return Loaded(model, lambda t: torch.tensor(get_tokenizer().encode(t)),
                          decode=get_tokenizer().decode)
        vocab = Vocabulary(meta["vocab"])
        return Loaded(model, lambda t: vocab.to_compact(get_tokenizer().encode(t)))
    model, tokenizer = load_hf_folder(folder)
    if tokenizer is None and model.pretrained:
        raise ValueError(f"{folder} has no tokenizer.json: a Llama-family model is read with its "
                         f"own tokenizer.")
    tok = tokenizer or get_tokenizer()
    return Loaded(model, lambda t: torch.tensor(tok.encode(t)), decode=tok.decode)


def preset_loaded(model: GPT2, corpus: Corpus) -> Loaded:
    return Loaded(model, lambda text: corpus.vocab.to_compact(get_tokenizer().encode(text)),
                  corpus.val)


def scored_text(args, loaded: Loaded, corpus: Corpus) -> tuple[torch.Tensor, str]:
    """(ids, sha256 of the text): --text, else the default corpus's validation split (a
    preset reads its ids as they were split; a pretrained model encodes the same text)."""
    if args.text:
        text = read_text(args.text)
    else:
        text = validation_text(default_text())
        if loaded.val_ids is not None:
            return loaded.val_ids, hashlib.sha256(text.encode("utf-8")).hexdigest()
    return loaded.encode(text), hashlib.sha256(text.encode("utf-8")).hexdigest()




def trained_model(spec: str, corpus: Corpus, settings: TrainSettings, seed: int):
    config = variant_config(spec)

    bar = ProgressBar(f"training {spec}")
    result = train(config, corpus, settings, seed=seed,
                   callback=lambda p: bar(p.step, p.steps, f"loss {p.loss:.3f}"))
    say(f"{spec}: {'from the checkpoint cache' if result.from_cache else 'trained'}, "
        f"validation loss {result.val_loss:.3f}")
    return result


def run_experiment(args) -> int:
    from gpt2viz.analysis import experiments as ex

    if args.experiment == "tasks":
        from gpt2viz.cli.tasks import run_tasks
        return run_tasks(args)
    corpus, settings = Corpus.default(), TrainSettings()
    tables = {}  # title -> the spec's rows: the table the Experiments page shows
    if args.experiment == "length":
        curves = {}
        for spec in args.variant:
            loaded = load_variant(spec, corpus, settings, args.seed)
            scored = scored_for(args, loaded, corpus, settings)
            curves[spec] = SPECS["length"].run(loaded.model, scored, args.max_len, args.rope_base)
            tables[spec] = SPECS["length"].rows(curves[spec], scored, args.max_len)
        result = {"train_len": settings.block_size,
                  "max_len": args.max_len or LENGTH_FACTOR * settings.block_size,
                  "variants": {v: c.to_dict() for v, c in curves.items()}}
    elif args.experiment == "window":
        ex.check_window_sinks(args.windows, args.sinks, settings.block_size)  # before any training
        result = {"variants": {}}
        for spec in args.variant:
            loaded = load_variant(spec, corpus, settings, args.seed)
            scored = scored_for(args, loaded, corpus, settings)
            measured = SPECS["window"].run(loaded.model, scored, args.windows, args.sinks)
            result["variants"][spec] = measured
            tables[f"{spec}: full attention {measured['full_loss']:.3f}"] = SPECS["window"].rows(
                measured, scored, args.windows, args.sinks)
    elif args.experiment == "receptive":
        if fixed_weights(args.variant):
            if args.weights == "random":
                raise ValueError(f"{args.variant} has fixed weights: use --weights trained.")
            loaded = load_variant(args.variant, corpus, settings, args.seed)
            scored = scored_for(args, loaded, corpus, settings)
            ex.check_position(loaded.model.config, args.position, len(scored.ids))
        else:
            config = variant_config(args.variant).replace(vocab_size=corpus.vocab.size)
            ex.check_position(config, args.position, len(corpus.val))  # before any training
            if args.weights == "trained":
                loaded = load_variant(args.variant, corpus, settings, args.seed)
            else:
                torch.manual_seed(args.seed)
                loaded = preset_loaded(GPT2(config).eval(), corpus)
            scored = scored_for(args, loaded, corpus, settings)
        measured = SPECS["receptive"].run(loaded.model, scored, args.position)
        result = {k: v for k, v in measured.items() if k != "influence"}
        title = f"{args.variant}: what reaches position {args.position}, theory l*(w-1)"
        if result["window"] is None:
            title += f" (no window: every layer sees all {args.position} earlier positions)"
        tables[title] = SPECS["receptive"].rows(measured, scored, args.position)
    elif args.experiment == "gqa":
        if fixed_weights(args.variant) and args.uptrain_steps:
            raise ValueError(uptrain_refusal(args.variant))
        if args.text and not fixed_weights(args.variant):
            raise ValueError("experiment gqa uptrains on the default corpus: --text applies to "
                             "a pretrained variant only.")
        if fixed_weights(args.variant):
            loaded = load_variant(args.variant, corpus, settings, args.seed)
            scored, steps, per_step = scored_for(args, loaded, corpus, settings), 0, 0.0
            model = loaded.model
        else:
            trained = trained_model(args.variant, corpus, settings, args.seed)
            model = trained.model
            if model.config.n_kv_head != model.config.n_head:
                say(f"note: {args.variant} already shares K/V heads; pooling starts from its "
                    f"{model.config.n_kv_head} kv heads.")
            scored = Scored(corpus.val, settings.block_size, corpus, settings, args.seed)
            steps = args.uptrain_steps if args.uptrain_steps is not None else uptrain_steps(settings)
            per_step = trained.history.seconds / max(1, len(trained.history.steps))

        def report(kv, p):
            if p.step % 5 == 0 or p.step == p.steps:
                say(f"uptraining n_kv_head={kv}: step {p.step}/{p.steps} loss {p.loss:.3f}")

        result = SPECS["gqa"].run(model, scored, steps, per_step, report)
        title = f"{args.variant}: {result['n_kv_head']} KV heads, loss {result['base_loss']:.3f}"
        if fixed_weights(args.variant):
            result = {"variant": args.variant, **result, "uptraining": uptrain_refusal(args.variant)}
            title += f"; {result['uptraining']}"
        tables[title] = SPECS["gqa"].rows(result, scored, steps)
    elif args.experiment == "streaming":
        loaded = load_variant(args.variant, corpus, settings, args.seed)
        ids, sha = scored_text(args, loaded, corpus)
        scored = Scored(ids, train_len(loaded.model, settings))
        rows = SPECS["streaming"].run(loaded.model, scored, args.tokens, args.windows, args.sinks)
        tables[f"{args.variant}: {args.tokens:,} tokens"] = SPECS["streaming"].rows(
            rows, scored, args.tokens, args.windows, args.sinks)
        result = {"variant": args.variant, "tokens": args.tokens, "text_sha256": sha,
                  "rows": [{k: v for k, v in row.items() if k != "per_token"}  # the JSON keeps its size
                           for row in rows]}
    elif args.experiment == "heads":
        loaded = load_variant(args.variant, corpus, settings, args.seed)
        cfg = loaded.model.config
        ids = scored_text(args, loaded, corpus)[0]
        heads = head_stats(loaded.model, ids[:text_tokens(loaded.model.config)], induction_ids(loaded.model, args.seed))
        result = {"variant": args.variant, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
                  "n_kv_head": cfg.n_kv_head, "heads": heads}
        for key in ("induction", "prev_token", "first_token_mass"):
            tables[f"top {key}"] = [{"head": f"L{h['layer']}H{h['head']}", key: round(h[key], 2)}
                                    for h in sorted(heads, key=lambda h: -h[key])[:5]]
    elif args.experiment == "costs":
        result = pretrained_costs(args.variant, corpus, settings, args)
        tables["costs"] = [{"what": k, "value": v} for k, v in result.items()]
    elif args.experiment == "extend":
        from gpt2viz.analysis.extension import check_methods, extension_experiment

        check_methods(args.method, args.factor)  # before any training or loading
        if not fixed_weights(args.variant) and variant_config(args.variant).position != "rope":
            raise ValueError(f"{args.variant} has position={variant_config(args.variant).position!r}:"
                             f" RoPE scaling needs a RoPE variant (e.g. rope).")
        if args.blocks is not None and args.blocks < 1:
            raise ValueError(f"--blocks {args.blocks} must be at least 1.")
        loaded = load_variant(args.variant, corpus, settings, args.seed)
        trained = train_len(loaded.model, settings)
        reads_words = loaded.model.pretrained is not None and loaded.decode is not None
        tokens = args.tokens or int(args.factor * trained)
        ids = scored_text(args, loaded, corpus)[0]
        if args.blocks is not None:  # blocks of `tokens` inputs, each with its next token
            ids = ids[:args.blocks * tokens + 1]
        result = extension_experiment(  # the spec's losses, and pass-key retrieval beside them
            loaded.model, ids, trained, args.method, args.factor, tokens,
            encode=(lambda text: loaded.encode(text).tolist()) if reads_words else None,
            decode=loaded.decode if reads_words else None, variant=args.variant,
            passkey={"lengths": args.passkey_lengths, "trials": args.passkey_trials, "seed": args.seed},
            progress=ProgressBar(f"extend {args.variant}"))
        rows = SPECS["extend"].rows(result, Scored(ids, trained))
        for row, measured in zip(rows, result["rows"]):
            if measured["passkey"] is not None:
                row |= {f"pass key {n}": round(sum(d.values()) / len(d), 2)
                        for n, d in measured["passkey"].items()}
        title = "; ".join(line for line in (result["note"], result["passkey_note"]) if line)
        tables[title or f"{args.variant}: {tokens:,} tokens, factor {args.factor:g}"] = rows
    else:  # ablate
        loaded = load_variant(args.variant, corpus, settings, args.seed)
        out = ex.ablation(loaded.model, scored_text(args, loaded, corpus)[0], args.layer,
                          args.head, args.kv_group, args.seed)
        result = {"variant": args.variant, **out}
        what = f"head {args.head}" if args.head is not None else f"KV group {args.kv_group}"
        tables[f"layer {args.layer} {what} switched off"] = [
            {"loss": key, "before": round(out["base"][key], 3), "after": round(out["ablated"][key], 3)}
            for key in ("text_loss", "induction_loss")]
    for title, rows in tables.items():
        print(title)
        print(pd.DataFrame(rows).fillna("—").to_string(index=False))
    if args.json:
        print(json.dumps(result))
    return 0


def scored_for(args, loaded: Loaded, corpus: Corpus, settings: TrainSettings) -> Scored:
    """What a spec scores: the text (scored_text) and the length the model was trained on."""
    return Scored(scored_text(args, loaded, corpus)[0], train_len(loaded.model, settings))


LOAD_SCRIPT = """
import json, sys, time
t = time.perf_counter()
from gpt2viz.weights.pretrained import load
model, tokenizer = load(sys.argv[1])
seconds = time.perf_counter() - t
import torch
with torch.inference_mode():
    model(torch.tensor([tokenizer.encode("Attention sinks are " * 16)]))
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"seconds": seconds, "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
                  "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024}))
"""


def pretrained_costs(variant: str, corpus: Corpus, settings: TrainSettings, args) -> dict:
    """Load cold (a cache of its own) and warm, each in a fresh process (imports included),
    with resident memory after a forward pass; then, in this process, streaming over
    `tokens` tokens x 5 settings (full, windows 256 and 1024 with 0 and 4 sinks), head
    statistics and one ablation (layer 17, KV group 1), timed once each."""
    import os
    import subprocess
    import tempfile
    import time

    from gpt2viz.analysis import experiments as ex

    def load_in_fresh_process(cache: str) -> dict:
        done = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, variant], capture_output=True,
                              text=True, env={**os.environ, "GPT2VIZ_CACHE": cache}, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    result = {"variant": variant, "threads": torch.get_num_threads(),
              "load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as cache:
        say("loading cold (a fresh cache) ...")
        result["load_cold"] = load_in_fresh_process(cache)
        say("loading warm ...")
        result["load_warm"] = load_in_fresh_process(cache)
    loaded = load_variant(variant, corpus, settings, args.seed)
    ids = scored_text(args, loaded, corpus)[0]

    def timed(what, fn):
        say(f"{what} ...")
        start = time.perf_counter()
        fn()
        result[what + "_s"] = round(time.perf_counter() - start, 2)

    timed(f"streaming_{args.tokens}x5", lambda: ex.streaming_losses(
        loaded.model, ids, args.tokens, [256, 1024], [0, 4]))
    timed("heads", lambda: head_stats(loaded.model, ids[:text_tokens(loaded.model.config)], induction_ids(loaded.model)))
    timed("ablation", lambda: ex.ablation(loaded.model, ids, 17, kv_group=1))
    return result


def train_len(model: GPT2, settings: TrainSettings) -> int:
    """The length a model was trained on: the block size here, its context for a pretrained one."""
    return model.config.max_seq_len if model.pretrained else settings.block_size


def uptrain_refusal(variant: str) -> str:
    where = ("a CUDA GPU is present, but uptraining a pretrained model is not built yet"
             if torch.cuda.is_available() else
             "uptraining a 135M-parameter model is not interactive on a CPU; it needs a GPU")
    return f"{variant}: pooled without uptraining ({where})."
