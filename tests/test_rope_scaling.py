"""RoPE scaling (linear / ntk / dynamic / yarn / llama3) against transformers'
ROPE_INIT_FUNCTIONS and LlamaForCausalLM, plain RoPE at factor 1, the KV cache under dynamic
scaling, and the config's messages."""
import math

import pytest
import torch

from gpt2viz import GPT2, ModelConfig
from gpt2viz.core.config import ROPE_SCALINGS
from gpt2viz.core.kv_cache import KVCache
from gpt2viz.core.positions import rope_cos_sin, rope_frequencies, rope_parameters, yarn_ramp

transformers = pytest.importorskip("transformers")
from transformers import LlamaConfig  # noqa: E402
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402

from tests.test_llama_body import ids, llama_pair  # noqa: E402

METHODS = ROPE_SCALINGS[1:]


def config(head_dim=64, base=10000.0, method="yarn", factor=4.0, trained=128, **extra):
    return ModelConfig(n_head=2, d_model=2 * head_dim, max_seq_len=trained, position="rope",
                       rope_base=base, rope_scaling=method, rope_factor=factor, **extra)


def theirs(cfg: ModelConfig, seq_len=None):
    params = {"rope_type": cfg.rope_scaling, "rope_theta": cfg.rope_base, "factor": cfg.rope_factor,
              "original_max_position_embeddings": cfg.rope_trained_length}
    if cfg.rope_scaling == "llama3":
        params |= {"low_freq_factor": cfg.rope_low_freq_factor,
                   "high_freq_factor": cfg.rope_high_freq_factor}
    if cfg.rope_scaling == "yarn":
        params |= {"beta_fast": cfg.rope_beta_fast, "beta_slow": cfg.rope_beta_slow}
        if cfg.rope_attention_factor is not None:
            params["attention_factor"] = cfg.rope_attention_factor
    hf = LlamaConfig(hidden_size=cfg.d_model, num_attention_heads=cfg.n_head,
                     max_position_embeddings=cfg.rope_trained_length, rope_parameters=params)
    extra = {} if seq_len is None else {"seq_len": seq_len}
    inv_freq, factor = ROPE_INIT_FUNCTIONS[cfg.rope_scaling](hf, "cpu", **extra)
    return inv_freq.double(), float(factor)


def close(ours, reference):  # transformers computes in float32
    return torch.allclose(ours, reference, rtol=2e-6, atol=0)


@pytest.mark.parametrize("method", ["linear", "yarn", "llama3"])
@pytest.mark.parametrize("head_dim, base, factor, trained", [
    (64, 10000.0, 2.0, 128), (64, 100000.0, 4.0, 8192), (16, 10000.0, 8.0, 128),
    (32, 500000.0, 16.0, 2048), (128, 10000.0, 3.5, 4096)])
