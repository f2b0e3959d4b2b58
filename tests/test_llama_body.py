"""The Llama body (RMSNorm, SwiGLU, no biases, RoPE, GQA) against transformers'
LlamaForCausalLM on the same weights, and the GPT-2 presets unchanged by the new fields."""
import pytest
import torch

from gpt2viz import GPT2, ModelConfig
from gpt2viz.core.config import PRESETS, TrainSettings
from gpt2viz.weights.checkpoint_cache import cache_key
from gpt2viz.weights.checkpoints import load_checkpoint, save_checkpoint, to_gqa

transformers = pytest.importorskip("transformers")
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

VOCAB = 101


def llama_pair(n_kv_head=6, tie=True, seed=0, **ours):
    """A random transformers Llama in float64 and our model holding the same weights."""
    torch.manual_seed(seed)
    hf_config = LlamaConfig(vocab_size=VOCAB, hidden_size=48, intermediate_size=80,
                            num_hidden_layers=2, num_attention_heads=6,
                            num_key_value_heads=n_kv_head, max_position_embeddings=256,
                            rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=tie,
                            attention_bias=False, mlp_bias=False, bos_token_id=0,
                            eos_token_id=0, pad_token_id=0)
    hf = LlamaForCausalLM(hf_config).to(torch.float64)
    hf.config._attn_implementation = "eager"
    # far from init so every weight matters; transformers computes RoPE angles in float32, which
    # bounds the agreement at ~1e-6 of the logits (std 0.2 keeps them within +-6)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if "norm" in name else 0.2 * torch.randn_like(p))
    config = ModelConfig(vocab_size=VOCAB, n_layer=2, n_head=6, n_kv_head=n_kv_head, d_model=48,
                         max_seq_len=256, position="rope", rope_base=100000.0, bias=False,
                         norm="rmsnorm", mlp="swiglu", d_ff=80, tie_embeddings=tie, **ours)
    model = GPT2(config).to(torch.float64)
    model.load_state_dict(llama_state(hf.state_dict(), config), strict=True)
    return hf.eval(), model.eval()


def llama_state(hf: dict, config: ModelConfig) -> dict:
    state = {"wte.weight": hf["model.embed_tokens.weight"], "ln_f.weight": hf["model.norm.weight"],
             "lm_head.weight": hf["lm_head.weight"]}
    names = {"input_layernorm": "ln_1", "post_attention_layernorm": "ln_2",
             "self_attn.q_proj": "attn.q_proj", "self_attn.k_proj": "attn.k_proj",
             "self_attn.v_proj": "attn.v_proj", "self_attn.o_proj": "attn.out_proj",
             "mlp.gate_proj": "mlp.c_gate", "mlp.up_proj": "mlp.c_fc", "mlp.down_proj": "mlp.c_proj"}
    for i in range(config.n_layer):
        for theirs, ours in names.items():
            state[f"blocks.{i}.{ours}.weight"] = hf[f"model.layers.{i}.{theirs}.weight"]
    return state


