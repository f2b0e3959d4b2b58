import json

import pytest

from gpt2viz.bench import attended_pairs, bench_attention, bench_generate, render
from gpt2viz.config import ModelConfig


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


def test_banded_peak_memory_grows_linearly_in_n():
    rows = bench_attention([1024, 2048], [64], [4], ["banded"], n_head=4, head_dim=16, repeats=1)
    peaks = {r["n"]: r["peak_bytes"] for r in rows if r["impl"] == "banded"}
    assert 1.8 < peaks[2048] / peaks[1024] < 2.2


def test_oversized_requests_are_refused_up_front():
    with pytest.raises(MemoryError, match="needs an estimated"):
        bench_attention([2_000_000], [None], [12], ["eager"])


def test_generate_bench_matches_tokens():
    cfg = ModelConfig(vocab_size=300, n_layer=2, n_head=4, d_model=32, max_seq_len=64)
    rows = bench_generate(8, 8, repeats=1, config=cfg, with_hf=True)
    assert {r["impl"] for r in rows} >= {"cached", "uncached"}
    assert all(r["same_tokens_as_cached"] for r in rows)
