"""The experiments made for the real model (streaming, ablation, pooled KV heads),
checked on small random models against their definitions, and their command line's JSON."""
import json

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_model

from gpt2viz.__main__ import main
from gpt2viz.analysis import experiments as ex
from gpt2viz.cli import experiment as experiment_cli
from gpt2viz.weights.checkpoints import to_gqa

pytestmark = pytest.mark.slow  # runs the experiment commands: out of the quick loop

LLAMA = dict(position="rope", n_kv_head=2, norm="rmsnorm", mlp="swiglu", d_ff=48, bias=False)


def text_ids(n, seed=0):
    return torch.randint(0, 97, (n,), generator=torch.Generator().manual_seed(seed))


def test_ablating_a_head_zeroes_its_contribution_and_changes_the_loss():
    model = tiny_model(**LLAMA)
    ids = text_ids(60)
    out = ex.ablation(model, ids, layer=1, head=2)
    assert out["ablated"]["text_loss"] != out["base"]["text_loss"]
    # the same model with that head's columns of the output projection zeroed
    hd = model.config.head_dim
    edited = tiny_model(**LLAMA)
    with torch.no_grad():
        edited.blocks[1].attn.out_proj.weight[:, 2 * hd:3 * hd] = 0
    assert ex.ablation_losses(edited, ids) == pytest.approx(out["ablated"], abs=1e-12)
    assert ex.ablation_losses(model, ids) == pytest.approx(out["base"], abs=1e-12)  # hook removed
    assert ex.ablation(model, ids, layer=1, head=2, base=out["base"]) == out


