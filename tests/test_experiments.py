"""The experiments (gpt2viz.analysis.experiments) against their definitions and the properties each
alteration is defined by: reach l*(w-1), a window that covers the block is full attention,
pooling MHA into MHA changes nothing, uptraining recovers what pooling lost, learned positions
stop at their table, the last logit-lens row is the model's own prediction."""
import json

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_model

from gpt2viz import GPT2, ModelConfig
from gpt2viz.analysis.experiments import (
    gqa_frontier,
    length_curve,
    logit_lens,
    reach,
    receptive_field,
    sliding_token_losses,
    theory_reach,
    window_losses,
)
from gpt2viz.core.config import TrainSettings
from gpt2viz.text.corpus import Corpus, default_text
from gpt2viz.training.train import train


@pytest.fixture(scope="module")
def corpus():
    return Corpus.from_text(default_text()[:50_000], "start of pydoc topics")


@pytest.fixture(scope="module")
def quick():
    return TrainSettings(steps=100, batch_size=8, block_size=32, eval_every=100, warmup_steps=5)


@pytest.fixture(scope="module")
def mha(corpus, quick, tmp_path_factory):
    """A tiny trained MHA model (no cache: the test owns it)."""
    config = ModelConfig(n_layer=2, n_head=4, d_model=32, max_seq_len=128)
    return train(config, corpus, quick, use_cache=False)


@pytest.mark.parametrize("window", [2, 3, 5])
@pytest.mark.parametrize("position", [0, 3, 9, 40])
def test_receptive_reach_is_l_times_w_minus_1_on_random_weights(window, position):
    model = tiny_model(n_layer=4, window=window, position="rope")
    influence = receptive_field(model, torch.randint(0, 97, (50,)), position)
    expected = [min(position, layer * (window - 1)) for layer in range(1, 5)]
    assert reach(influence) == expected == theory_reach(4, window, position)
    for layer, back in enumerate(expected):  # contiguous: every position inside the reach counts
        assert influence[layer].tolist() == [j >= position - back for j in range(position + 1)]


@pytest.mark.parametrize("position_scheme", ["learned", "rope", "none"])
def test_full_attention_reaches_every_earlier_position_at_every_layer(position_scheme):
    model = tiny_model(n_layer=3, position=position_scheme)
    influence = receptive_field(model, torch.randint(0, 97, (30,)), 25)
    assert influence.all() and reach(influence) == [25, 25, 25]


def test_receptive_field_refuses_positions_past_the_text_or_the_table():
    model = tiny_model(position="learned")  # max_seq_len 64
    with pytest.raises(ValueError, match="past the text"):
        receptive_field(model, torch.randint(0, 97, (10,)), 10)
    with pytest.raises(ValueError, match="max_seq_len=64"):
        receptive_field(model, torch.randint(0, 97, (100,)), 80)


@pytest.mark.slow
def test_sliding_losses_score_each_token_with_exactly_the_last_context_tokens():
    """Stride 1: every token from position `context` on is scored after exactly context - 1
    earlier tokens placed at positions 0..context-1; earlier tokens see the block's start."""
    model = tiny_model(position="learned")
    ids = torch.randint(0, 97, (3, 41))
    x, y = ids[:, :-1], ids[:, 1:]
    context = 8
    got = sliding_token_losses(model, x, y, context, stride=1)
    for p in range(40):
        start = max(0, p - context + 1)
        logits = model(x[:, start:p + 1])[:, -1]
        assert torch.allclose(got[:, p], F.cross_entropy(logits, y[:, p], reduction="none"), atol=1e-10)


def test_length_curve_with_relative_positions_and_a_window_is_the_same_both_ways():
    """RoPE + window 3 over 2 layers: each output sees 4 tokens back and relative positions
    only, so cutting the context to 16 tokens changes nothing at any position."""
    model = tiny_model(n_layer=2, window=3, position="rope", max_seq_len=256)
    curve = length_curve(model, torch.randint(0, 97, (600,)), train_len=16, max_len=128, bucket=8)
    assert curve.limit is None and len(curve.loss) == len(curve.sliding_loss) == 16
    assert torch.allclose(torch.tensor(curve.loss), torch.tensor(curve.sliding_loss), atol=1e-10)


def test_length_curve_buckets_are_the_mean_per_token_loss_by_position():
    model = tiny_model(position="none")
    ids = torch.randint(0, 97, (300,))
    curve = length_curve(model, ids, train_len=16, max_len=64, bucket=16)
    x, y = ids[:256].view(4, 64), ids[1:257].view(4, 64)
    with torch.no_grad():
        per_token = F.cross_entropy(model(x).transpose(1, 2), y, reduction="none")  # (4, 64)
    assert curve.positions == [0, 16, 32, 48]
    for i, start in enumerate(curve.positions):
        assert abs(curve.loss[i] - float(per_token[:, start:start + 16].mean())) < 1e-10
    assert abs(curve.sliding_loss[0] - curve.loss[0]) < 1e-10  # the first window is the block's start


