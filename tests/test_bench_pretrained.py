"""Decoding a pretrained model under full attention, a window and window + sinks
(bench.pretrained_family): its own weights, shared, and the rolling cache's bytes."""
import torch
from conftest import tiny_model

from gpt2viz.analysis.bench import bench_decode, pretrained_family
from gpt2viz.core.model import GPT2

LLAMA = dict(position="rope", n_kv_head=2, norm="rmsnorm", mlp="swiglu", d_ff=48, bias=False,
             dtype=torch.float32)


def test_pretrained_family_decodes_with_its_own_weights_and_a_flat_rolling_cache(monkeypatch):
    model = tiny_model(**LLAMA)  # max_seq_len 64: the last context runs past it (RoPE)
    model.pretrained = "smollm2-135m"
    family = pretrained_family(model, window=16, sinks=2)
    assert list(family) == ["smollm2-135m · full", "smollm2-135m · window 16",
                            "smollm2-135m · window 16 + 2 sinks"]
    weights = model.wte.weight.data_ptr()
    assert all(m.wte.weight.data_ptr() == weights for m in family.values())
    seen = []
    step = GPT2.decode_step
    monkeypatch.setattr(GPT2, "decode_step", lambda self, *a: (seen.append(self.wte.weight.data_ptr()),
                                                               step(self, *a))[1])
    contexts, steps = (8, 32, 48, 80), 2
    rows = bench_decode({n: m.config for n, m in family.items()}, contexts, steps, models=family)
    assert set(seen) == {weights}  # never random weights
    cfg = model.config
    per_slot = 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * 4  # K and V, float32
    by = {(r["variant"], r["context"]): r for r in rows}
    for n in contexts:
        assert by[("smollm2-135m · full", n)]["cache_bytes"] == (n + steps + 1) * per_slot
        assert by[("smollm2-135m · window 16", n)]["cache_bytes"] == min(n + steps + 1, 16) * per_slot
        assert by[("smollm2-135m · window 16 + 2 sinks", n)]["cache_bytes"] == min(n + steps + 1, 18) * per_slot  # + the warm-up step
    for r in rows:
        assert r["cache_bytes"] == r["cache_bytes_analytic"]
    # past w + s the rolling cache stops growing; full attention keeps growing
    flat = [by[("smollm2-135m · window 16 + 2 sinks", n)]["cache_bytes"] for n in (32, 48, 80)]
    assert len(set(flat)) == 1
    assert by[("smollm2-135m · full", 80)]["cache_bytes"] > by[("smollm2-135m · full", 48)]["cache_bytes"]
