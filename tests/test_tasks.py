"""Synthetic tasks (issue 28): seeded generators that score exactly the determined positions,
attention-only bodies, beyond-reach chance for windows, length refusal, task training with
its cache, bad knobs, and the induction phase change (1 layer cannot copy, 2 layers can)."""
import json

import pytest
import torch

from gpt2viz.__main__ import main
from gpt2viz.analysis.heads import induction_score, repeated_random_tokens
from gpt2viz.analysis.task_models import (
    TaskSettings,
    accuracy_by_length,
    held_out,
    task_config,
    train_task,
)
from gpt2viz.analysis.tasks import (
    CopyTask,
    PasskeyTask,
    RecallTask,
    TaskBatch,
    make_task,
    source_attention,
)
from gpt2viz.core.config import ModelConfig, preset
from gpt2viz.core.model import GPT2
from gpt2viz.weights.checkpoints import load_checkpoint, save_checkpoint

TASKS = [CopyTask(), RecallTask(), PasskeyTask()]


def argmax_accuracy(model, batch) -> float:
    """Recomputed here from the model's argmax on the batch, not through the library."""
    with torch.no_grad():
        predicted = model(batch.ids).argmax(dim=-1)
    return (predicted[batch.mask] == batch.targets[batch.mask]).float().mean().item()


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_generators_are_seeded_and_reproducible(task):
    a, b, c = task.generate(16, seed=3), task.generate(16, seed=3), task.generate(16, seed=4)
    for name in ("ids", "targets", "mask", "source", "distance"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.ids, c.ids)
    assert a.ids.shape == (16, task.length) and a.ids.dtype == torch.long
    assert 0 <= int(a.ids.min()) and int(a.ids.max()) < task.vocab_size
    assert (a.source[a.mask] >= 0).all() and (a.source[~a.mask] == -1).all()


def test_copy_scores_exactly_the_repeated_tokens_after_the_first():
    task = CopyTask()
    batch = task.generate(64, seed=0)
    for row in range(64):
        ids, mask, d = batch.ids[row].tolist(), batch.mask[row], int(batch.distance[row])
        scored = mask.nonzero().flatten().tolist()
        start, n = scored[0], len(scored) + 1  # the copy's tokens after its first are scored
        assert scored == list(range(start, start + n - 1))  # one contiguous run
        assert task.min_segment <= n <= task.max_segment and start - d >= 0
        segment = ids[start - d:start - d + n]
        assert ids[start:start + n] == segment and len(set(segment)) == n  # distinct tokens
        filler = [t for i, t in enumerate(ids) if not (start - d <= i < start - d + n or start <= i < start + n)]
        assert not set(filler) & set(segment)  # the filler never holds a segment token
        assert all(ids.count(t) == 2 for t in segment)  # each at i and i + d, nowhere else
        for p in scored:
            earlier = [q for q in range(p) if ids[q] == ids[p]]
            assert len(earlier) == 1  # exactly one earlier occurrence: the answer is determined
            assert batch.targets[row, p] == ids[p + 1] == ids[earlier[0] + 1]
            assert batch.source[row, p] == earlier[0] + 1
        for p in set(range(task.length - 1)) - set(scored):  # nothing else is determined:
            assert (ids[p] not in segment  # a filler token (its successor is random),
                    or p < start  # the segment's first occurrence (its next token is new),
                    or p == start + n - 1)  # or the copy's last token (filler follows)


def test_recall_scores_the_value_after_each_query_key():
    task = RecallTask(pairs=6, queries=4, length=40, vocab=33)
    batch = task.generate(32, seed=1)
    for row in range(32):
        ids, mask = batch.ids[row].tolist(), batch.mask[row]
        keys, values = ids[0:12:2], ids[1:12:2]
        assert len(set(keys)) == 6 and all(1 <= k <= task.n_keys for k in keys)
        assert all(task.n_keys < v < task.vocab for v in values)
        scored = mask.nonzero().flatten().tolist()
        assert scored == list(range(40 - 8, 40, 2))  # the query keys, nothing else
        asked = [ids[p] for p in scored]
        assert len(set(asked)) == 4 and set(asked) <= set(keys)
        for p in scored:
            assert batch.targets[row, p] == ids[p + 1] == values[keys.index(ids[p])]
            assert batch.source[row, p] == 2 * keys.index(ids[p]) + 1