def test_learned_positions_stop_at_their_table_without_a_crash():
    model = tiny_model(position="learned", max_seq_len=64)
    curve = length_curve(model, torch.randint(0, 97, (600,)), train_len=32, max_len=256, bucket=16)
    assert curve.limit == 64
    assert len(curve.loss) == 64 // 16 and len(curve.sliding_loss) == 256 // 16  # cut context needs no table


@pytest.mark.slow
def test_a_window_that_covers_the_block_gives_the_full_loss_exactly(mha, corpus):
    result = window_losses(mha.model, corpus.val, 32, [4, 32, 64], [0, 2])
    by_key = {(r["window"], r["sinks"]): r["loss"] for r in result["rows"]}
    assert by_key[(32, 0)] == by_key[(64, 0)] == result["full_loss"]
    assert by_key[(32, 2)] == result["full_loss"]  # sinks add nothing when everything is visible
    assert by_key[(4, 0)] > result["full_loss"]
    # what lets window_losses skip those evaluations: the model with that window scores the same
    from gpt2viz.analysis.experiments import reconfigured
    from gpt2viz.training.train import evaluate
    for window, sinks in ((32, 0), (64, 2)):
        assert evaluate(reconfigured(mha.model, window=window, sinks=sinks), corpus.val, 32) \
            == result["full_loss"]


@pytest.mark.slow
def test_inference_sinks_equal_a_model_built_with_them(mha, corpus):
    """The experiment's window and sinks are the model's own: build the config directly."""
    from gpt2viz.training.train import evaluate

    result = window_losses(mha.model, corpus.val, 32, [4], [3])
    direct = GPT2(mha.model.config.replace(window=4, sinks=3))
    direct.load_state_dict(mha.model.state_dict())
    assert result["rows"][0]["loss"] == evaluate(direct.eval(), corpus.val, 32)


@pytest.mark.slow
def test_window_and_sinks_are_checked_first(mha, corpus):
    with pytest.raises(ValueError, match="window=0"):
        window_losses(mha.model, corpus.val, 32, [0], [0])
    with pytest.raises(ValueError, match="sinks=32"):
        window_losses(mha.model, corpus.val, 32, [4], [32])


@pytest.mark.slow
def test_pooling_keeps_mha_and_uptraining_recovers_mqa(mha, corpus, quick):
    assert mha.val_loss < corpus.unigram_loss()  # a model that learned something to lose
    result = gqa_frontier(mha.model, corpus, quick, uptrain_steps=20, seconds_per_step=0.1)
    rows = {r["n_kv_head"]: r for r in result["rows"]}
    assert list(rows) == [4, 2, 1]
    assert rows[4]["pooled_loss"] == result["base_loss"]  # to_gqa at n_kv_head = n_head: unchanged
    assert rows[1]["pooled_loss"] > result["base_loss"]
    assert rows[1]["uptrained_loss"] < rows[1]["pooled_loss"]
    head_dim = 32 // 4
    for kv, r in rows.items():
        assert r["kv_bytes_per_token"] == 2 * 2 * kv * head_dim * 4


@pytest.mark.slow
def test_uptraining_over_the_time_limit_is_refused_before_training(mha, corpus, quick):
    with pytest.raises(ValueError, match="over the 600 s limit; use at most 400 steps"):
        gqa_frontier(mha.model, corpus, quick, uptrain_steps=10_000, seconds_per_step=0.5)


def test_logit_lens_ends_at_the_model_prediction_and_starts_at_the_embeddings():
    model = tiny_model(position="learned")
    ids = torch.randint(0, 97, (12,))
    probs, top = logit_lens(model, ids)
    assert probs.shape == top.shape == (3, 12)  # embeddings + 2 layers
    final = model(ids[None])[0].softmax(-1)
    assert torch.allclose(probs[-1], final.max(-1).values) and torch.equal(top[-1], final.argmax(-1))
    embedded = model.wte(ids) + model.wpe(torch.arange(12))
    first = model.lm_head(model.ln_f(embedded)).softmax(-1)
    assert torch.allclose(probs[0], first.max(-1).values) and torch.equal(top[0], first.argmax(-1))


def test_cli_receptive_json_and_clear_errors(capsys):
    from gpt2viz.__main__ import main

    assert main(["experiment", "receptive", "--variant", "swa", "--weights", "random",
                 "--position", "100", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result == {"position": 100, "window": 16, "reach": [15, 30, 45, 60],
                      "theory": [15, 30, 45, 60]}
    assert main(["experiment", "receptive", "--variant", "gpt2", "--weights", "random",
                 "--position", "300"]) == 2
    assert "max_seq_len=128" in capsys.readouterr().err
    assert main(["experiment", "window", "--variant", "gpt2", "--windows", "0"]) == 2
    assert "window=0" in capsys.readouterr().err
    assert main(["experiment", "receptive", "--variant", "gpt2:window=abc", "--weights", "random"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "window" in err
