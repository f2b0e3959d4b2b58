"""What the dashboard works with, without Streamlit: a built variant (model + how text maps
to its ids) and the computations the pages show, each a plain function of tensors."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from gpt2viz.core.config import ModelConfig, TrainSettings, kv_head_choices
from gpt2viz.core.model import CAPTURES, GPT2, Trace
from gpt2viz.text.corpus import (
    DEFAULT_SHA256,
    SPLIT_BLOCK,
    Corpus,
    Vocabulary,
    default_text,
    validation_blocks,
    validation_text,
)
from gpt2viz.text.tokenizer import get_tokenizer
from gpt2viz.training.train import History

MAX_PROMPT_TOKENS = 128  # a heatmap past this is unreadable; longer prompts keep their end


@dataclass
class Variant:
    name: str
    model: GPT2  # eval mode, never trained further once built
    vocab: Vocabulary | None  # None: the model reads GPT-2 ids directly
    source: str  # "trained", "random init", the checkpoint folder, or "pretrained"
    history: History | None = None
    tokenizer: object | None = None  # None: GPT-2's BPE (gpt2viz.text.tokenizer); else the model's own

    @property
    def pretrained(self) -> bool:
        return self.tokenizer is not None

    @property
    def config(self) -> ModelConfig:
        return self.model.config


@dataclass
class Prompt:
    """The prompt as GPT-2's BPE reads it (the small models), and its text, which a model
    with its own tokenizer encodes itself (prompt_ids)."""
    gpt2_ids: list[int]
    labels: list[str]
    truncated_from: int | None = None  # original length when the start was cut
    text: str = ""


def tokenize_prompt(text: str, max_tokens: int = MAX_PROMPT_TOKENS) -> Prompt:
    if not text.strip():
        raise ValueError("The prompt is empty: type some text to run through the models.")
    tok = get_tokenizer()
    ids = tok.encode(text)
    truncated = len(ids) if len(ids) > max_tokens else None
    ids = ids[-max_tokens:]
    return Prompt(ids, tok.token_labels(ids), truncated, text)


def prompt_ids(variant: Variant, prompt: Prompt, max_tokens: int = MAX_PROMPT_TOKENS) -> torch.Tensor:
    """(1, T) ids in the variant's vocabulary: GPT-2's ids (mapped to a corpus's compact
    vocabulary), or the prompt's text encoded by the variant's own tokenizer (its last
    max_tokens tokens)."""
    if variant.tokenizer is not None:
        ids = torch.tensor(variant.tokenizer.encode(prompt.text)[-max_tokens:], dtype=torch.long)
    else:
        ids = torch.tensor(prompt.gpt2_ids)
        ids = ids if variant.vocab is None else variant.vocab.to_compact(ids)
    return ids[None].to(variant.model.wte.weight.device)


def as_chat(variant: Variant, prompt: Prompt) -> Prompt:
    """The prompt sent as a user message through the variant's chat template (an instruct
    model's own format, ending where the assistant's answer starts)."""
    text = variant.tokenizer.apply_chat_template([{"role": "user", "content": prompt.text}])
    return replace(prompt, text=text)


def prompt_labels(variant: Variant, prompt: Prompt) -> list[str]:
    """The prompt's tokens as the variant reads them (its own tokenizer's pieces)."""
    if variant.tokenizer is None:
        return prompt.labels
    return variant.tokenizer.token_labels(prompt_ids(variant, prompt)[0].tolist())


def same_tokenizer(a: Variant, b: Variant) -> bool:
    """Whether two variants cut a prompt into the same tokens (so their maps line up)."""
    return a.tokenizer is b.tokenizer  # GPT-2's BPE (None), or one loaded model's own


def validation_ids(variant: Variant, default: Corpus) -> torch.Tensor:
    """(N,) the default corpus's validation split in the variant's own vocabulary: the text
    `experiment heads` and `experiment ablate` score (a model with its own tokenizer encodes
    the same words)."""
    if variant.tokenizer is not None:
        return torch.tensor(variant.tokenizer.encode(validation_text(default_text())), dtype=torch.long)
    gpt2 = default.vocab.to_gpt2(default.val)
    return gpt2 if variant.vocab is None else variant.vocab.to_compact(gpt2)


def validation_joins(variant: Variant) -> list[int]:
    """Where each piece of the default validation text after the first starts, in the
    variant's own tokens (validation_ids's positions; with another tokenizer a token can merge
    across a join, so a position may be one off)."""
    blocks = validation_blocks(default_text())
    if variant.tokenizer is None:
        return [SPLIT_BLOCK * k for k in range(1, len(blocks))]
    return list(itertools.accumulate(len(variant.tokenizer.encode(b)) for b in blocks))[:-1]


def unknown_positions(variant: Variant, prompt: Prompt) -> list[int]:
    if variant.vocab is None:
        return []
    return (prompt_ids(variant, prompt)[0].cpu() == variant.vocab.unknown).nonzero().flatten().tolist()


@torch.inference_mode()
def trace_ids(model: GPT2, ids: torch.Tensor, capture=CAPTURES) -> Trace:
    """model.trace(ids (1, T), capture) on the CPU, whatever device the model runs on: figures
    read it as numpy."""
    tr = model.trace(ids.to(model.wte.weight.device), capture=capture)
    return Trace(logits=tr.logits.cpu(), attn=[a.cpu() for a in tr.attn], q=[q.cpu() for q in tr.q],
                 k=[k.cpu() for k in tr.k], v=[v.cpu() for v in tr.v], positions=tr.positions.cpu())


def prompt_loss(variant: Variant, trace: Trace, prompt: Prompt) -> float:
    """Mean next-token loss (nats) over the prompt; perplexity is exp of it."""
    ids = prompt_ids(variant, prompt)[0].cpu()
    if len(ids) < 2:
        return float("nan")
    return float(F.cross_entropy(trace.logits[0, :-1], ids[1:]))


def token_labels(variant: Variant, ids) -> list[str]:
    """Readable labels of ids in the variant's vocabulary; the unknown id says so."""
    ids = torch.as_tensor(ids).cpu()
    if variant.tokenizer is not None:
        return variant.tokenizer.token_labels(ids.tolist())
    labels = get_tokenizer().token_labels(ids if variant.vocab is None else variant.vocab.to_gpt2(ids))
    if variant.vocab is not None:
        labels = ["⟨unknown⟩" if int(i) == variant.vocab.unknown else lab for i, lab in zip(ids, labels)]
    return labels


