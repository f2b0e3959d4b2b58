"""Context extension by RoPE scaling: the same weights read with each scaling method
(gpt2viz.core.positions: linear, ntk, dynamic, yarn, llama3) past the length they were
trained on, measured two ways:

- loss by position bucket along a long text ([0, L), [L, 2L), [2L, 4L), ... with L the trained
  length), on blocks of `tokens` tokens, one row per method ("none" = plain RoPE, the baseline);
- pass-key retrieval (Mohtashami & Jaggi 2023) for a model that reads English: a five-digit key
  hidden at a depth of a long filler text, then "What is the pass key? The pass key is", and the
  digits decoded greedily; accuracy by length and depth.
"""
from __future__ import annotations

import itertools
import random
import re
from typing import Callable

import torch

from gpt2viz.analysis.experiments import HEAD_CHUNK, blocks, reconfigured, token_losses
from gpt2viz.core.config import ROPE_SCALINGS
from gpt2viz.core.model import GPT2
from gpt2viz.core.positions import rope_parameters
from gpt2viz.core.resources import ensure_fits, plural

METHODS = ROPE_SCALINGS  # "none" first: the baseline every method is read against
DEFAULT_DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def scaled(model: GPT2, method: str, factor: float, trained_length: int) -> GPT2:
    """The same weights (shared) under RoPE scaling `method` by `factor` over trained_length."""
    if model.config.position != "rope":
        raise ValueError(f"RoPE scaling needs a RoPE model; this one has "
                         f"position={model.config.position!r}.")
    if method == "none":
        return reconfigured(model, rope_scaling="none", rope_factor=1.0, rope_original_length=None)
    return reconfigured(model, rope_scaling=method, rope_factor=float(factor),
                        rope_original_length=int(trained_length))


def buckets(trained_length: int, tokens: int) -> list[tuple[int, int]]:
    """[0, L), [L, 2L), [2L, 4L), ... cut at `tokens`."""
    spans, lo, hi = [], 0, trained_length
    while lo < tokens:
        spans.append((lo, min(hi, tokens)))
        lo, hi = hi, 2 * hi
    return spans


def bucket_name(lo: int, hi: int) -> str:
    return f"{lo}-{hi - 1}"


def check_methods(methods: list[str], factor: float) -> None:
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown RoPE scaling {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(METHODS)}.")
    if not factor >= 1.0:
        raise ValueError(f"--factor {factor:g} must be >= 1 (the new context over the trained one).")


def pass_bytes(model: GPT2, tokens: int) -> int:
    """One forward of `tokens` tokens as token_losses runs it: activations + K/V + logits."""
    itemsize = model.wte.weight.element_size()
    return model.generate_bytes(1, tokens) + HEAD_CHUNK * model.config.vocab_size * itemsize * 2


def extension_losses(model: GPT2, ids: torch.Tensor, trained_length: int, methods: list[str],
                     factor: float, tokens: int) -> dict:
    """Loss of every token of blocks of `tokens` tokens of ids (1-D), each method's model
    reading the whole block before each token, by bucket of position.

    Returns {"tokens": scored per block, "blocks", "note" (the text was shorter than asked, or
    None), "rows": [{"method", "inv_freq" (at the scored length; only dynamic depends on it),
    "attention_factor", "loss", "buckets": {"lo-hi": mean loss}, "per_position": (tokens,)
    mean over blocks}]}. Nothing runs when a pass would not fit in memory."""
    check_methods(methods, factor)
    if tokens < 2:
        raise ValueError(f"--tokens {tokens} must be at least 2.")
    note = None
    if len(ids) < tokens + 1:
        if len(ids) < 3:
            raise ValueError(f"the text has {plural(len(ids), 'token')}: too short to score.")
        note = (f"the text has {plural(len(ids), 'token')}, fewer than the {tokens + 1:,} that "
                f"{tokens:,} scored tokens need: scoring {len(ids) - 1:,} instead.")
        tokens = len(ids) - 1
    ensure_fits(pass_bytes(model, tokens), f"a {tokens:,}-token pass", model.wte.weight.device)
    device = model.wte.weight.device
    x, y = (t.to(device) for t in blocks(ids, tokens))
    spans = buckets(trained_length, tokens)
    rows = []
    for method in methods:
        reader = scaled(model, method, factor, trained_length)
        per_position = token_losses(reader, x, y, tokens=tokens).mean(0).cpu()  # (tokens,)
        inv_freq, attention = rope_parameters(reader.config, tokens)
        rows.append({"method": method, "inv_freq": inv_freq.tolist(), "attention_factor": attention,
                     "loss": float(per_position.mean()),
                     "buckets": {bucket_name(lo, hi): float(per_position[lo:hi].mean())
                                 for lo, hi in spans},
                     "per_position": per_position.tolist()})
    return {"tokens": tokens, "blocks": int(x.shape[0]), "note": note, "rows": rows}


# ------------------------------------------------------------------ pass-key retrieval
PASSKEY_INTRO = ("There is an important piece of information hidden inside a lot of irrelevant "
                 "text. Find it and remember it. I will ask you about it.")
PASSKEY_FILLER = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
PASSKEY_NEEDLE = " The pass key is {key}. Remember it. {key} is the pass key."
PASSKEY_QUESTION = " What is the pass key? The pass key is"


