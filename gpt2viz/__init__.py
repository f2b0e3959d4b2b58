"""gpt2viz: GPT-2 and its modern alterations (RoPE, GQA, sliding windows), built to be looked at."""
from .config import PRESETS, ModelConfig, preset
from .model import GPT2, Trace

__all__ = ["GPT2", "ModelConfig", "PRESETS", "Trace", "preset"]
