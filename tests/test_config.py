"""gpt2viz.core.config: impossible configs name the fields and the fix, the presets, KV-cache bytes."""
import pytest

from gpt2viz import PRESETS, ModelConfig, preset


@pytest.mark.parametrize("fields, names", [
    (dict(d_model=100, n_head=8), ["d_model=100", "n_head=8"]),
    (dict(n_head=8, n_kv_head=3), ["n_head=8", "n_kv_head=3", "[1, 2, 4, 8]"]),
    (dict(n_head=4, n_kv_head=8), ["n_kv_head"]),
    (dict(d_model=24, n_head=8, position="rope"), ["head_dim", "odd", "rope"]),
    (dict(window=0), ["window=0", ">= 1"]),
    (dict(window=-3), ["window=-3"]),
    (dict(position="absolute"), ["position='absolute'", "learned", "alibi"]),
    (dict(n_layer=0), ["n_layer=0", "positive"]),
    (dict(vocab_size=2.5), ["vocab_size"]),
    (dict(rope_base=1.0), ["rope_base"]),
    (dict(position="alibi", rope_base=500.0), ["rope_base=500", "position='alibi'", "position='rope'"]),
    (dict(window=8, sinks=-1), ["sinks=-1", ">= 0"]),
    (dict(sinks=4), ["sinks=4", "window"]),
    (dict(dropout=1.0), ["dropout"]),
])
def test_impossible_configs_name_fields_and_fix(fields, names):
    with pytest.raises(ValueError) as err:
        ModelConfig(**fields)
    for name in names:
        assert name in str(err.value)


def test_learned_positions_refuse_sequences_past_max_seq_len():
    cfg = ModelConfig(max_seq_len=16)
    cfg.check_seq_len(16)
    with pytest.raises(ValueError, match="max_seq_len=16"):
        cfg.check_seq_len(17)
    ModelConfig(max_seq_len=16, position="rope").check_seq_len(1000)  # rope has no table


def test_presets_are_the_seed_variants():
    assert set(PRESETS) >= {"gpt2", "rope", "gqa", "swa", "rope+gqa+swa"}
    assert PRESETS["gpt2"].position == "learned" and PRESETS["gpt2"].window is None
    assert PRESETS["gpt2"].n_kv_head == PRESETS["gpt2"].n_head
    assert PRESETS["rope"].position == "rope"
    assert PRESETS["gqa"].attention_kind == "GQA"
    assert PRESETS["swa"].window is not None
    combined = PRESETS["rope+gqa+swa"]
    assert combined.position == "rope" and combined.n_kv_head < combined.n_head and combined.window
    with pytest.raises(ValueError, match="unknown variant"):
        preset("llama")


def test_kv_cache_bytes_follow_kv_heads_and_window():
    mha = ModelConfig(n_layer=4, n_head=8, d_model=256)
    assert mha.kv_cache_bytes_per_token() == 2 * 4 * 8 * 32 * 4
    assert ModelConfig(n_layer=4, n_head=8, n_kv_head=2, d_model=256).kv_cache_bytes(100) * 4 \
        == mha.kv_cache_bytes(100)
    swa = mha.replace(window=64)
    assert swa.kv_cache_bytes(1000) == swa.kv_cache_bytes(64) == 64 * mha.kv_cache_bytes_per_token()