def ids(t, seed=1, batch=2):
    return torch.randint(0, VOCAB, (batch, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n_kv_head, tie", [(6, True), (2, False), (1, True)],
                         ids=["mha-tied", "gqa-untied", "mqa"])
def test_logits_and_attention_equal_llama(n_kv_head, tie):
    hf, ours = llama_pair(n_kv_head, tie)
    x = ids(40)
    with torch.no_grad():
        theirs = hf(x, output_attentions=True)
        assert (ours(x) - theirs.logits).abs().max() <= 1e-5
        trace = ours.trace(x)
    assert (trace.logits - theirs.logits).abs().max() <= 1e-5
    for a, b in zip(trace.attn, theirs.attentions):
        assert (a - b).abs().max() <= 1e-5  # transformers computes RoPE angles in float32


def test_greedy_generation_equals_llama_cached_and_uncached():
    hf, ours = llama_pair(2)
    prompt = ids(7, seed=3, batch=1)
    with torch.no_grad():
        theirs = hf.generate(prompt, max_new_tokens=20, do_sample=False)
    assert torch.equal(ours.generate(prompt, 20, temperature=0.0), theirs)
    assert torch.equal(ours.generate(prompt, 20, temperature=0.0, use_cache=False), theirs)


def test_rolling_cache_with_sinks_and_banded_kernel_on_the_llama_body():
    _, ours = llama_pair(2, window=5, sinks=2)
    prompt = ids(6, seed=4, batch=1)
    cached = ours.generate(prompt, 30, temperature=0.0)
    assert torch.equal(cached, ours.generate(prompt, 30, temperature=0.0, use_cache=False))
    long = ids(400, seed=5, batch=1)  # >= BANDED_MIN_KEYS: the banded kernel runs
    with torch.no_grad():
        assert (ours(long) - ours.trace(long).logits).abs().max() <= 1e-9


def test_to_gqa_pools_the_llama_body():
    _, ours = llama_pair(6)
    pooled = to_gqa(ours, 2)
    assert pooled.config.n_kv_head == 2 and pooled.config.mlp == "swiglu"
    k = ours.blocks[0].attn.k_proj.weight.view(2, 3, 8, 48).mean(1).reshape(16, 48)
    assert torch.equal(pooled.blocks[0].attn.k_proj.weight, k)
    assert torch.equal(to_gqa(ours, 6)(ids(9)), ours(ids(9)))


def test_untied_llama_checkpoint_round_trips(tmp_path):
    _, ours = llama_pair(2, tie=False)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "ckpt", ours, {}))
    assert loaded.config == ours.config
    assert not torch.equal(loaded.lm_head.weight, loaded.wte.weight)
    with torch.no_grad():  # saved float64, loaded as float32
        assert (loaded.to(torch.float64)(ids(9)) - ours(ids(9))).abs().max() <= 1e-5


@pytest.mark.parametrize("field, value, fragment", [
    ("norm", "batchnorm", "norm='batchnorm' is unknown"),
    ("mlp", "relu", "mlp='relu' is unknown"),
    ("d_ff", 0, "d_ff=0 must be"),
    ("tie_embeddings", "yes", "tie_embeddings='yes' must be True or False"),
    ("layer_norm_eps", 0.0, "layer_norm_eps=0.0 must be"),
])
def test_llama_fields_are_validated(field, value, fragment):
    with pytest.raises(ValueError, match=fragment):
        ModelConfig(**{field: value})


# cache_key(preset, a corpus of sha256 "0" * 64, TrainSettings(), 0) before the Llama fields
# existed: the presets' checkpoints stay where they were.
OLD_KEYS = {"gpt2": "730d9b21fdd7ec860ae5", "rope": "32891bf9645f674f7eee",
            "gqa": "758e786b94ae736e6a96", "swa": "13805e2108f3ea6b11ba",
            "rope+gqa+swa": "aa53cfdd30dc84cb085f"}


def test_preset_cache_keys_and_old_meta_dicts_are_unchanged():
    class Corpus:
        sha256 = "0" * 64

    for name, config in PRESETS.items():
        assert cache_key(config, Corpus, TrainSettings(), 0) == OLD_KEYS[name]
    old_meta_config = {"vocab_size": 5171, "n_layer": 4, "n_head": 8, "n_kv_head": 2,
                       "d_model": 128, "max_seq_len": 128, "position": "rope",
                       "rope_base": 10000.0, "window": 16, "sinks": 0, "dropout": 0.0,
                       "bias": True, "layer_norm_eps": 1e-5}
    config = ModelConfig(**old_meta_config)
    assert config.to_dict() == old_meta_config
    assert (config.norm, config.mlp, config.ff_width, config.tie_embeddings) == (
        "layernorm", "gelu", 512, True)