def next_token_top_k(variant: Variant, trace: Trace, k: int = 10) -> tuple[list[str], list[float]]:
    probs = trace.logits[0, -1].softmax(-1)
    top = torch.topk(probs, min(k, probs.numel()))
    return token_labels(variant, top.indices), top.values.tolist()


def new_token_room(config: ModelConfig, prompt_len: int, wanted: int) -> int:
    """Learned positions have a row for each of max_seq_len positions and nothing past them
    (the presets keep max_seq_len at the training block, so every row was trained)."""
    if config.position == "learned":
        return max(0, min(wanted, config.max_seq_len - prompt_len))
    return wanted


def continuation(variant: Variant, prompt: Prompt, new_tokens: int, temperature: float,
                 top_k: int | None, seed: int) -> str:
    """Sampled with the KV cache (GPT2.generate), decoded with the variant's tokenizer."""
    ids = prompt_ids(variant, prompt)
    new_tokens = new_token_room(variant.config, ids.shape[1], new_tokens)
    if new_tokens == 0:
        return ""
    out = variant.model.generate(ids, new_tokens, temperature=temperature, top_k=top_k, seed=seed)
    new = out[0, ids.shape[1]:].cpu()
    if variant.tokenizer is not None:  # its own text ends at its end-of-text token (a chat turn's end)
        ends = (new == variant.tokenizer.eos_id).nonzero().flatten().tolist()
        return variant.tokenizer.decode(new[:ends[0]].tolist() if ends else new.tolist())
    gpt2 = new if variant.vocab is None else variant.vocab.to_gpt2(new)
    return get_tokenizer().decode(gpt2.tolist())


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss == loss else float("nan")


