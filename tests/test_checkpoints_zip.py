"""Checkpoints in and out as one .zip: a round trip gives the same logits; a Hugging Face GPT-2
folder zipped loads exactly; broken, pickled, oversized and path-escaping archives are refused."""
import io
import zipfile

import pytest
import torch

from gpt2viz import GPT2, ModelConfig
from gpt2viz.weights.checkpoints import CheckpointError, checkpoint_zip, load_checkpoint_zip

LIMIT = 50 * 1024**2


def tiny(**overrides):
    torch.manual_seed(0)
    return GPT2(ModelConfig(vocab_size=101, n_layer=2, n_head=4, d_model=32, max_seq_len=64,
                            **overrides)).eval()


@pytest.mark.parametrize("overrides", [{}, dict(position="rope", n_kv_head=2, window=4)])
def test_a_round_trip_gives_the_same_logits_and_meta(overrides):
    model = tiny(**overrides)
    data = checkpoint_zip(model, {"vocab": list(range(100)), "seed": 3})
    loaded, meta, tokenizer = load_checkpoint_zip(data, LIMIT)
    assert tokenizer is None  # ours: read with GPT-2's BPE and its vocabulary
    idx = torch.randint(0, 101, (2, 20))
    assert loaded.config == model.config and meta["seed"] == 3 and meta["vocab"] == list(range(100))
    assert torch.equal(loaded(idx), model(idx))


def test_a_hugging_face_folder_zipped_loads_exactly(tmp_path):
    transformers = pytest.importorskip("transformers")
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_head=2, n_embd=32,
                                                              n_positions=64, vocab_size=101)).eval()
    hf.save_pretrained(tmp_path / "gpt2-small-test")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # zipped with its folder, as people do
        for f in (tmp_path / "gpt2-small-test").iterdir():
            archive.write(f, f"gpt2-small-test/{f.name}")
    model, meta, tokenizer = load_checkpoint_zip(buffer.getvalue(), LIMIT)
    assert tokenizer is None  # a GPT-2 folder: GPT-2's BPE reads it
    idx = torch.randint(0, 101, (1, 16))
    assert meta is None
    assert (model(idx) - hf(idx).logits).abs().max() < 1e-5


def archive(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("files, message", [
    ({"../x/model.safetensors": b"x"}, "no other paths"),
    ({"/etc/model.safetensors": b"x"}, "no other paths"),
    ({"pytorch_model.bin": b"x", "config.json": b"{}"}, "pickled weights"),
    ({"meta.json": b"{}"}, "no model.safetensors"),
    # a junk archive (issue 31.8): a text file and random bytes named .bin are not "pickled weights"
    ({"a.txt": b"hello", "b.bin": bytes(range(256)) * 8},
     r"Not a gpt2viz checkpoint: the archive has no model.safetensors \(it holds a.txt, b.bin\)"),
    ({"model.safetensors": b"not safetensors", "meta.json": b'{"config": {}}'}, "cannot be read"),
    ({"model.safetensors": b"x"}, "neither meta.json"),
])
def test_bad_archives_are_refused_with_a_reason(files, message):
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint_zip(archive(files), LIMIT)


def test_not_a_zip_and_over_the_limit_are_refused():
    with pytest.raises(CheckpointError, match="not a .zip"):
        load_checkpoint_zip(b"hello", LIMIT)
    with pytest.raises(CheckpointError, match="unpacks to more than"):
        load_checkpoint_zip(checkpoint_zip(tiny(), {}), 1000)


def test_mismatched_shapes_are_refused():
    data = zipfile.ZipFile(io.BytesIO(checkpoint_zip(tiny(), {})))
    meta = data.read("meta.json").replace(b'"d_model": 32', b'"d_model": 64')
    with pytest.raises(CheckpointError, match="the config needs"):
        load_checkpoint_zip(archive({"model.safetensors": data.read("model.safetensors"),
                                     "meta.json": meta}), LIMIT)
