"""gpt2viz.analysis.bench and its command line (bench_cli): the rows' reference and measurements, the
memory figures, decode-cache bytes against the formula, FLOPs counted matmul by matmul."""
import json

import pytest
import torch
from conftest import causal_allowed

from gpt2viz.analysis.bench import (
    attended_pairs,
    bench_attention,
    bench_decode,
    bench_forward,
    bench_generate,
    decode_family,
    estimate_pass_seconds,
    forward_flops,
    measured_forward_rate,
    peak_memory,
)
from gpt2viz.cli.bench import render
from gpt2viz.core.attention import attention
from gpt2viz.core.config import ModelConfig
from gpt2viz.core.kv_cache import KVCache
from gpt2viz.core.model import GPT2


@pytest.mark.parametrize("n, w", [(1, None), (10, None), (10, 3), (10, 1), (10, 10), (10, 50)])
def test_attended_pairs_counts_the_mask(n, w):
    brute = sum(1 for i in range(n) for j in range(n) if j <= i and (w is None or i - w < j))
    assert attended_pairs(n, w) == brute


def test_attention_rows_have_reference_and_measurements():
    rows = bench_attention([256], [32], [4, 1], ["sdpa", "banded"], n_head=4, head_dim=16, repeats=2)
    assert rows[0]["impl"].startswith("sdpa (dense") and rows[0]["vs_dense"] == 1.0
    assert len(rows) == 1 + 2 * 2
    for row in rows:
        assert row["median_s"] > 0 and row["peak_bytes"] > 0 and row["flops"] > 0
    # GQA moves fewer bytes: k and v are read at n_kv_head heads
    by_kv = {r["n_kv_head"]: r["min_bytes"] for r in rows[1:]}
    assert by_kv[1] < by_kv[4]
    assert "n_kv_head" in render(rows) and json.loads(render(rows, "json"))[0]["n"] == 256
    assert render(rows, "csv").splitlines()[0].startswith("bench,impl,n")


@pytest.mark.slow
def test_banded_peak_memory_grows_linearly_in_n():
    rows = bench_attention([1024, 2048], [64], [4], ["banded"], n_head=4, head_dim=16, repeats=1)
    peaks = {r["n"]: r["peak_bytes"] for r in rows if r["impl"] == "banded"}
    assert 1.8 < peaks[2048] / peaks[1024] < 2.2


def test_oversized_requests_are_refused_up_front():
    with pytest.raises(MemoryError, match="needs an estimated"):
        bench_attention([2_000_000], [None], [12], ["eager"])


