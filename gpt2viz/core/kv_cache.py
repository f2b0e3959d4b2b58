"""KV cache for generation: n_kv_head heads per layer, never repeated copies.

With a sliding window the cache is a rolling buffer, as in Mistral's reference, plus the
attention sinks kept for good (StreamingLLM): the token at position p lives in slot p while
p < sinks, else in slot sinks + (p - sinks) % window, so memory stops growing at
sinks + window slots. Slots follow each row's own positions (real tokens only), so a
left-padded row keeps its own first tokens as sinks. Slot order does not matter to attention
(softmax sums over keys); which slots hold real tokens does, and ALiBi reads each slot's
true position.

Under dynamic RoPE scaling every key is rotated for one sequence length, fixed when the prompt
is written: `rope_length`, the longest row's real prompt tokens plus the capacity left
(max_tokens - the prompt's length), i.e. the length the sequence has once the cache is full.
"""
from __future__ import annotations

import torch

from gpt2viz.core.config import ModelConfig


class KVCache:
    def __init__(self, config: ModelConfig, batch: int, max_tokens: int, device, dtype):
        self.window, self.sinks = config.window, config.sinks
        self.max_tokens = max_tokens
        self.rope_length: int | None = None  # under dynamic RoPE scaling: set by the prompt's begin()
        self._dynamic = config.position == "rope" and config.rope_scaling == "dynamic"
        self.slots = (max_tokens if config.window is None
                      else min(config.sinks + config.window, max_tokens))
        shape = (config.n_layer, batch, config.n_kv_head, self.slots, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)  # (L, B, n_kv_head, slots, hd)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.real = torch.zeros(batch, self.slots, dtype=torch.bool, device=device)
        self.positions = torch.zeros(batch, self.slots, dtype=torch.long, device=device)
        self.length = 0  # tokens written so far, padding included
        self.n_real = torch.zeros(batch, dtype=torch.long, device=device)  # next position
        self.decoding = False  # False while the prompt runs, True for one-token steps after
        self.step_rows = self.step_tokens = self.step_slots = None  # what store() writes
        self.key_mask: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes

    def begin(self, positions: torch.Tensor, padding_mask: torch.Tensor | None):
        """Account for this step's tokens at positions (B, T): pick the slot of every token
        that is still in the cache once the step is written."""
        batch, new_tokens = positions.shape
        if self.length and new_tokens != 1:
            raise ValueError("after the prompt, the cache takes one token per step.")
        self.decoding = self.length > 0
        real = (torch.ones_like(positions, dtype=torch.bool) if padding_mask is None
                else padding_mask)
        self.n_real += real.sum(dim=1)
        if self.length == 0 and self._dynamic:
            self.rope_length = int(self.n_real.max()) + max(self.max_tokens - new_tokens, 0)
        self.length += new_tokens
        kept = real & (self._is_sink(positions) | (positions >= self.n_real[:, None] - self._rolling()))
        self.step_rows, self.step_tokens = kept.nonzero(as_tuple=True)
        kept_positions = positions[self.step_rows, self.step_tokens]
        self.step_slots = self._slot_of(kept_positions)
        self.real[self.step_rows, self.step_slots] = True
        self.positions[self.step_rows, self.step_slots] = kept_positions
        used = self.real[:, :self.used]
        self.key_mask = None if bool(used.all()) else used  # for every layer of this step

    @property
    def used(self) -> int:
        """Slots filled in the fullest row (slot p holds position p until the buffer rolls)."""
        return min(int(self.n_real.max()), self.slots)

    def _rolling(self) -> int:
        return self.slots if self.window is None else self.window

    def _is_sink(self, positions):
        return positions < (self.sinks if self.window is not None else 0)

    def _slot_of(self, positions):
        if self.window is None:
            return positions
        rolled = self.sinks + (positions - self.sinks) % self.window
        return torch.where(positions < self.sinks, positions, rolled)

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write k, v (B, n_kv_head, T, hd) of the tokens `begin` just counted."""
        rows, tokens, slots = self.step_rows, self.step_tokens, self.step_slots
        self.k[layer][rows, :, slots] = k[rows, :, tokens]  # (kept, n_kv_head, hd)
        self.v[layer][rows, :, slots] = v[rows, :, tokens]

    def keys_values(self, layer: int):
        """(B, n_kv_head, used, hd) K and V over the filled slots, their key mask and their
        true positions (B, used)."""
        used = self.used
        return (self.k[layer][:, :, :used], self.v[layer][:, :, :used], self.key_mask,
                self.positions[:, :used])