def test_inv_freq_and_attention_factor_equal_transformers(method, head_dim, base, factor, trained):
    cfg = config(head_dim, base, method, factor, trained)
    inv_freq, attention = rope_parameters(cfg)
    ref_freq, ref_attention = theirs(cfg)
    assert inv_freq.dtype == torch.float64 and inv_freq.shape == (head_dim // 2,)
    assert close(inv_freq, ref_freq)
    assert attention == pytest.approx(ref_attention, rel=1e-12)


def test_yarn_options_and_llama3_factors_equal_transformers():
    for cfg in [config(method="yarn", rope_beta_fast=16.0, rope_beta_slow=2.0),
                config(method="yarn", rope_attention_factor=1.3),
                config(method="llama3", factor=8.0, trained=8192, base=500000.0,
                       rope_low_freq_factor=2.0, rope_high_freq_factor=8.0)]:
        inv_freq, attention = rope_parameters(cfg)
        ref_freq, ref_attention = theirs(cfg)
        assert close(inv_freq, ref_freq) and attention == pytest.approx(ref_attention)
    assert rope_parameters(config(method="yarn", factor=4.0))[1] == pytest.approx(0.1 * math.log(4) + 1)


@pytest.mark.parametrize("head_dim, factor, trained", [(64, 2.0, 128), (16, 8.0, 64), (64, 4.0, 8192)])
def test_dynamic_equals_transformers_at_every_length(head_dim, factor, trained):
    cfg = config(head_dim, 100000.0, "dynamic", factor, trained)
    plain = rope_frequencies(head_dim, 100000.0)
    for seq_len in (1, trained // 2, trained, trained + 1, 2 * trained, int(factor * trained), 10 * trained):
        inv_freq, attention = rope_parameters(cfg, seq_len)
        ref_freq, ref_attention = theirs(cfg, seq_len)
        assert close(inv_freq, ref_freq) and attention == ref_attention == 1.0
        if seq_len <= trained:
            assert torch.equal(inv_freq, plain)  # nothing changes up to the trained length
    s, length, d = factor, 3 * trained, head_dim
    base = 100000.0 * (s * length / trained - (s - 1)) ** (d / (d - 2))
    assert torch.equal(rope_parameters(cfg, length)[0], rope_frequencies(d, base))


@pytest.mark.parametrize("head_dim, factor", [(64, 4.0), (16, 2.0), (128, 32.0)])
def test_static_ntk_is_its_formula(head_dim, factor):
    cfg = config(head_dim, 10000.0, "ntk", factor)
    inv_freq, attention = rope_parameters(cfg)
    base = 10000.0 * factor ** (head_dim / (head_dim - 2))
    k = torch.arange(head_dim // 2, dtype=torch.float64)
    assert torch.allclose(inv_freq, base ** (-2 * k / head_dim), rtol=1e-14) and attention == 1.0
    assert inv_freq[0] == 1.0  # the fastest pair is untouched
    assert float(inv_freq[-1]) == pytest.approx(float(rope_frequencies(head_dim, 10000.0)[-1]) / factor,
                                                rel=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_factor_one_is_plain_rope_exactly(method):
    cfg = config(method=method, factor=1.0)
    plain = rope_frequencies(cfg.head_dim, cfg.rope_base)
    for seq_len in (None, 10, 5000):
        inv_freq, attention = rope_parameters(cfg, seq_len)
        assert torch.equal(inv_freq, plain) and attention == 1.0
    positions = torch.arange(300)[None]
    assert all(torch.equal(a, b) for a, b in zip(
        rope_cos_sin(positions, cfg.head_dim, cfg.rope_base, torch.float64, rope_parameters(cfg)),
        rope_cos_sin(positions, cfg.head_dim, cfg.rope_base, torch.float64)))
    torch.manual_seed(0)
    scaled = GPT2(cfg.replace(vocab_size=50, n_layer=1)).double().eval()
    plain_model = GPT2.from_weights(scaled.config.replace(rope_scaling="none", rope_factor=1.0),
                                    scaled.state_dict())
    x = torch.randint(0, 50, (1, 300))
    with torch.no_grad():
        assert torch.equal(scaled(x), plain_model(x))


def test_attention_factor_multiplies_cos_and_sin():
    cfg = config(method="yarn", factor=8.0)
    scaling = rope_parameters(cfg)
    positions = torch.arange(50)[None]
    cos, sin = rope_cos_sin(positions, cfg.head_dim, cfg.rope_base, torch.float64, scaling)
    unit = rope_cos_sin(positions, cfg.head_dim, cfg.rope_base, torch.float64, (scaling[0], 1.0))
    assert torch.allclose(cos, unit[0] * scaling[1]) and torch.allclose(sin, unit[1] * scaling[1])
    assert torch.allclose(cos ** 2 + sin ** 2, torch.full_like(cos, scaling[1] ** 2))


def test_yarn_ramp_keeps_fast_pairs_and_interpolates_slow_ones():
    cfg = config(head_dim=64, base=10000.0, method="yarn", factor=4.0, trained=128)
    ramp = yarn_ramp(cfg)
    turns = 128 * rope_frequencies(64, 10000.0) / (2 * math.pi)  # rotations over the context
    assert (ramp[turns > 32] == 0).all() and (ramp[turns < 1] == 1).all()
    inv_freq = rope_parameters(cfg)[0]
    plain = rope_frequencies(64, 10000.0)
    assert torch.equal(inv_freq[ramp == 0], plain[ramp == 0])
    assert torch.allclose(inv_freq[ramp == 1], plain[ramp == 1] / 4)


def hf_scaled_pair(method, factor, trained, n_kv_head=2, **extra):
    """llama_pair with transformers' rope_parameters and ours set to the same scaling."""
    ours_cfg = dict(rope_scaling=method, rope_factor=factor, rope_original_length=trained, **extra)
    hf, ours = llama_pair(n_kv_head, **ours_cfg)
    probe = ours.config
    params = {"rope_type": method, "rope_theta": probe.rope_base, "factor": factor,
              "original_max_position_embeddings": trained}
    if method == "llama3":
        params |= {"low_freq_factor": 1.0, "high_freq_factor": 4.0}
    from transformers import LlamaForCausalLM
    hf_config = hf.config
    hf_config.rope_parameters = params
    hf_config.max_position_embeddings = trained
    twin = LlamaForCausalLM(hf_config).to(torch.float64).eval()
    twin.config._attn_implementation = "eager"
    twin.load_state_dict(hf.state_dict())
    return twin, ours


@pytest.mark.parametrize("method, factor", [("linear", 4.0), ("dynamic", 2.0), ("yarn", 4.0),
                                             ("llama3", 8.0)])
def test_whole_model_equals_llama_with_the_same_rope_parameters(method, factor):
    hf, ours = hf_scaled_pair(method, factor, trained=32)
    x = ids(100)  # past the trained 32: dynamic rescales by 100
    with torch.no_grad():
        reference = hf(x).logits
        assert (ours(x) - reference).abs().max() <= 1e-5
        assert (ours.trace(x).logits - reference).abs().max() <= 1e-5
        short = ids(20)  # within the trained length dynamic is plain
        if method == "dynamic":
            assert (ours(short) - hf(short).logits).abs().max() <= 1e-5


def test_static_ntk_model_equals_llama_with_the_raised_base():
    hf, ours = llama_pair(2, rope_scaling="ntk", rope_factor=4.0, rope_original_length=32)
    d = ours.config.head_dim
    raised = GPT2.from_weights(ours.config.replace(
        rope_scaling="none", rope_factor=1.0, rope_original_length=None,
        rope_base=100000.0 * 4.0 ** (d / (d - 2))), ours.state_dict())
    with torch.no_grad():
        assert (ours(ids(80)) - raised(ids(80))).abs().max() <= 1e-12


def own_llama(**changes):
    """Our Llama body alone (no transformers model), weights far from init."""
    torch.manual_seed(0)
    model = GPT2(ModelConfig(vocab_size=101, n_layer=2, n_head=6, n_kv_head=2, d_model=48,
                             max_seq_len=256, position="rope", rope_base=100000.0, bias=False,
                             norm="rmsnorm", mlp="swiglu", d_ff=80, **changes)).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if "ln" in name else 0.2 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("window", [None, 12])
def test_cached_generation_under_dynamic_equals_one_full_pass(window):
    """Prompt inside the trained 32 tokens, generation far past it: each cached step's logits
    equal a full pass over the final sequence, and cached = uncached."""
    ours = own_llama(rope_scaling="dynamic", rope_factor=2.0, rope_original_length=32,
                     window=window)
    prompt = ids(10, seed=7, batch=1)
    new = 60
    cached = ours.generate(prompt, new, temperature=0.0)
    assert torch.equal(cached, ours.generate(prompt, new, temperature=0.0, use_cache=False))
    cache = KVCache(ours.config, 1, 10 + new, "cpu", torch.float64)
    with torch.no_grad():
        full = ours(cached)  # (1, 70, vocab): rescaled by 70
        steps = [ours.decode_step(cached[:, :10], cache)]
        steps += [ours.decode_step(cached[:, i:i + 1], cache) for i in range(10, 10 + new - 1)]
    assert cache.rope_length == 70
    stepwise = torch.cat(steps, dim=1)  # logits at positions 9 .. 68
    assert (stepwise - full[:, 9:69]).abs().max() <= 1e-10
    plain = GPT2.from_weights(ours.config.replace(rope_scaling="none", rope_factor=1.0,
                                                  rope_original_length=None), ours.state_dict())
    with torch.no_grad():
        assert (plain(cached) - full).abs().max() > 1e-3  # the scaling did something


def test_dynamic_generation_of_a_left_padded_batch_equals_each_row_alone():
    ours = own_llama(rope_scaling="dynamic", rope_factor=2.0, rope_original_length=16)
    a, b = ids(6, seed=8, batch=1), ids(9, seed=9, batch=1)
    batch = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), a], 1), b])
    mask = torch.ones_like(batch, dtype=torch.bool)
    mask[0, :3] = False
    together = ours.generate(batch, 30, temperature=0.0, padding_mask=mask)
    full_mask = torch.cat([mask, torch.ones(2, 30, dtype=torch.bool)], dim=1)
    with torch.no_grad():  # one pass over the padded batch rescales by its longest row, 39
        full = ours(together, padding_mask=full_mask)
        alone = ours(together[1:])
    assert (full[1] - alone[0]).abs().max() <= 1e-10
    assert torch.equal(together[1:], ours.generate(b, 30, temperature=0.0))


