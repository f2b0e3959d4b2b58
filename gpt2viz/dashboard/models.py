"""The model store: every model this server process has built, by key, and the one training
queue that fills it; `variants()` turns the sidebar's selection into models, never raising.

Models are built once per (variant, config, weights, seed, settings, corpus) and kept for
every session (st.cache_resource); they are in eval mode and never trained further, so every
session can read them. A trained model lands in the store when its job finishes, even if the
page that asked for it has gone (training.py queues it, shows progress and stand-ins).

A pretrained model (gpt2viz.weights.pretrained) loads once per server process as background work
(background.py; not behind the training queue: a load takes seconds, a training run minutes),
one copy of its weights for every session; until it is in, pages say it is loading and show no
stand-in.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Callable, Hashable

import streamlit as st
import torch

from gpt2viz.analysis.experiments import pooled_kv_losses
from gpt2viz.analysis.workbench import Variant
from gpt2viz.core.model import GPT2
from gpt2viz.core.resources import device
from gpt2viz.text.corpus import Corpus, Vocabulary
from gpt2viz.training.jobs import TrainingJob, TrainingQueue
from gpt2viz.training.train import History, Progress, evaluate
from gpt2viz.weights import pretrained
from gpt2viz.weights.checkpoint_cache import checkpoint_folder
from gpt2viz.weights.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_checkpoint_zip,
    load_hf_folder,
)
from gpt2viz.weights.serving import UPLOAD_CAPS, Refused, check_upload

from . import background, corpora, serving_mode, training
from .controls import Selection


class ModelStore:
    """Built models by key, the queue that trains the missing ones (one worker), and the
    pretrained models, each loaded once."""

    def __init__(self):
        self.variants: dict[Hashable, Variant] = {}
        self.training = TrainingQueue()

    def __contains__(self, key: Hashable) -> bool:
        return key in self.variants

    def put(self, key: Hashable, variant: Variant) -> Variant:
        """Keep a ready model (on this server's device) for every session."""
        variant.model.to(device())
        self.variants[key] = variant
        return variant

    def train(self, key: Hashable, name: str, work: Callable[[Callable[[Progress], None]], Variant],
              tokens: int, **options) -> TrainingJob:
        """Queue work(callback) -> Variant; its model lands here when it finishes."""
        return self.training.submit(key, name, partial(self._finish, key, work), tokens, **options)

    def _finish(self, key, work, callback) -> Variant:  # on the training thread
        return self.put(key, work(callback))

    def load_pretrained(self, name: str) -> background.Work:
        """The load of `name` (background work: once per server process, later requests
        share it). A missing package raises pretrained.MissingPackageError here, before any
        thread starts."""
        started = background.shelf().get(("pretrained", name))
        if started is not None and started.error is None:  # loading or in: nothing to look up
            return started
        pretrained.gguf_path(name)  # instant; says which pip command is missing
        source, seconds = pretrained.expected_load(name)
        reads = "the checkpoint cache" if source == "cache" else "the GGUF file (dequantized once, then cached)"
        timed = (f"{seconds:.1f} s the last time here" if seconds is not None else
                 f"not timed on this machine yet, about {FIRST_LOAD_SECONDS[source]:.0f} s on 2 CPU cores")
        return background.start(
            ("pretrained", name), f"Loading {name} (pretrained)", partial(self._load, name),
            expected_s=seconds or FIRST_LOAD_SECONDS[source], cancellable=False,
            detail=f"Once per server process, then shared by every session; it is left out of the "
                   f"pages until it is in (no stand-in for a real model). It reads {reads}: {timed}.")

    def _load(self, name: str, report) -> Variant:  # on the work's own thread
        model, tokenizer = pretrained.load(name)
        return self.put(("pretrained", name), Variant(name, model, None, "pretrained", tokenizer=tokenizer))


@st.cache_resource(show_spinner=False)
def store() -> ModelStore:
    return ModelStore()


def variants(selection: Selection, show_training: bool = False, purpose: str = "selection") -> dict[str, Variant]:
    """Build (or fetch) every selected variant. Problems are shown, never raised. `purpose`
    names what a page asks for (its selection, or a reference model of its own); the training
    banner is drawn once a page (show_training: with the live loss curve)."""
    real = pretrained_variants(selection.pretrained, purpose == "selection")
    if selection.weights == "checkpoint":
        return _checkpoint_variant(selection.checkpoint) | real
    if selection.weights == "upload":
        return _uploaded_variant() | real
    for title, problem in selection.unbuildable.items():
        st.error(f"{title} cannot be built, so it is not shown: {problem} Fix it in the sidebar.")
    if not selection.configs:
        if not selection.unbuildable and not selection.pretrained:
            st.info("Pick at least one variant in the sidebar.")
        return real
    models, settings, data = store(), selection.settings, corpora.selected(selection)
    if selection.weights == "trained":  # dropout is part of how a model was trained
        configs = {name: c.replace(dropout=selection.dropout) for name, c in selection.configs.items()}
    else:
        configs = selection.configs
    wanted = {name: (_key(name, config, selection), config) for name, config in configs.items()}
    if selection.weights == "trained":
        training.start(models, wanted, data, settings, selection.seed, purpose)
        training.show_stopped([key for key, _ in wanted.values()])
        training.banner(models, show_training)
    built = {}
    for name, (key, config) in wanted.items():
        if key in models:
            built[name] = models.variants[key]
        else:  # random weights: chosen, or standing in until the trained model is ready
            stand_in = selection.weights == "trained"
            built[name] = replace(_random_variant(name, config, selection.seed, data),
                                  source="random init (not trained yet)" if stand_in else "random init")
    return built | real


def pretrained_variants(names, show_loading: bool = True) -> dict[str, Variant]:
    """The pretrained models asked for that are loaded; the others start loading (their
    progress shows when show_loading) and are left out until they are in. Problems: one line each."""
    models, built = store(), {}
    for name in names:
        try:
            load = models.load_pretrained(name)
        except pretrained.MissingPackageError as err:
            st.error(str(err))
            continue
        if not load.done.is_set():
            if show_loading:
                background.show(load.key)
        elif load.error is not None:
            st.error(f"{name} could not be loaded: {load.error}")
        else:
            built[name] = load.result
    return built


# Before any load was timed on this machine: SmolLM2-135M on 2 CPU cores (README's costs).
FIRST_LOAD_SECONDS = {"cache": 3.0, "gguf": 8.0}


def trained_already(selection: Selection, configs: dict) -> bool:
    """Whether every config is trained with the selection's settings, seed and text already,
    in this server's store or the disk cache: a page offers to train a reference model it
    needs instead of starting it unasked."""
    data = corpora.selected(selection)
    trained = replace(selection, weights="trained")
    for name, config in configs.items():
        config = config.replace(dropout=selection.dropout)
        if (_key(name, config, trained) not in store()
                and not checkpoint_folder(config, data, selection.settings, selection.seed).is_dir()):
            return False
    return True


def _key(name, config, selection):
    return (name, config, selection.weights, selection.seed, selection.settings, selection.corpus)


def _random_variant(name, config, seed, data: Corpus) -> Variant:
    models, key = store(), (name, config, "random", seed, data.sha256)
    if key not in models:
        torch.manual_seed(seed)
        model = GPT2(config.replace(vocab_size=data.vocab.size)).eval()
        models.put(key, Variant(name, model, data.vocab, "random init"))
    return models.variants[key]


def _checkpoint_variant(text: str) -> dict[str, Variant]:
    if not text:
        st.info("Type the path of a local checkpoint folder in the sidebar.")
        return {}
    folder = serving_mode.checkpoint_folder(text)  # checked: exists, readable, allowed here
    if folder is None:
        return {}
    models = store()
    key = ("checkpoint", str(folder.resolve()))
    if key not in models:
        tokenizer = None
        try:
            if (folder / "meta.json").is_file():
                model, meta = load_checkpoint(folder)
                vocab = Vocabulary(meta["vocab"]) if "vocab" in meta else None
            else:  # Hugging Face: GPT-2 reads GPT-2's BPE, the Llama family its own tokenizer
                (model, tokenizer), vocab = load_hf_folder(folder), None
                if tokenizer is None and model.pretrained:
                    raise CheckpointError(f"{folder.name} has no tokenizer.json: a Llama-family "
                                          f"model is read with its own tokenizer, so the pages "
                                          f"need it beside config.json.")
        except (CheckpointError, KeyError, MemoryError) as err:
            serving_mode.show_error("That checkpoint does not load", err)
            return {}
        models.put(key, Variant(folder.name or text, model.eval(), vocab, text, tokenizer=tokenizer))
    variant = models.variants[key]
    return {variant.name: variant}


def _uploaded_variant() -> dict[str, Variant]:
    """The .zip in the sidebar's uploader, loaded once per upload; it lives for the session."""
    upload = st.session_state.get("checkpoint_upload")
    if upload is None:
        st.info("Upload a checkpoint .zip in the sidebar (one downloaded from Build & train, or a "
                "Hugging Face GPT-2 folder zipped). It stays for this session only.")
        return {}
    if st.session_state.get("uploaded", (None,))[0] != upload.file_id:
        try:
            check_upload("checkpoint", upload.size)
            model, meta, tokenizer = load_checkpoint_zip(upload.getvalue(), UPLOAD_CAPS["checkpoint"])
        except (CheckpointError, Refused) as err:
            serving_mode.show_error(f"{upload.name} does not load", err)
            return {}
        vocab = Vocabulary(meta["vocab"]) if meta and "vocab" in meta else None
        history = History(**meta["history"]) if meta and "history" in meta else None
        name = Path(upload.name).stem
        st.session_state["uploaded"] = (upload.file_id, Variant(name, model.to(device()).eval(), vocab,
                                                                f"uploaded {upload.name}", history,
                                                                tokenizer=tokenizer))
    variant = st.session_state["uploaded"][1]
    return {variant.name: variant}


@st.cache_resource(max_entries=8, show_spinner="Evaluating every mean-pooled group count...")
def _pooled_losses(_variant: Variant, model_id: int, _data: Corpus, corpus_id: str):
    return pooled_kv_losses(_variant.model, lambda m: evaluate(m, _data.val, 128))


def cached_pooled_losses(variant: Variant, selection: Selection) -> dict:
    """experiments.pooled_kv_losses on the validation split (blocks of 128): GQA sharing's
    conversion curve, once per (model, corpus) for every session."""
    data = corpora.selected(selection)
    return _pooled_losses(variant, id(variant.model), data, data.id)
