"""GQA and Experiments pages on a checkpoint with a window of 4 and 2 attention sinks (issue 24,
items 16-18): what they draw, recomputed from the mask's definition and the model."""
import numpy as np
import pytest
import torch
from apptest import app, array, figures

from gpt2viz import GPT2, PRESETS, ModelConfig
from gpt2viz.core.resources import format_bytes
from gpt2viz.text.corpus import Corpus
from gpt2viz.text.tokenizer import get_tokenizer
from gpt2viz.weights.checkpoints import save_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]

WINDOW, SINKS = 4, 2


@pytest.fixture(scope="module")
def sinks_checkpoint(tmp_path_factory):
    corpus = Corpus.default()
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=corpus.vocab.size, n_layer=2, n_head=4, n_kv_head=2, d_model=32,
                         max_seq_len=128, position="rope", window=WINDOW, sinks=SINKS)
    folder = tmp_path_factory.mktemp("checkpoints") / "sinks"
    save_checkpoint(folder, GPT2(config).eval(), {"vocab": corpus.vocab.gpt2_ids})
    return folder


def test_gqa_grid_shows_the_sink_cells_the_model_attends(sinks_checkpoint):
    at = app("gqa", weights="checkpoint", checkpoint=str(sinks_checkpoint))
    (grid,) = [f for f in figures(at) if "one row per kv head" in f["layout"]["title"]["text"]]
    from gpt2viz.weights.checkpoints import load_checkpoint

    model, _ = load_checkpoint(sinks_checkpoint)
    ids = Corpus.default().vocab.to_compact(torch.tensor(get_tokenizer().encode(at.text_area[0].value)))
    with torch.no_grad():
        probs = model.trace(ids[None]).attn[0][0].double().numpy()  # layer 0, (H, T, T)
    t = probs.shape[-1]
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    allowed = (j <= i) & ((i - j < WINDOW) | (j < SINKS))  # README's sinks rule
    assert len(grid["data"]) == 4 and t > WINDOW + SINKS
    for head, trace in enumerate(grid["data"]):  # row-major: kv head 0's query heads first
        z = array(trace["z"]).reshape(t, t)
        assert (np.isnan(z) == ~allowed).all()  # grey exactly where the model cannot attend
        np.testing.assert_allclose(z[allowed], probs[head][allowed], atol=1e-6)
    assert probs[:, WINDOW + SINKS:, :SINKS].min() > 0  # sink cells far from the band hold mass


def test_gqa_cache_at_context_says_the_window_cap():
    at = app("gqa", weights="random")  # shape shown: rope+gqa+swa, window 16, no sinks
    cfg = PRESETS["rope+gqa+swa"]
    context, slots = 4096, cfg.window + cfg.sinks
    table = at.dataframe[0].value.set_index("n_kv_head")
    for kv, row in table.iterrows():
        per_token = 2 * cfg.n_layer * kv * cfg.head_dim * 4  # K and V, fp32
        assert row[f"KV cache at {context}"] == format_bytes(slots * per_token)
    caption = " ".join(c.value for c in at.caption)
    assert f"window + sinks = {cfg.window} + {cfg.sinks} slots" in caption
    assert f"at {context:,} tokens it holds {slots:,} tokens' K and V, not {context:,}" in caption
    cost = next(f for f in figures(at) if f["layout"]["title"]["text"].startswith("What sharing saves"))
    assert any(f"{slots:,} slots kept" in a["text"] for a in cost["layout"]["annotations"])


def test_receptive_field_with_sinks_agrees_with_the_theory(sinks_checkpoint):
    at = app("experiments", weights="checkpoint", checkpoint=str(sinks_checkpoint))
    at.radio(key="experiment").set_value("Receptive field").run()
    assert not at.exception
    fig, = figures(at)
    z = array(fig["data"][0]["z"])  # (layers, P + 1)
    position = z.shape[1] - 1
    for layer in range(2):  # the sinks, and the window band l·(w−1) back
        expected = [j < SINKS or position - j <= (layer + 1) * (WINDOW - 1) for j in range(position + 1)]
        assert z[layer].astype(bool).tolist() == expected
    assert list(at.dataframe[0].value["theory"]) == [position, position]
    assert any("agree at every layer" in s.value and "sink" in s.value for s in at.success)
    assert not at.error
