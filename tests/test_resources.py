"""Memory checks that know the device: CUDA work against the GPU's free memory, CPU work
against RAM; bench rows that do not fit are skipped with a note while the rest are measured."""
import pytest
import torch

from gpt2viz.analysis.bench import (
    attention_memory_estimate,
    attention_plan,
    bench_attention,
    bench_forward,
)
from gpt2viz.core import resources
from gpt2viz.core.config import ModelConfig
from gpt2viz.core.resources import available_memory_bytes, ensure_fits, memory_shortfall

GiB = 1024**3


def fake_gpu(monkeypatch, free, reserved=0, allocated=0):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 * GiB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: reserved)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated)


def test_cuda_work_is_checked_against_the_gpus_free_memory(monkeypatch):
    fake_gpu(monkeypatch, free=2 * GiB, reserved=3 * GiB, allocated=1 * GiB)
    assert available_memory_bytes("cuda") == 4 * GiB  # free + what our allocator holds unused
    assert available_memory_bytes(torch.device("cuda:0")) == 4 * GiB
    with pytest.raises(MemoryError, match="more than the 3.6 GiB this GPU can spare"):
        ensure_fits(4 * GiB, "a big thing", "cuda")
    ensure_fits(3 * GiB, "a smaller thing", "cuda")


def test_cpu_work_is_checked_against_ram(monkeypatch):
    fake_gpu(monkeypatch, free=4096 * GiB)  # a roomy GPU changes nothing for CPU work
    ram = available_memory_bytes("cpu")
    with open("/proc/meminfo") as meminfo:
        listed = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in meminfo}
    # RAM moves while other tests run, so each read is compared to the machine within a margin
    assert ram <= listed["MemTotal"]  # not the fake GPU's 4 TiB
    assert abs(ram - listed["MemAvailable"]) < 0.2 * listed["MemTotal"]
    assert abs(available_memory_bytes() - listed["MemAvailable"]) < 0.2 * listed["MemTotal"]
    problem = memory_shortfall(ram, "all of it", "cpu")
    assert problem and "this machine can spare" in problem
    assert memory_shortfall(1024, "a little", "cpu") is None


def test_attention_rows_that_do_not_fit_are_skipped_with_a_note(monkeypatch):
    """A budget that holds n = 128 but not eager's n x n scores at n = 4096: the run goes on."""
    budget = attention_memory_estimate("eager", 1024, None, 4, 4, 16) / resources.USABLE_FRACTION["cpu"]
    monkeypatch.setattr(resources, "available_memory_bytes", lambda device="cpu": int(budget))
    rows = bench_attention([128, 4096], [32], [4], ["eager", "sdpa"], n_head=4, head_dim=16,
                           repeats=1)
    measured = {(r["n"], r["impl"]) for r in rows if "median_s" in r}
    skipped = {(r["n"], r["impl"]): r["note"] for r in rows if "note" in r}
    assert {(128, "eager"), (128, "sdpa"), (4096, "sdpa (dense causal)")} <= measured
    assert set(skipped) == {(4096, "eager"), (4096, "sdpa")}
    assert all(note.startswith("skipped: ") and "needs an estimated" in note
               for note in skipped.values())
    assert all(r["vs_dense"] is not None for r in rows if "median_s" in r)
    assert [p[:2] for p in attention_plan([128, 4096], [32], [4], ["eager"], n_head=4,
                                          head_dim=16)] == [(128, None), (4096, None), (128, 32)]


def test_a_plan_where_nothing_fits_is_refused(monkeypatch):
    monkeypatch.setattr(resources, "available_memory_bytes", lambda device="cpu": 1000)
    with pytest.raises(MemoryError, match="needs an estimated"):
        bench_attention([128], [32], [4], ["sdpa"], n_head=4, head_dim=16)


def test_forward_rows_that_do_not_fit_are_skipped_with_a_note(monkeypatch):
    cfg = ModelConfig(vocab_size=300, n_layer=1, n_head=2, d_model=32, max_seq_len=4096)
    monkeypatch.setattr(resources, "available_memory_bytes", lambda device="cpu": 3 * 1024**2)
    rows = bench_forward({"tiny": cfg}, [64, 4096], repeats=1)
    assert "median_s" in rows[0] and "note" not in rows[0]
    assert rows[1]["n"] == 4096 and rows[1]["note"].startswith("skipped: a forward pass of tiny")


def test_numbers_read_in_full():
    """Issue 31.10: a RoPE base of 1e6 read "1e+06"."""
    from gpt2viz.core.resources import format_number
    from gpt2viz.viz.rope import score_decay

    assert [format_number(x) for x in (1e6, 10000.0, 2**31 - 1, 0.5, 3e-4)] == \
        ["1,000,000", "10,000", "2,147,483,647", "0.5", "0.0003"]
    assert "base 1,000,000" in score_decay({}, 64, 1e6).layout.title.text
