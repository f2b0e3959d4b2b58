"""gpt2viz: GPT-2 and its modern alterations (RoPE, GQA, sliding windows), built to be looked at.

The layers, each importing only those before it: core (config, positions, attention, KV cache,
model) → text (tokenizer, corpus) → weights (checkpoints, cache, pretrained) → training →
analysis (experiments, heads, bench) → cli | viz → dashboard (the only Streamlit importer).
This module re-exports the public API DESIGN.md lists."""
from gpt2viz.core.attention import attention
from gpt2viz.core.config import PRESETS, ModelConfig, preset
from gpt2viz.core.model import GPT2, Trace
from gpt2viz.text.tokenizer import get_tokenizer
from gpt2viz.weights.checkpoints import load_hf_gpt2, to_gqa

__all__ = ["GPT2", "ModelConfig", "PRESETS", "Trace", "attention", "get_tokenizer",
           "load_hf_gpt2", "preset", "to_gqa"]