@pytest.mark.parametrize("changes, fragments", [
    (dict(rope_scaling="linear", rope_factor=2.0), ["rope_scaling='linear'", "position='learned'",
                                                     "position='rope'"]),
    (dict(position="rope", rope_scaling="pi"), ["rope_scaling='pi' is unknown", "linear", "yarn"]),
    (dict(position="rope", rope_scaling="yarn", rope_factor=0.5), ["rope_factor=0.5", ">= 1"]),
    (dict(position="rope", rope_scaling="yarn", rope_factor=float("nan")), ["rope_factor=nan"]),
    (dict(position="rope", rope_factor=4.0), ["no effect with rope_scaling='none'"]),
    (dict(position="rope", rope_scaling="linear", rope_factor=2.0, rope_original_length=1),
     ["rope_original_length=1"]),
    (dict(position="rope", rope_scaling="linear", rope_factor=2.0, rope_beta_fast=8.0),
     ["rope_beta_fast=8.0 only applies to rope_scaling='yarn'"]),
    (dict(position="rope", rope_scaling="yarn", rope_factor=2.0, rope_beta_slow=64.0),
     ["rope_beta_fast=32.0 must be greater than rope_beta_slow=64.0"]),
    (dict(position="rope", rope_scaling="llama3", rope_factor=2.0, rope_low_freq_factor=5.0),
     ["rope_high_freq_factor=4.0 must be greater than rope_low_freq_factor=5.0"]),
    (dict(position="rope", rope_scaling="yarn", rope_factor=2.0, rope_attention_factor=0.0),
     ["rope_attention_factor=0.0"]),
])
def test_bad_scaling_settings_say_what_to_change(changes, fragments):
    with pytest.raises(ValueError) as err:
        ModelConfig(**changes)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_to_dict_is_unchanged_at_the_defaults_and_round_trips_otherwise():
    plain = ModelConfig(position="rope")
    assert not any(key.startswith("rope_") and key != "rope_base" for key in plain.to_dict())
    scaled = plain.replace(rope_scaling="yarn", rope_factor=4.0, rope_original_length=64)
    assert {"rope_scaling", "rope_factor", "rope_original_length"} <= set(scaled.to_dict())
    assert "rope_beta_fast" not in scaled.to_dict()
    assert ModelConfig(**scaled.to_dict()) == scaled
    assert scaled.rope_trained_length == 64 and plain.rope_trained_length == plain.max_seq_len
