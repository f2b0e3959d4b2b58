"""What the shared controls are: the sidebar's fields with their ranges and defaults, the
weights choices, the two custom slots and the ModelConfig each builds and its name, and the
Selection a run of the sidebar returns. No widgets here (sidebar.py draws them) and no URL
(link.py reads and writes it)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from gpt2viz.core.config import PRESETS, ModelConfig, TrainSettings
from gpt2viz.core.resources import format_number
from gpt2viz.weights.pretrained import PRETRAINED

WEIGHTS = {"trained": "Trained on the corpus", "random": "Random init (instant)",
           "checkpoint": "Local checkpoint folder", "upload": "Upload a checkpoint (.zip)"}
# Two custom slots so two settings can be compared side by side. The first keeps the unprefixed
# URL names (older links say variants=custom&n_layer=...), the second prefixes them with "c2_".
SLOTS = {"custom": ("custom 1", ""), "custom2": ("custom 2", "c2_")}
NUMBER_FIELDS = {  # field: (label, smallest, largest, step)
    "n_layer": ("Layers", 1, 12, 1),
    "d_model": ("d_model", 8, 512, 8),
    "n_head": ("Query heads", 1, 32, 1),
    "n_kv_head": ("Key/value heads", 1, 32, 1),
    "window": ("Window (0 = full attention)", 0, 256, 1),
    "rope_base": ("RoPE base", 2.0, 1e7, 1000.0),
    "sinks": ("Attention sinks (first tokens kept)", 0, 64, 1),
    "seed": ("Seed", 0, 2**31 - 1, 1),
}
# The training budget and optimizer, the same for every variant compared (a fair comparison);
# drawn on Build & train, carried everywhere (they key the checkpoint cache) and in the URL.
TRAINING_FIELDS = {  # field: (label, smallest, largest, step)
    "steps": ("Steps", 1, 20_000, 10),
    "max_seconds": ("Time budget per model (s, 0 = none)", 0, 3600, 10),
    "lr": ("Learning rate", 1e-5, 1.0, 5e-4),
    "batch_size": ("Batch size", 1, 256, 1),
    "block_size": ("Context (block) length", 8, 1024, 8),
    "warmup_steps": ("Warm-up steps", 0, 10_000, 1),
    "weight_decay": ("Weight decay", 0.0, 1.0, 0.05),
    "dropout": ("Dropout", 0.0, 0.9, 0.05),
}
NUMBER_FIELDS |= TRAINING_FIELDS
_SETTINGS = TrainSettings()
TRAINING_DEFAULTS = dict(steps=_SETTINGS.steps, max_seconds=0, lr=_SETTINGS.lr,
                         batch_size=_SETTINGS.batch_size, block_size=_SETTINGS.block_size,
                         warmup_steps=_SETTINGS.warmup_steps, weight_decay=_SETTINGS.weight_decay,
                         dropout=0.0)
CUSTOM_DEFAULTS = {
    "custom": dict(position="rope", n_layer=4, d_model=128, n_head=8, n_kv_head=2, window=16,
                   rope_base=10000.0, sinks=0),
    "custom2": dict(position="rope", n_layer=4, d_model=128, n_head=8, n_kv_head=1, window=16,
                    rope_base=10000.0, sinks=0),
}
CUSTOM_NUMBERS = [f for f in CUSTOM_DEFAULTS["custom"] if f != "position"]
# A custom field that means nothing with the others' values is hidden and left out of the config
# (its widget value is kept, for when it applies again): field -> does it apply, given the values.
APPLIES = {"rope_base": lambda v: v["position"] == "rope", "sinks": lambda v: int(v["window"]) > 0}
DEFAULTS = dict(variants=["gpt2", "rope+gqa+swa"], weights="trained", seed=0, checkpoint="", corpus="",
                **TRAINING_DEFAULTS,
                **{prefix + f: v for slot, (_, prefix) in SLOTS.items()
                   for f, v in CUSTOM_DEFAULTS[slot].items()})
VARIANT_IDS = list(PRESETS) + list(PRETRAINED) + list(SLOTS)

@dataclass
class Selection:
    configs: dict  # display name -> ModelConfig (vocab_size still the preset's)
    weights: str
    seed: int
    checkpoint: str
    unbuildable: dict = field(default_factory=dict)  # custom slot title -> why it cannot be built
    settings: TrainSettings = TrainSettings()
    dropout: float = 0.0  # while training; a trained model's config carries it
    corpus: str = ""  # "" = the embedded corpus, else "name@hash" (corpora.py)
    pretrained: tuple = ()  # names in gpt2viz.weights.pretrained.PRETRAINED: fixed weights, whatever `weights`


def defaults() -> dict:
    """DEFAULTS, with GPT2VIZ_TRAIN_STEPS (a quicker budget for demos and tests) as the steps."""
    steps = os.environ.get("GPT2VIZ_TRAIN_STEPS")
    return DEFAULTS | ({"steps": int(steps)} if steps else {})


def training_settings(values: dict) -> TrainSettings:
    """ValueError (with the fix) for settings that cannot work."""
    return TrainSettings(steps=int(values["steps"]), lr=float(values["lr"]),
                         batch_size=int(values["batch_size"]), block_size=int(values["block_size"]),
                         warmup_steps=int(values["warmup_steps"]),
                         weight_decay=float(values["weight_decay"]),
                         max_seconds=float(values["max_seconds"]) or None)


def custom_config(values: dict, slot: str) -> ModelConfig:
    """The custom slot's ModelConfig; ValueError (with the fix) when it cannot be built. Its
    number fields take any typed value (a widget bound would silently keep the old one), so
    their ranges are checked here."""
    prefix = SLOTS[slot][1]
    v = {f: values[prefix + f] for f in CUSTOM_DEFAULTS[slot]}
    v |= {f: CUSTOM_DEFAULTS[slot][f] for f, applies in APPLIES.items() if not applies(v)}
    for f in CUSTOM_NUMBERS:
        label, lowest, highest, _ = NUMBER_FIELDS[f]
        if not lowest <= v[f] <= highest:
            raise ValueError(f"{label} {format_number(v[f])} is outside {format_number(lowest)}–"
                             f"{format_number(highest)}: type a value in that range.")
    return ModelConfig(n_layer=int(v["n_layer"]), n_head=int(v["n_head"]), n_kv_head=int(v["n_kv_head"]),
                       d_model=int(v["d_model"]), position=v["position"],
                       rope_base=float(v["rope_base"]), window=int(v["window"]) or None,
                       sinks=int(v["sinks"]))


def custom_name(slot: str, config: ModelConfig) -> str:
    """Name a custom variant by what differs from the gpt2 baseline, e.g. 'custom 1: rope · MQA · w=4'."""
    base = PRESETS["gpt2"]
    parts = []
    if config.position != base.position:
        parts.append(config.position)
    if config.position == "rope" and config.rope_base != base.rope_base:
        parts.append(f"base {format_number(config.rope_base)}")
    if config.n_kv_head != config.n_head:
        parts.append("MQA" if config.n_kv_head == 1 else f"GQA-{config.n_kv_head}")
    if config.window is not None:
        parts.append(f"w={config.window}")
    if config.sinks:
        parts.append(f"{config.sinks} sinks")
    if config.n_layer != base.n_layer:
        parts.append(f"L={config.n_layer}")
    if config.d_model != base.d_model:
        parts.append(f"d={config.d_model}")
    if config.n_head != base.n_head:
        parts.append(f"{config.n_head} heads")
    return f"{SLOTS[slot][0]}: {' · '.join(parts) or 'as gpt2'}"


def variant_label(v: str) -> str:
    return SLOTS[v][0] if v in SLOTS else f"{v} (pretrained)" if v in PRETRAINED else v
