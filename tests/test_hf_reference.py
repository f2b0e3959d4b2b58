"""Our vanilla GPT-2 against Hugging Face transformers' GPT2LMHeadModel on the same weights."""
import json
import pickle

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from gpt2viz.weights.checkpoints import CheckpointError, load_hf_gpt2  # noqa: E402

HF_CONFIG = dict(vocab_size=500, n_positions=64, n_embd=64, n_layer=3, n_head=4,
                 bos_token_id=0, eos_token_id=0)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf_gpt2")
    GPT2LMHeadModel(GPT2Config(**HF_CONFIG)).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hf_model(hf_folder):
    return GPT2LMHeadModel.from_pretrained(hf_folder, attn_implementation="eager").eval()


def test_logits_equal_hugging_face(hf_folder, hf_model):
    ours = load_hf_gpt2(hf_folder)
    idx = torch.randint(0, 500, (2, 50), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf_model(idx).logits
        assert (ours(idx) - expected).abs().max() <= 1e-5
        assert (ours.trace(idx).logits - expected).abs().max() <= 1e-5


def test_attention_probabilities_equal_hugging_face(hf_folder, hf_model):
    ours = load_hf_gpt2(hf_folder)
    idx = torch.randint(0, 500, (1, 30), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        theirs = hf_model(idx, output_attentions=True).attentions
    for a, b in zip(ours.trace(idx).attn, theirs):
        assert (a - b).abs().max() <= 1e-6


def test_greedy_generation_equals_hugging_face(hf_folder, hf_model):
    ours = load_hf_gpt2(hf_folder)
    idx = torch.randint(0, 500, (1, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        theirs = hf_model.generate(idx, max_new_tokens=30, do_sample=False, pad_token_id=0)
    assert torch.equal(ours.generate(idx, 30, temperature=0.0), theirs)
    assert torch.equal(ours.generate(idx, 30, temperature=0.0, use_cache=False), theirs)


def test_pytorch_bin_loads_with_weights_only(hf_folder, hf_model, tmp_path):
    (tmp_path / "config.json").write_text((hf_folder / "config.json").read_text())
    torch.save(hf_model.state_dict(), tmp_path / "pytorch_model.bin")
    idx = torch.randint(0, 500, (1, 9))
    with torch.no_grad():
        assert (load_hf_gpt2(tmp_path)(idx) - hf_model(idx).logits).abs().max() <= 1e-5


class Exploit:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def broken_folder(tmp_path, hf_folder, what):
    config = json.loads((hf_folder / "config.json").read_text())
    weights = (hf_folder / "model.safetensors").read_bytes()
    if what == "no config":
        config = None
    elif what == "other architecture":
        config["model_type"] = "llama"
    elif what == "wrong shapes":
        config["n_embd"] = 32
    elif what == "more layers":
        config["n_layer"] = 4
    elif what == "bad json":
        (tmp_path / "config.json").write_text("{not json")
        config = None
    elif what == "no weights":
        weights = None
    elif what == "truncated weights":
        weights = weights[: len(weights) // 2]
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    if what == "pickled code":
        with open(tmp_path / "pytorch_model.bin", "wb") as f:
            pickle.dump({"x": Exploit()}, f)
    elif weights is not None:
        (tmp_path / "model.safetensors").write_bytes(weights)
    return tmp_path


@pytest.mark.parametrize("what, fragment", [
    ("no config", "config.json is missing"),
    ("bad json", "not valid JSON"),
    ("other architecture", "model_type='llama'"),
    ("wrong shapes", "has shape"),
    ("more layers", "is missing"),
    ("no weights", "no model.safetensors"),
    ("truncated weights", "cannot be read"),
    ("pickled code", "cannot be read"),
])
def test_broken_checkpoints_fail_with_a_named_problem(tmp_path, hf_folder, what, fragment, capsys):
    folder = broken_folder(tmp_path, hf_folder, what)
    with pytest.raises(CheckpointError, match=fragment):
        load_hf_gpt2(folder)
    assert "pickled code ran" not in capsys.readouterr().out
