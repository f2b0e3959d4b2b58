"""analysis/extension.py and `experiment extend` on a tiny random RoPE model: bucket losses
recomputed from the model's own logits, pass-key prompts and scoring, the command line's JSON
and its refusals."""
import json

import pytest
import torch
import torch.nn.functional as F

from gpt2viz import GPT2, ModelConfig
from gpt2viz.__main__ import main
from gpt2viz.analysis import extension as ext
from gpt2viz.cli import experiment as experiment_cli
from gpt2viz.core.positions import rope_parameters

VOCAB = 97


def tiny(**changes):
    torch.manual_seed(0)
    model = GPT2(ModelConfig(vocab_size=VOCAB, n_layer=2, n_head=4, n_kv_head=2, d_model=32,
                             max_seq_len=32, position="rope", **changes)).double().eval()
    with torch.no_grad():  # far from init, so positions matter to the logits
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.copy_(0.3 * torch.randn_like(p))
    return model


def text_ids(n, seed=1):
    return torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(seed))


def test_buckets_double_from_the_trained_length():
    assert ext.buckets(32, 128) == [(0, 32), (32, 64), (64, 128)]
    assert ext.buckets(32, 100) == [(0, 32), (32, 64), (64, 100)]
    assert ext.buckets(128, 64) == [(0, 64)]


@pytest.mark.parametrize("method", ["none", "linear", "ntk", "dynamic", "yarn", "llama3"])
def test_bucket_losses_equal_the_models_own_logits(method):
    model, ids = tiny(), text_ids(300)
    out = ext.extension_losses(model, ids, 32, [method], 4.0, 128)
    assert out["tokens"] == 128 and out["blocks"] == 2 and out["note"] is None
    row = out["rows"][0]
    cfg = model.config if method == "none" else model.config.replace(
        rope_scaling=method, rope_factor=4.0, rope_original_length=32)
    reader = GPT2.from_weights(cfg, model.state_dict())
    x, y = ids[:256].view(2, 128), ids[1:257].view(2, 128)
    with torch.no_grad():
        losses = F.cross_entropy(reader(x).transpose(1, 2), y, reduction="none").mean(0)  # (128,)
    assert row["loss"] == pytest.approx(float(losses.mean()), abs=1e-10)
    assert set(row["buckets"]) == {"0-31", "32-63", "64-127"}
    for (lo, hi), value in zip([(0, 32), (32, 64), (64, 128)], row["buckets"].values()):
        assert value == pytest.approx(float(losses[lo:hi].mean()), abs=1e-10)
    inv_freq, attention = rope_parameters(cfg, 128)
    assert row["inv_freq"] == inv_freq.tolist() and row["attention_factor"] == attention


def test_methods_differ_past_the_trained_length_and_linear_also_within():
    out = ext.extension_losses(tiny(), text_ids(300), 32, ["none", "linear", "ntk", "dynamic", "yarn"],
                               4.0, 128)
    rows = {r["method"]: r for r in out["rows"]}
    for method in ("linear", "ntk", "dynamic", "yarn"):
        assert rows[method]["buckets"]["64-127"] != rows["none"]["buckets"]["64-127"]
    # dynamic at 128 tokens scales by 128 / 32: every position changes, as in one full pass
    assert rows["dynamic"]["buckets"]["0-31"] != rows["none"]["buckets"]["0-31"]
    assert rows["yarn"]["attention_factor"] > 1 and rows["none"]["attention_factor"] == 1.0


def test_a_short_text_is_scored_as_far_as_it_goes_and_says_so():
    out = ext.extension_losses(tiny(), text_ids(100), 32, ["none"], 4.0, 128)
    assert out["tokens"] == 99 and out["blocks"] == 1
    assert "fewer than the 129" in out["note"] and "scoring 99" in out["note"]


def test_refusals_before_anything_runs(monkeypatch):
    model = tiny()
    with pytest.raises(ValueError, match="unknown RoPE scaling 'pi'"):
        ext.extension_losses(model, text_ids(100), 32, ["pi"], 4.0, 64)
    with pytest.raises(ValueError, match="--factor 0.5 must be >= 1"):
        ext.extension_losses(model, text_ids(100), 32, ["yarn"], 0.5, 64)
    with pytest.raises(ValueError, match="needs a RoPE model"):
        ext.scaled(GPT2(ModelConfig(vocab_size=VOCAB, n_layer=1, d_model=32, n_head=4)), "yarn", 2.0, 32)
    monkeypatch.setattr(ext, "token_losses", lambda *a, **k: pytest.fail("started"))
    monkeypatch.setattr("gpt2viz.core.resources.available_memory_bytes", lambda device="cpu": 1000)
    with pytest.raises(MemoryError, match="a 64-token pass needs"):
        ext.extension_losses(model, text_ids(100), 32, ["yarn"], 4.0, 64)


def char_encode(text):
    return [ord(c) % VOCAB for c in text]


def test_passkey_prompt_places_the_needle_at_its_depth():
    for depth in (0.0, 0.5, 1.0):
        ids = ext.passkey_prompt(char_encode, 2000, depth, "71432")
        assert 2000 - len(ext.PASSKEY_FILLER) < len(ids) <= 2000
        needle = ext.PASSKEY_NEEDLE.format(key="71432")
        intro = len(char_encode(ext.PASSKEY_INTRO))
        start = next(i for i in range(intro, len(ids))
                     if ids[i:i + len(needle)] == char_encode(needle))
        filler = len(ids) - len(char_encode(ext.PASSKEY_INTRO)) - len(char_encode(needle)) - len(
            char_encode(ext.PASSKEY_QUESTION))
        before = start - intro
        assert before == pytest.approx(depth * filler, abs=len(ext.PASSKEY_FILLER))
    with pytest.raises(ValueError, match="too short"):
        ext.passkey_prompt(char_encode, 50, 0.5, "71432")
    assert ext.answer_digits(" 7 1 4 3 2.", 5) == "71432" and ext.answer_digits(" none", 5) == ""
    assert ext.passkey_lengths(128, 8.0) == [256, 512, 1024] and ext.passkey_lengths(128, 1.5) == [192]