def test_passkey_scores_the_answer_at_the_question():
    task = PasskeyTask(length=32)
    batch = task.generate(64, seed=2)
    assert (batch.mask.sum(1) == 1).all() and batch.mask[:, -1].all()
    for row in range(64):
        ids, d = batch.ids[row].tolist(), int(batch.distance[row])
        assert 1 <= d <= task.max_distance
        assert ids.count(task.KEY) == 1 and ids.count(task.QUESTION) == 1 and ids[-1] == task.QUESTION
        value_pos = ids.index(task.KEY) + 1
        assert value_pos == task.length - 1 - d
        assert batch.targets[row, -1] == ids[value_pos] >= 2 + task.fillers
        assert all(2 <= t < 2 + task.fillers for i, t in enumerate(ids)
                   if i not in (value_pos - 1, value_pos, task.length - 1))
    fixed = task.generate(8, seed=2, distance=5)
    assert (fixed.distance == 5).all() and (fixed.ids[:, -7] == task.KEY).all()


def test_source_attention_on_repeated_tokens_is_the_head_atlas_induction_score():
    config = ModelConfig(vocab_size=64, n_layer=2, n_head=4, d_model=32, max_seq_len=32)
    torch.manual_seed(0)
    model = GPT2(config).eval()
    ids = repeated_random_tokens(config, length=16, count=3, seed=0)  # (3, 32): [r, r]
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[:, 16:] = True
    source = torch.full_like(ids, -1)
    source[:, 16:] = torch.arange(16, 32) - 16 + 1
    batch = TaskBatch(ids, ids, mask, source, torch.full((3,), 16))
    with torch.no_grad():
        attn = model.trace(ids).attn
    for layer in attn:
        assert torch.allclose(source_attention(layer, batch), induction_score(layer), atol=1e-12)


def test_attention_only_blocks_have_no_mlp_and_keep_default_keys(tmp_path):
    default = ModelConfig()
    assert "mlp" not in default.to_dict()  # the GPT-2 config's key is what it always was
    bare = ModelConfig(vocab_size=50, n_layer=2, n_head=4, d_model=32, max_seq_len=16, mlp="none")
    assert bare.to_dict()["mlp"] == "none" and bare.ff_width == 0
    model = GPT2(bare)
    assert not any(".mlp." in n or ".ln_2." in n for n, _ in model.named_parameters())
    assert model.num_params() < GPT2(bare.replace(mlp="gelu")).num_params()
    ids = torch.randint(0, 50, (2, 16))
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "ckpt", model.eval(), {}))
    assert loaded.config == bare
    assert torch.allclose(loaded(ids), model(ids))
    with pytest.raises(ValueError, match="d_ff=64 has no effect with mlp='none'"):
        ModelConfig(mlp="none", d_ff=64)


@pytest.mark.parametrize("position", ["learned", "rope", "alibi", "none"])
def test_a_window_answers_beyond_its_reach_as_if_the_key_were_removed(position):
    """w = 4, L = 2: position i is reached from i - L * (w - 1) = i - 6 at most. Random
    weights: any leak through the mask would move the logits at the question."""
    window, layers = 4, 2
    task = PasskeyTask(length=32)
    config = ModelConfig(vocab_size=task.vocab_size, n_layer=layers, n_head=4, d_model=32,
                         max_seq_len=32, position=position, window=window)
    torch.manual_seed(1)
    model = GPT2(config).eval()
    reach = layers * (window - 1)
    with torch.no_grad():
        for distance in (reach + 1, reach + 5, task.max_distance):
            with_key = model(task.generate(16, seed=5, distance=distance).ids)[:, -1]
            without = model(task.generate(16, seed=5, distance=distance, remove_key=True).ids)[:, -1]
            assert torch.allclose(with_key, without, atol=1e-6, rtol=0), distance
        inside_with = model(task.generate(16, seed=5, distance=reach).ids)[:, -1]
        inside_without = model(task.generate(16, seed=5, distance=reach, remove_key=True).ids)[:, -1]
    assert (inside_with - inside_without).abs().max() > 1e-4  # the test would see a leak