def test_ablating_a_kv_group_zeroes_every_head_that_reads_it():
    model = tiny_model(**LLAMA)  # 4 query heads, 2 KV heads: group 1 is heads 2 and 3
    ids = text_ids(60)
    hd = model.config.head_dim
    edited = tiny_model(**LLAMA)
    with torch.no_grad():
        edited.blocks[0].attn.out_proj.weight[:, 2 * hd:4 * hd] = 0
    out = ex.ablation(model, ids, layer=0, kv_group=1)
    assert ex.ablation_losses(edited, ids) == pytest.approx(out["ablated"], abs=1e-12)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(layer=2, head=0), "layer 2 does not exist"),
    (dict(layer=0, head=4), "head 4 does not exist"),
    (dict(layer=0, kv_group=2), "kv_group 2 does not exist"),
    (dict(layer=0), "either a head or a kv_group"),
])
def test_ablation_refuses_heads_that_do_not_exist(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        ex.ablation(tiny_model(**LLAMA), text_ids(20), **kwargs)


def test_streaming_equals_a_model_built_with_that_window_and_sinks():
    model = tiny_model(**LLAMA)
    tokens = 400  # past BANDED_MIN_KEYS: windowed passes run the banded kernel
    ids = text_ids(tokens + 1)
    rows = ex.streaming_losses(model, ids, tokens, windows=[16, tokens], sinks=[0, 2])
    assert [(r["window"], r["sinks"]) for r in rows] == [(None, 0), (16, 0), (16, 2), (tokens, 0),
                                                         (tokens, 2)]
    x, y = ids[:tokens][None], ids[1:][None]
    for row in rows:
        built = tiny_model(**LLAMA, window=row["window"], sinks=row["sinks"] if row["window"] else 0)
        with torch.no_grad():
            losses = F.cross_entropy(built.trace(x).logits[0], y[0], reduction="none")  # eager
        assert row["loss"] == pytest.approx(float(losses.mean()), abs=1e-9)
        assert row["buckets"]["0-255"] == pytest.approx(float(losses[:256].mean()), abs=1e-9)
        assert row["buckets"]["256-1023"] == pytest.approx(float(losses[256:].mean()), abs=1e-9)
        assert row["buckets"]["1024-2047"] is None and row["buckets"]["2048-4095"] is None
        assert row["per_token"] == pytest.approx(losses.tolist(), abs=1e-9)
        assert sum(row["per_token"]) / tokens == pytest.approx(row["loss"], abs=1e-12)
    full = rows[0]["loss"]
    assert rows[3]["loss"] == pytest.approx(full, abs=1e-12) == rows[4]["loss"]  # window >= tokens
    assert rows[1]["loss"] != full
    # the cost where a window acts: positions w .. tokens-1, minus full attention's loss there
    full_losses = torch.tensor(rows[0]["per_token"])
    for row in rows[1:3]:
        gap = torch.tensor(row["per_token"]) - full_losses
        assert row["cost_past_window"] == pytest.approx(float(gap[16:].mean()), abs=1e-6)
        assert gap[:16].abs().max() < 1e-6  # before w keys the window changes nothing
    assert rows[3]["cost_past_window"] is None and "cost_past_window" not in rows[0]


def test_reconfigured_shares_the_weights():
    model = tiny_model(**LLAMA)
    clone = ex.reconfigured(model, window=8, sinks=1)
    assert clone.config.window == 8
    assert clone.blocks[0].mlp.c_gate.weight.data_ptr() == model.blocks[0].mlp.c_gate.weight.data_ptr()


def test_pooled_kv_losses_pool_to_every_divisor():
    model = tiny_model(**{**LLAMA, "n_kv_head": 4})
    ids = text_ids(50)
    out = ex.pooled_kv_losses(model, ex.text_loss(ids))
    assert [r["n_kv_head"] for r in out["rows"]] == [4, 2, 1]
    mqa = to_gqa(model, 1)
    with torch.no_grad():
        expected = F.cross_entropy(mqa(ids[None, :-1])[0], ids[1:])
        own = F.cross_entropy(model(ids[None, :-1])[0], ids[1:])
    assert out["rows"][2]["pooled_loss"] == pytest.approx(float(expected), abs=1e-9)
    assert out["rows"][0]["pooled_loss"] == out["base_loss"] == pytest.approx(float(own), abs=1e-9)
    assert out["base_loss"] != out["rows"][2]["pooled_loss"]


@pytest.fixture
def tiny_as_pretrained(monkeypatch):
    """The command line with a tiny Llama body standing in for the real model."""
    model = tiny_model(**LLAMA, dtype=torch.float32, vocab_size=400)  # past PRETRAINED_LOW_ID
    model.pretrained = "smollm2-135m"
    monkeypatch.setattr(experiment_cli, "load_variant", lambda spec, *a: experiment_cli.Loaded(
        model, lambda text: torch.tensor([b % 97 for b in text.encode()])))
    return model


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_json_of_streaming_heads_and_ablate(tiny_as_pretrained, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. " * 40)
    assert main(["experiment", "streaming", "--variant", "smollm2-135m", "--tokens", "300",
                 "--windows", "32", "--sinks", "0", "4", "--text", str(text), "--json"]) == 0
    out = last_json(capsys)
    assert set(out) == {"variant", "tokens", "text_sha256", "rows"}
    assert set(out["rows"][0]) == {"window", "sinks", "loss", "ppl", "buckets"}
    assert set(out["rows"][0]["buckets"]) == {"0-255", "256-1023", "1024-2047", "2048-4095"}
    assert main(["experiment", "heads", "--variant", "smollm2-135m", "--text", str(text), "--json"]) == 0
    out = last_json(capsys)
    assert set(out) == {"variant", "n_layer", "n_head", "n_kv_head", "heads"}
    assert set(out["heads"][0]) == {"layer", "head", "kv_head", "first_token_mass", "prev_token",
                                    "induction", "entropy", "mean_distance"}
    assert main(["experiment", "ablate", "--variant", "smollm2-135m", "--layer", "1", "--kv-group",
                 "0", "--text", str(text), "--json"]) == 0
    out = last_json(capsys)
    assert out["head"] is None and out["kv_group"] == 0
    assert set(out["base"]) == set(out["ablated"]) == {"text_loss", "induction_loss"}
    assert main(["experiment", "gqa", "--variant", "smollm2-135m", "--text", str(text), "--json"]) == 0
    out = last_json(capsys)
    assert [r["n_kv_head"] for r in out["rows"]] == [2, 1] and "uptraining" in out  # its own first


def test_cli_refuses_uptraining_a_pretrained_model(tiny_as_pretrained, capsys):
    assert main(["experiment", "gqa", "--variant", "smollm2-135m", "--uptrain-steps", "5"]) == 2
    reason = "not built yet" if torch.cuda.is_available() else "not interactive on a CPU"
    assert reason in capsys.readouterr().err
