"""KV cache for generation: n_kv_head heads per layer, never repeated copies.

With a sliding window the cache is a rolling buffer of `window` slots, as in Mistral's
reference: token t lives in slot t % window, so memory stops growing once the window is
full. Slot order does not matter to attention (softmax sums over keys), only which slots
hold real tokens.
"""
from __future__ import annotations

import torch

from .config import ModelConfig


class KVCache:
    def __init__(self, config: ModelConfig, batch: int, max_tokens: int, device, dtype):
        self.slots = max_tokens if config.window is None else min(config.window, max_tokens)
        shape = (config.n_layer, batch, config.n_kv_head, self.slots, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)  # (L, B, n_kv_head, slots, hd)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.real = torch.zeros(batch, self.slots, dtype=torch.bool, device=device)
        self.length = 0  # tokens written so far, padding included
        self.n_real = torch.zeros(batch, dtype=torch.long, device=device)  # next position
        self.decoding = False  # False while the prompt runs, True for one-token steps after
        self.step_slots: list[int] = []
        self.key_mask: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes

    def begin(self, new_tokens: int, padding_mask: torch.Tensor | None):
        """Account for the tokens of this step; return their positions' offset (B,)."""
        if self.length and new_tokens != 1:
            raise ValueError("after the prompt, the cache takes one token per step.")
        self.decoding = self.length > 0
        offset = self.n_real.clone()
        batch = self.real.shape[0]
        new_real = (torch.ones(batch, new_tokens, dtype=torch.bool, device=self.real.device)
                    if padding_mask is None else padding_mask)
        self.step_slots = self._slots_for(new_tokens)  # where store() writes this step's K/V
        self.real[:, self.step_slots] = new_real[:, -len(self.step_slots):]
        self.n_real += new_real.sum(dim=1)
        self.length += new_tokens
        real = self.real[:, :min(self.length, self.slots)]
        self.key_mask = None if bool(real.all()) else real  # for every layer of this step
        return offset

    def _slots_for(self, new_tokens: int) -> list[int]:
        """Slots of the last min(new_tokens, slots) of the tokens being written."""
        first = self.length + max(0, new_tokens - self.slots)
        return [t % self.slots for t in range(first, self.length + new_tokens)]

    def store(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write k, v (B, n_kv_head, T, hd) of the tokens `begin` just counted."""
        slots = self.step_slots
        self.k[layer][:, :, slots] = k[:, :, -len(slots):]
        self.v[layer][:, :, slots] = v[:, :, -len(slots):]

    def keys_values(self, layer: int):
        """(B, n_kv_head, used, hd) K and V over the filled slots, and their key mask."""
        used = min(self.length, self.slots)
        return self.k[layer][:, :, :used], self.v[layer][:, :, :used], self.key_mask