@pytest.mark.parametrize("knobs, message", [
    (("copy", {"length": 16, "max_segment": 12}), "more than length=16"),
    (("copy", {"vocab": 10}), "vocab=10 is too small"),
    (("recall", {"pairs": 40, "vocab": 65, "length": 200}), "40 pairs need 40 distinct keys, but vocab=65 has 32"),
    (("recall", {"pairs": 4, "queries": 5}), "queries=5 is more than pairs=4"),
    (("recall", {"pairs": 8, "length": 18}), "more than length=18"),
    (("nope", {}), "unknown task 'nope'"),
    (("copy", {"pairs": 3}), "task copy has no knob pairs"),
])
def test_bad_knobs_raise_a_clear_value_error(knobs, message):
    name, values = knobs
    with pytest.raises(ValueError, match=message):
        make_task(name, **values)


def test_passkey_distance_longer_than_the_context_is_refused():
    with pytest.raises(ValueError, match="distance=70 is longer than the context"):
        PasskeyTask(length=64).generate(4, distance=70)


@pytest.mark.parametrize("argv, message", [
    (["--task", "passkey", "--distance", "500"], "distance=500 is longer than the context"),
    (["--task", "recall", "--pairs", "80"], "80 pairs need 80 distinct keys"),
    (["--task", "copy", "--variant", "gqa", "--n-kv-head", "3"], "n_head=4 is not divisible by n_kv_head=3"),
    (["--task", "copy", "--window", "wide"], "--window 'wide'"),
    (["--task", "copy", "--distance", "3"], "--distance is a passkey knob"),
])
def test_the_command_line_refuses_bad_knobs_before_training(argv, message, capsys, private_cache):
    argv = ["experiment", "tasks", *argv] + ([] if "--variant" in argv else ["--variant", "gpt2"])
    assert main(argv + ["--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "training" not in err
    assert not private_cache.exists() or not any(private_cache.iterdir())


def test_passkey_model_trains_caches_and_reports_recomputable_accuracy(private_cache):
    task = PasskeyTask(length=24)
    config = task_config(preset("gpt2"), task, mlp="none")
    settings = TaskSettings(steps=400, eval_every=25)
    first = train_task(config, task, settings, seed=0)
    h = first.history
    assert h.accuracy[-1] >= 0.9 and h.learned_at_step is not None
    assert h.learned_at_step == next(s for s, a in zip(h.eval_steps, h.accuracy) if a >= 0.5)
    assert h.chance == pytest.approx(1 / 32)
    assert len(h.heads) == len(h.eval_steps) and len(h.heads[0]["induction"]) == 2
    batch = held_out(task, seed=0, rows=settings.eval_batch)  # the batch the history scored
    assert argmax_accuracy(first.model, batch) == pytest.approx(h.accuracy[-1], abs=1e-6)
    again = train_task(config, task, settings, seed=0)
    assert again.from_cache and again.history.accuracy == h.accuracy
    assert torch.equal(again.model(batch.ids), first.model(batch.ids))
    folders = [p.name for p in private_cache.iterdir()]
    assert len(folders) == 1 and folders[0].startswith("task-")
    other = task_config(preset("gpt2"), PasskeyTask(length=24, values=16), mlp="none")
    from gpt2viz.analysis.task_models import task_checkpoint_folder
    assert task_checkpoint_folder(other, PasskeyTask(length=24, values=16), settings, 0).name not in folders
    # learned positions stop at max_seq_len: the longer lengths are refused, never guessed
    scores, refused = accuracy_by_length(first.model, task, multipliers=(1, 2))
    assert scores["1"] == pytest.approx(h.accuracy[-1], abs=1e-6)
    assert scores["2"] is None and "longer than max_seq_len=24" in refused["2"]
    with pytest.raises(ValueError, match="learned positions have no embedding past it"):
        first.model(task.at_length(48).generate(2).ids)


def test_the_command_line_json(capsys, private_cache):
    argv = ["experiment", "tasks", "--task", "passkey", "--variant", "gpt2", "--variant", "swa",
            "--window", "4", "--no-mlp", "--train-length", "16", "--steps", "60", "--lengths", "1",
            "2", "--distance", "1", "3", "14", "--json"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["task"] == "passkey" and result["settings"]["task"]["length"] == 16
    assert [r["variant"] for r in result["rows"]] == ["gpt2", "swa"]
    for row in result["rows"]:
        assert row["config"]["window"] == 4 and row["config"]["mlp"] == "none"
        assert row["config"]["n_layer"] == 2 and row["config"]["max_seq_len"] == 16
        assert set(row["by"]) == {"length", "distance"} and list(row["by"]["distance"]) == ["1", "3", "14"]
        assert row["steps"] <= 60 and row["chance"] == pytest.approx(1 / 32)
        for key in ("seconds", "learned_at_step", "accuracy"):
            assert key in row
    assert result["rows"][0]["by"]["length"]["2"] is None  # learned positions: refused
    assert result["rows"][1]["config"]["position"] == "learned"
    assert "passkey gpt2 [" in err and "1/60" in err  # the progress bar of its training


@pytest.mark.slow
def test_one_layer_cannot_copy_at_a_random_offset_two_layers_can():
    """Olsson et al. 2022: induction needs a previous-token head feeding a second layer. RoPE,
    attention only, d 64, 4 heads; the same settings and seed for both depths."""
    task = CopyTask()
    settings = TaskSettings()  # 3,000 steps at most: stops at 99 % or on a plateau
    results = {}
    for layers in (1, 2):
        config = task_config(preset("rope"), task, n_layer=layers, mlp="none")
        results[layers] = train_task(config, task, settings, seed=0, use_cache=False)
    batch = task.generate(512, seed=12345)  # a batch no training step saw
    one, two = (argmax_accuracy(results[n].model, batch) for n in (1, 2))
    print(f"copy accuracy: 1 layer {one:.3f} ({results[1].history.seconds:.0f} s, "
          f"{results[1].history.steps[-1]} steps), 2 layers {two:.3f} "
          f"({results[2].history.seconds:.0f} s, learned at {results[2].history.learned_at_step})")
    assert one <= 0.10
    assert two >= 0.90
    assert results[1].history.learned_at_step is None
    heads = results[2].history.heads
    last = heads[-1]
    assert max(last["induction"][1]) > 0.3 > max(last["induction"][0])  # in layer 2
    assert max(last["prev_token"][0]) > 0.3  # fed by a previous-token head in layer 1
    assert max(heads[0]["induction"][1]) < 0.1  # and it was born during training


def test_the_command_line_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["experiment", "tasks", "--help"])
    assert done.value.code == 0 and "--no-mlp" in capsys.readouterr().out


def test_expected_limits_name_the_reach_the_layers_and_the_table():
    """The page's one-line reasons come from the architecture: L·(w−1) for a window, one layer
    for copying, the learned table's length."""
    from gpt2viz.analysis.task_models import expected_limits
    from gpt2viz.core.config import ModelConfig

    passkey, copy = make_task("passkey"), make_task("copy")
    windowed = ModelConfig(vocab_size=passkey.vocab_size, n_layer=2, n_head=2, d_model=16,
                           max_seq_len=64, position="rope", window=8)
    assert expected_limits(windowed, passkey) == [
        "window 8 × 2 layers reaches 14 tokens back: a value farther back than 14 tokens cannot "
        "reach the question: chance there."]
    one = ModelConfig(vocab_size=copy.vocab_size, n_layer=1, n_head=2, d_model=16, max_seq_len=48)
    lines = expected_limits(one, copy)
    assert lines[0].startswith("one layer cannot form an induction head")
    assert lines[1] == ("learned positions have no rows past 48: longer lengths are refused, "
                        "not guessed.")