def kv_cost_rows(config: ModelConfig, context: int) -> list[dict]:
    """KV-cache bytes and parameters for every valid n_kv_head, MHA first, MQA last."""
    from gpt2viz.training.train import param_count

    rows = []
    for kv in kv_head_choices(config.n_head):
        cfg = config.replace(n_kv_head=kv)
        rows.append({"n_kv_head": kv, "kind": cfg.attention_kind,
                     "kv_bytes_per_token": cfg.kv_cache_bytes_per_token(),
                     "kv_bytes_context": cfg.kv_cache_bytes(context), "params": param_count(cfg)})
    return rows


CONTEXTS = (1, 16)  # the cut contexts the Build table scores each model with


def context_losses(model: GPT2, val_ids: torch.Tensor, contexts=CONTEXTS) -> dict[int, float]:
    """Validation loss with the context cut: the same tokens scored in blocks of c tokens, so
    each token is predicted from at most c tokens (itself included; c = 1: from itself
    alone). Against the full-block loss this shows how much a model uses its context."""
    from gpt2viz.training.train import evaluate

    return {c: evaluate(model, val_ids, c) for c in contexts}


def within_noise(losses: dict[str, float], noise: float) -> dict[str, list[str]]:
    """For each variant, the others whose loss differs from its own by less than `noise`."""
    return {name: [other for other, o in losses.items() if other != name and abs(o - loss) < noise]
            for name, loss in losses.items()}


# Seed-to-seed noise, measured: the gpt2 preset (128-row position table) trained with the
# default TrainSettings on the default corpus, dropout 0, once per seed (`python -m gpt2viz train
# --variant gpt2 --seed K`, 2026-11-25, a shared 2-core CPU; the seed changes the initial weights
# and the batch order). Final validation loss per seed:
SEED_LOSSES = {0: 4.0222, 1: 3.9555, 2: 3.9356, 3: 4.0275}
SEED_LOSSES_MEASURED = "a shared 2-core CPU on 2026-11-25 (README: Seed-to-seed noise)"
SEED_NOISE_NOTE = (f"measured with the gpt2 preset on the embedded corpus, the default budget "
                   f"({TrainSettings().steps} steps) and no dropout: retrained with seeds "
                   f"{min(SEED_LOSSES)}–{max(SEED_LOSSES)} it ends between "
                   f"{min(SEED_LOSSES.values()):.3f} and {max(SEED_LOSSES.values()):.3f} nats (a range "
                   f"of {max(SEED_LOSSES.values()) - min(SEED_LOSSES.values()):.3f}), on {SEED_LOSSES_MEASURED}.")


def seed_noise_mismatch(settings: TrainSettings, corpus_sha256: str, dropout: float) -> list[str]:
    """How a run differs from the one seed noise was measured in; empty where it applies."""
    differences = {f"other training settings ({settings.describe()})": settings != TrainSettings(),
                   "another corpus": corpus_sha256 != DEFAULT_SHA256,
                   f"dropout {dropout:g}": dropout != 0.0}
    return [what for what, differs in differences.items() if differs]


def seed_noise(settings: TrainSettings, corpus_sha256: str, dropout: float) -> float | None:
    """The measured seed-to-seed range of the final validation loss, for the setting it was
    measured in; None for any other (noise shrinks as training runs longer, and differs with
    the text and with dropout)."""
    if seed_noise_mismatch(settings, corpus_sha256, dropout):
        return None
    return max(SEED_LOSSES.values()) - min(SEED_LOSSES.values())
