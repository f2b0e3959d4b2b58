"""The model store: every model this server process has built, by key, and the one training
queue that fills it; `variants()` turns the sidebar's selection into models, never raising.

Models are built once per (variant, config, weights, seed, settings, corpus) and kept for
every session (st.cache_resource); they are in eval mode and never trained further, so every
session can read them. A trained model lands in the store when its job finishes, even if the
page that asked for it has gone (training.py queues it, shows progress and stand-ins).

A pretrained model (gpt2viz.weights.pretrained) loads once per server process on a thread of its own
(not behind the training queue: a load takes seconds, a training run minutes), one copy of its
weights for every session; until it is in, pages say it is loading and show no stand-in.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
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

from . import corpora, serving_mode, training
from .controls import Selection


@dataclass(eq=False)
class PretrainedLoad:
    """One pretrained model loading in the background: done is set with variant or error."""
    name: str
    expected: tuple[str, float | None]  # pretrained.expected_load: where it reads, seconds last time
    started: float = field(default_factory=time.monotonic)
    variant: Variant | None = None
    error: Exception | None = None
    done: threading.Event = field(default_factory=threading.Event)


class ModelStore:
    """Built models by key, the queue that trains the missing ones (one worker), and the
    pretrained models, each loaded once."""

    def __init__(self):
        self.variants: dict[Hashable, Variant] = {}
        self.training = TrainingQueue()
        self.loads: dict[str, PretrainedLoad] = {}
        self._lock = threading.Lock()

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

    def load_pretrained(self, name: str) -> PretrainedLoad:
        """The load of `name`, started on the first request (later ones share it). A missing
        package raises pretrained.MissingPackageError here, before any thread starts."""
        with self._lock:
            load = self.loads.get(name)
            if load is None:
                pretrained.gguf_path(name)  # instant; says which pip command is missing
                load = self.loads[name] = PretrainedLoad(name, pretrained.expected_load(name))
                threading.Thread(target=self._load, args=(load,), name=f"gpt2viz-load-{name}",
                                 daemon=True).start()
            return load

    def _load(self, load: PretrainedLoad) -> None:  # on its own thread
        try:
            model, tokenizer = pretrained.load(load.name)
            load.variant = self.put(("pretrained", load.name),
                                    Variant(load.name, model, None, "pretrained", tokenizer=tokenizer))
        except Exception as err:  # shown on the pages that asked (CheckpointError, OSError, ...)
            load.error = err
        load.done.set()


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
    """The pretrained models asked for that are loaded; the others start loading (the banner
    says so when show_loading) and are left out until they are in. Problems: one line each."""
    models, loading, built = store(), [], {}
    for name in names:
        try:
            load = models.load_pretrained(name)
        except pretrained.MissingPackageError as err:
            st.error(str(err))
            continue
        if not load.done.is_set():
            loading.append(load)
        elif load.error is not None:
            st.error(f"{name} could not be loaded: {load.error}")
        else:
            built[name] = load.variant
    if loading and show_loading:
        _loading_banner(loading)
    return built


@st.fragment(run_every=1.0)
def _loading_banner(loads: list[PretrainedLoad]) -> None:
    """Like the training banner: refreshed every second, the page reruns when all are in."""
    if all(load.done.is_set() for load in loads):
        st.rerun()
    waited = max(time.monotonic() - load.started for load in loads)
    with st.container(border=True):
        st.markdown(f"**Loading {', '.join(load.name for load in loads)} (pretrained) in the "
                    f"background** — once per server process, then shared by every session. It is "
                    f"left out of the pages until it is in (no stand-in for a real model).")
        expected = max(load.expected[1] or FIRST_LOAD_SECONDS[load.expected[0]] for load in loads)
        st.progress(min(waited / expected, 0.95),
                    text=f"{waited:.0f} s so far; " + " ".join(map(_expected_load_text, loads)))


# Before any load was timed on this machine: SmolLM2-135M on 2 CPU cores (README's costs).
FIRST_LOAD_SECONDS = {"cache": 3.0, "gguf": 8.0}


def _expected_load_text(load: PretrainedLoad) -> str:
    source, seconds = load.expected
    reads = "the checkpoint cache" if source == "cache" else "the GGUF file (dequantized once, then cached)"
    if seconds is None:
        return (f"{load.name} reads {reads}: not timed on this machine yet, about "
                f"{FIRST_LOAD_SECONDS[source]:.0f} s on 2 CPU cores.")
    return f"{load.name} reads {reads}: {seconds:.1f} s the last time here."


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
            model, meta = load_checkpoint_zip(upload.getvalue(), UPLOAD_CAPS["checkpoint"])
        except (CheckpointError, Refused) as err:
            serving_mode.show_error(f"{upload.name} does not load", err)
            return {}
        vocab = Vocabulary(meta["vocab"]) if meta and "vocab" in meta else None
        history = History(**meta["history"]) if meta and "history" in meta else None
        name = Path(upload.name).stem
        st.session_state["uploaded"] = (upload.file_id, Variant(name, model.to(device()).eval(), vocab,
                                                                f"uploaded {upload.name}", history))
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
