"""The model and the machine it runs on: ModelConfig, positions, attention kernels (and the one
place that picks which runs), the KV cache, GPT2 itself, memory checks, whole-file writes.
Imports nothing else of gpt2viz."""