def passkey_prompt(encode: Callable[[str], list[int]], length: int, depth: float,
                   key: str) -> list[int]:
    """Token ids of about `length` tokens (whole filler sentences, at most one filler unit
    short): intro, filler, the needle after `depth` (0 = first, 1 = last) of the filler, more
    filler, the question."""
    intro, filler = list(encode(PASSKEY_INTRO)), list(encode(PASSKEY_FILLER))
    needle, question = list(encode(PASSKEY_NEEDLE.format(key=key))), list(encode(PASSKEY_QUESTION))
    room = length - len(intro) - len(needle) - len(question)
    if room < 0:
        raise ValueError(f"a pass-key prompt needs at least {length - room} tokens; {length} is "
                         f"too short.")
    units = room // len(filler)
    before = round(depth * units)
    return intro + filler * before + needle + filler * (units - before) + question


def answer_digits(text: str, digits: int) -> str:
    """The first run of digits in the decoded answer (spaces between digits ignored)."""
    match = re.search(r"\d[\d ]*", text)
    return "" if match is None else match.group().replace(" ", "")[:digits]


def passkey_accuracy(model: GPT2, encode: Callable[[str], list[int]],
                     decode: Callable[[list[int]], str], lengths: list[int],
                     depths=DEFAULT_DEPTHS, trials: int = 2, seed: int = 0,
                     digits: int = 5, on_prompt: Callable[[], None] | None = None) -> dict:
    """{"<length>": {"<depth>": share of `trials` random keys decoded right}}: greedy decoding
    of digits + 2 tokens after each prompt (one key per trial, the same keys at every length
    and depth). Refuses, before anything runs, a length that would not fit in memory."""
    for length in lengths:
        ensure_fits(model.generate_bytes(1, length + digits + 2),
                    f"a {length:,}-token pass-key prompt", model.wte.weight.device)
    rng = random.Random(seed)
    keys = [str(rng.randrange(10 ** (digits - 1), 10 ** digits)) for _ in range(trials)]
    device = model.wte.weight.device
    out = {}
    for length in lengths:
        out[str(length)] = {}
        for depth in depths:
            right = 0
            for key in keys:
                prompt = torch.tensor([passkey_prompt(encode, length, depth, key)], device=device)
                new = model.generate(prompt, digits + 2, temperature=0.0)[0, prompt.shape[1]:]
                right += answer_digits(decode(new.tolist()), digits) == key
                if on_prompt is not None:
                    on_prompt()
            out[str(length)][f"{depth:g}"] = right / trials
    return out


def passkey_lengths(trained_length: int, factor: float) -> list[int]:
    """Past the trained context L: 2L, 4L, ... below s L, then s L (at least L + 1)."""
    top = max(int(factor * trained_length), trained_length + 1)
    lengths, n = [], 2 * trained_length
    while n < top:
        lengths.append(n)
        n *= 2
    return lengths + [top]


def extension_experiment(model: GPT2, ids: torch.Tensor, trained_length: int, methods: list[str],
                         factor: float, tokens: int, encode=None, decode=None,
                         passkey: dict | None = None, variant: str = "",
                         progress: Callable[[int, int, str], None] | None = None) -> dict:
    """The whole experiment as the command line prints it: bucket losses for every method, and
    pass-key accuracy when encode and decode are given (a model that reads English) with
    passkey = {"lengths", "depths", "trials", "seed"} (defaults: passkey_lengths, DEFAULT_DEPTHS,
    2, 0). Otherwise every row's "passkey" is None and "passkey_note" says why. progress(done,
    total, what) after the loss passes and after each pass-key prompt."""
    check_methods(methods, factor)
    options = dict(passkey or {})
    lengths = options.pop("lengths", None) or passkey_lengths(trained_length, factor)
    if encode is not None:  # refuse what would not fit before the loss passes start
        for length in lengths:
            ensure_fits(model.generate_bytes(1, length + 7), f"a {length:,}-token pass-key prompt",
                        model.wte.weight.device)
    prompts = len(lengths) * len(options.get("depths", DEFAULT_DEPTHS)) * options.get("trials", 2)
    steps = 1 + (len(methods) * prompts if encode is not None else 0)
    report = progress or (lambda done, total, what: None)
    report(0, steps, f"scoring {len(methods)} methods")
    result = extension_losses(model, ids, trained_length, methods, factor, tokens)
    finished = itertools.count(2)  # steps done after the loss passes
    report(1, steps, "loss passes done")
    out = {"variant": variant, "trained_length": trained_length, "factor": factor,
           "tokens": result["tokens"], "blocks": result["blocks"], "note": result["note"],
           "passkey_note": None, "rows": []}
    for row in result["rows"]:
        row = {k: v for k, v in row.items() if k != "per_position"}  # the JSON keeps its size
        if encode is not None:
            reader = scaled(model, row["method"], factor, trained_length)
            def prompt_done(method=row["method"]):
                report(next(finished), steps, f"pass key, {method}")

            row["passkey"] = passkey_accuracy(reader, encode, decode, lengths, **options,
                                              on_prompt=prompt_done)
        else:
            row["passkey"] = None
        out["rows"].append(row)
    if encode is None:
        out["passkey_note"] = (f"pass-key retrieval left out: {variant or 'this model'} was trained "
                               f"on {trained_length}-token blocks of Python's documentation and "
                               f"cannot read a pass key written in words.")
    return out