def test_passkey_accuracy_is_the_share_of_keys_decoded_right():
    model = tiny()
    decode = lambda ids: "".join(str(i % 10) for i in ids)  # noqa: E731  every token a digit
    out = ext.passkey_accuracy(model, char_encode, decode, [300], depths=(0.0, 1.0), trials=3)
    assert set(out) == {"300"} and set(out["300"]) == {"0", "1"}
    import random
    rng = random.Random(0)
    keys = [str(rng.randrange(10000, 100000)) for _ in range(3)]
    for depth in (0.0, 1.0):
        right = 0
        for key in keys:
            prompt = torch.tensor([ext.passkey_prompt(char_encode, 300, depth, key)])
            new = model.generate(prompt, 7, temperature=0.0)[0, prompt.shape[1]:]
            right += decode(new.tolist())[:5] == key
        assert out["300"][f"{depth:g}"] == right / 3


@pytest.fixture
def tiny_cli(monkeypatch):
    model = tiny()
    model.pretrained = None
    monkeypatch.setattr(experiment_cli, "load_variant", lambda spec, *a: experiment_cli.Loaded(
        model, lambda text: torch.tensor(char_encode(text))))
    monkeypatch.setattr(experiment_cli, "train_len", lambda model, settings: 32)
    return model


def test_cli_json_for_a_small_variant_leaves_the_passkey_out(tiny_cli, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. " * 20)
    assert main(["experiment", "extend", "--variant", "rope", "--method", "none", "yarn", "--factor",
                 "4", "--tokens", "128", "--text", str(text), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    out = json.loads(lines[-1])
    assert {"variant", "trained_length", "factor", "tokens", "rows"} <= set(out)
    assert out["variant"] == "rope" and out["trained_length"] == 32 and out["tokens"] == 128
    assert [r["method"] for r in out["rows"]] == ["none", "yarn"]
    assert set(out["rows"][0]) == {"method", "inv_freq", "attention_factor", "loss", "buckets", "passkey"}
    assert out["rows"][1]["passkey"] is None and "cannot read a pass key" in out["passkey_note"]
    assert any("cannot read a pass key" in line for line in lines[:-1])


def test_cli_blocks_caps_the_blocks_scored_and_says_the_loss_of_those(tiny_cli, tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. " * 40)  # 960 characters: 14 blocks of 64
    args = ["experiment", "extend", "--variant", "rope", "--method", "none", "--factor", "2",
            "--tokens", "64", "--text", str(text), "--json"]
    assert main(args + ["--blocks", "2"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["blocks"] == 2
    ids = torch.tensor(char_encode(text.read_text()))[:2 * 64 + 1]
    assert out["rows"][0]["loss"] == pytest.approx(
        ext.extension_losses(tiny_cli, ids, 32, ["none"], 2.0, 64)["rows"][0]["loss"], abs=1e-6)
    assert main(args) == 0 and json.loads(capsys.readouterr().out.strip().splitlines()[-1])["blocks"] == 14
    assert main(args + ["--blocks", "0"]) == 2
    assert "--blocks 0 must be at least 1" in capsys.readouterr().err


def test_cli_runs_the_passkey_for_a_model_that_reads_words(monkeypatch, tmp_path, capsys):
    model = tiny()
    model.pretrained = "smollm2-135m"
    decode = lambda ids: "".join(str(i % 10) for i in ids)  # noqa: E731
    monkeypatch.setattr(experiment_cli, "load_variant", lambda spec, *a: experiment_cli.Loaded(
        model, lambda text: torch.tensor(char_encode(text)), decode=decode))
    monkeypatch.setattr(experiment_cli, "train_len", lambda model, settings: 32)
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. " * 20)
    assert main(["experiment", "extend", "--variant", "smollm2-135m", "--method", "dynamic",
                 "--factor", "2", "--tokens", "64", "--passkey-lengths", "300",
                 "--passkey-trials", "1", "--text", str(text), "--json"]) == 0
    printed = capsys.readouterr()
    out = json.loads(printed.out.strip().splitlines()[-1])
    # the bar on stderr: the loss passes, then 1 method x 1 length x 5 depths x 1 trial prompts
    assert printed.err.splitlines()[-1].startswith("extend smollm2-135m [########################] 6/6")
    assert set(out["rows"][0]["passkey"]) == {"300"}
    assert set(out["rows"][0]["passkey"]["300"]) == {"0", "0.25", "0.5", "0.75", "1"}
    assert out["passkey_note"] is None


def test_cli_refuses_a_method_or_a_variant_without_rope_before_training(capsys, monkeypatch):
    monkeypatch.setattr(experiment_cli, "load_variant", lambda *a: pytest.fail("started"))
    assert main(["experiment", "extend", "--variant", "rope", "--method", "pi"]) == 2
    assert "unknown RoPE scaling 'pi'" in capsys.readouterr().err
    assert main(["experiment", "extend", "--variant", "gpt2", "--method", "yarn"]) == 2
    assert "needs a RoPE variant" in capsys.readouterr().err