@pytest.mark.slow
def test_generate_bench_matches_tokens():
    cfg = ModelConfig(vocab_size=300, n_layer=2, n_head=4, d_model=32, max_seq_len=64)
    rows = bench_generate(8, 8, repeats=1, config=cfg, with_hf=True)
    assert {r["impl"] for r in rows} >= {"cached", "uncached"}
    assert all(r["same_tokens_as_cached"] for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("sinks, bound", [(0, 1.15), (4, 1.2)])
@pytest.mark.parametrize("hkv", [4, 1])
def test_banded_tensor_high_water_mark_is_about_one_output(sinks, bound, hkv):
    """Flash-like memory: the output, plus one group of chunks (1/BANDED_GROUPS of it) and
    small masks; the old kernel padded, copied and flipped q, k, v (about 3x)."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 4096, 16, generator=gen)
    k, v = (torch.randn(1, hkv, 4096, 16, generator=gen) for _ in range(2))
    with torch.inference_mode():
        out = attention(q, k, v, window=64, sinks=sinks, impl="banded")
        peak = peak_memory(lambda: attention(q, k, v, window=64, sinks=sinks, impl="banded"),
                           torch.device("cpu"))
    assert out.nbytes <= peak <= bound * out.nbytes


def test_tensor_high_water_mark_counts_allocations_not_views():
    x = torch.randn(256, 256)
    cpu = torch.device("cpu")
    assert peak_memory(lambda: x[1:].transpose(0, 1).unsqueeze(0)[..., ::2], cpu) == 0
    assert peak_memory(lambda: x.add_(1), cpu) == 0  # in place
    assert peak_memory(lambda: x + 1, cpu) == x.nbytes


def test_process_memory_sees_what_a_call_touches():
    from gpt2viz.analysis.bench import process_peak_bytes

    big = process_peak_bytes(lambda: torch.ones(64, 2**20 // 4 * 4))  # 64 MiB, written
    if big is None:
        pytest.skip("/proc/self/clear_refs is not writable here")
    assert big >= 60 * 2**20
    assert process_peak_bytes(lambda: None) < 8 * 2**20


def test_decode_cache_bytes_are_exact_flat_past_the_window_and_scale_with_kv_heads():
    body = ModelConfig(vocab_size=100, n_layer=2, n_head=4, d_model=32)
    family = decode_family(body, window=16, sinks=2)
    rows = bench_decode(family, contexts=(8, 32, 64), steps=2)
    by = {(r["variant"], r["context"]): r for r in rows}
    for r in rows:
        cfg = family[r["variant"]]
        written = r["context"] + 1 + 2  # the context, the warm-up step, the 2 timed steps
        slots = written if cfg.window is None else min(written, cfg.window + cfg.sinks)
        assert r["cache_slots"] == slots
        assert r["cache_bytes"] == r["cache_bytes_analytic"] == slots * 2 * 2 * cfg.n_kv_head * 8 * 4
        assert r["ms_per_token"] > 0 and r["min_ms"] <= r["ms_per_token"] <= r["max_ms"] and r["first_ms"] > 0
    assert by[("MHA · window 16 + 2 sinks", 32)]["cache_bytes"] == by[("MHA · window 16 + 2 sinks", 64)]["cache_bytes"]
    assert by[("MHA · full", 64)]["cache_bytes"] > by[("MHA · full", 32)]["cache_bytes"]
    assert by[("GQA 2 · full", 64)]["cache_bytes"] * 2 == by[("MHA · full", 64)]["cache_bytes"]
    assert by[("MQA · full", 64)]["cache_bytes"] * 4 == by[("MHA · full", 64)]["cache_bytes"]


def test_decode_steps_continue_the_cache_a_prompt_would_leave():
    """bench_decode fills the cache with begin/store instead of a forward pass; decode_step on
    a cache filled by a real prompt gives the logits of the uncached forward pass."""
    cfg = ModelConfig(vocab_size=100, n_layer=2, n_head=4, n_kv_head=2, d_model=32, window=8,
                      sinks=2, position="alibi")
    torch.manual_seed(0)
    model = GPT2(cfg).eval()
    idx = torch.randint(0, 100, (1, 30))
    with torch.inference_mode():
        cache = KVCache(cfg, 1, 31, "cpu", torch.float32)
        model.decode_step(idx[:, :29], cache)
        last = model.decode_step(idx[:, 29:], cache)
        assert torch.allclose(last[0, -1], model(idx)[0, -1], atol=1e-5)


def test_decode_plan_refuses_a_cache_that_does_not_fit():
    huge = ModelConfig(vocab_size=100, n_layer=48, n_head=64, d_model=4096)
    with pytest.raises(MemoryError, match="needs an estimated"):
        bench_decode({"huge": huge}, contexts=(2_000_000,), steps=1)


@pytest.mark.slow
def test_bench_generate_command_reports_cache_bytes_at_each_context(capsys):
    from gpt2viz.__main__ import main

    assert main(["bench", "generate", "--prompt", "4", "--new-tokens", "2", "--repeats", "1",
                 "--contexts", "16", "300", "--steps", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    decode = [r for r in rows if r["bench"] == "decode"]
    assert {r["context"] for r in decode} == {16, 300}
    assert {r["variant"] for r in decode} >= {"MHA · full", "MQA · window 256 + 4 sinks"}
    for r in decode:
        assert r["cache_bytes"] == r["cache_bytes_analytic"] > 0
    window = {r["context"]: r["cache_slots"] for r in decode if r["variant"] == "GQA 3 · window 256"}
    assert window == {16: 19, 300: 256}  # 16 + the warm-up + 2 steps; then the rolling buffer's 256
    assert all(r["same_tokens_as_cached"] for r in rows if r["bench"] == "generate")


def brute_force_pairs(n, window):
    return int(causal_allowed(n, window).sum())


def test_forward_flops_count_every_matmul():
    cfg = ModelConfig(vocab_size=300, n_layer=2, n_head=4, n_kv_head=2, d_model=32, max_seq_len=64,
                      window=8)
    (row,) = bench_forward({"m": cfg}, [64], repeats=1)
    model = GPT2(cfg)
    n = 64
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    dense = 2 * n * sum(m.weight.numel() for m in linears)  # lm_head is one of them (tied to wte)
    attention = cfg.n_layer * 2 * 2 * cfg.n_head * cfg.head_dim * brute_force_pairs(n, cfg.window)
    assert row["flops"] == dense + attention
    assert row["attention_flops"] == attention


def test_rows_name_the_kernel_they_measured(monkeypatch):
    import gpt2viz.core.attention as attention_module

    calls = []
    original = attention_module.banded_attention
    monkeypatch.setattr(attention_module, "banded_attention",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    for window, expect_banded in ((1024, False), (64, True)):
        calls.clear()
        rows = bench_attention([512], [window], [4], ["banded"], n_head=4, head_dim=16, repeats=1)
        (row,) = [r for r in rows if r["impl"] == "banded"]
        assert bool(calls) == expect_banded
        assert row["ran"] == ("banded" if calls else "sdpa")


def test_a_long_pass_is_estimated_from_two_timed_passes_of_the_model_itself():
    model = GPT2(ModelConfig(vocab_size=64, n_layer=2, n_head=2, d_model=16, max_seq_len=512)).eval()
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    short, long = estimate_pass_seconds(model, 128), estimate_pass_seconds(model, 512)
    assert calls == [(1, 256), (1, 256)]  # timed twice on 256 tokens, then kept for this model
    assert short > 0 and long / short == pytest.approx(
        forward_flops(model.config, 512) / forward_flops(model.config, 128))
    estimate_pass_seconds(model, 64)
    assert len(calls) == 2
    other = GPT2(model.config.replace(max_seq_len=100)).eval()
    other.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    measured_forward_rate(other)
    assert calls[2:] == [(1, 100), (1, 100)]  # never past a model's context
