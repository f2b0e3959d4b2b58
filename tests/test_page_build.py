"""Build & train through AppTest: the table's numbers recomputed from their definitions, the
training settings and your own text, what the page says about noise and vocabulary."""
import pytest
import torch
from apptest import (
    QUICK_STEPS,
    app,
    figures,
    kv_bytes_per_token,
    own_loss,
    param_formula,
    shown_bytes,
    stored,
)

from gpt2viz import PRESETS
from gpt2viz.text.tokenizer import get_tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def build_table(at):
    """The Build page's two tables (what each model is, how well it learned) as one."""
    return at.dataframe[0].value.merge(at.dataframe[1].value, on="variant")


def test_build_table_trains_and_flags_models_that_did_not_learn(tmp_path):
    at = app()
    table = build_table(at)
    assert list(table["variant"]) == ["gpt2", "rope+gqa+swa"]
    assert (table["params"] > 0).all() and table["val loss"].notna().all()
    (loss,) = figures(at)
    assert len(loss["data"]) == 4  # train + validation per variant
    assert any("unigram" in str(a.get("text")) for a in loss["layout"]["annotations"])
    # 8 steps learn nothing: the page must say so for exactly the rows at or above unigram
    errors = " ".join(e.value for e in at.error)
    for _, row in table.iterrows():
        failed = row["val loss"] >= row["unigram loss"]
        assert (f"**{row['variant']} did not learn**" in errors) == failed
    assert "did not learn" in errors  # 8 steps are far from enough


def test_build_numbers_are_recomputed_from_their_definitions(corpus):
    at = app()
    table = build_table(at).set_index("variant")
    for name in ("gpt2", "rope+gqa+swa"):
        v, cfg = stored(name), PRESETS[name]
        assert table.loc[name, "params"] == param_formula(cfg, corpus.vocab.size)
        assert table.loc[name, "KV cache / token"] == shown_bytes(kv_bytes_per_token(cfg))
        assert table.loc[name, "val loss"] == pytest.approx(own_loss(v.model, corpus.val, 128), abs=6e-4)
    counts = torch.bincount(corpus.train, minlength=corpus.vocab.size).double() + 1  # add-one
    unigram = float(-(counts / counts.sum()).log()[corpus.val].mean())
    assert (table["unigram loss"] == round(unigram, 3)).all()


def test_build_shows_how_much_each_model_uses_its_context(corpus):
    at = app()
    table = build_table(at).set_index("variant")
    for name in ("gpt2", "rope+gqa+swa"):
        model = stored(name).model
        assert table.loc[name, "val loss, context 1"] == pytest.approx(own_loss(model, corpus.val, 1), abs=6e-4)
        assert table.loc[name, "val loss, context ≤ 16"] == pytest.approx(own_loss(model, corpus.val, 16), abs=6e-4)
    # The quick budget is not the one the seed noise was measured for: the page says so.
    assert any("This run differs (other training settings" in c.value for c in at.caption)


def test_seed_noise_is_marked_for_the_budget_it_was_measured_with_only(corpus):
    from gpt2viz.analysis.workbench import SEED_LOSSES, seed_noise
    from gpt2viz.core.config import TrainSettings

    assert len(SEED_LOSSES) >= 3  # a few seeds, not one
    embedded = corpus.sha256
    assert seed_noise(TrainSettings(), embedded, 0.0) == pytest.approx(max(SEED_LOSSES.values()) - min(SEED_LOSSES.values()))
    assert seed_noise(TrainSettings(steps=QUICK_STEPS), embedded, 0.0) is None


def test_losses_say_they_are_over_the_compact_vocabulary(corpus):
    known = len(corpus.vocab.gpt2_ids)
    folded = get_tokenizer().vocab_size - known
    at = app()
    text = " ".join(c.value for c in at.caption)
    assert f"{known:,} GPT-2 ids" in text and f"other {folded:,}" in text and "unknown" in text
    at = app("compare", weights="random")
    text = " ".join(c.value for c in at.caption)
    assert f"{corpus.vocab.size:,}" in text and "unknown" in text and "not comparable" in text


def test_training_settings_key_the_cache_and_bad_settings_are_refused(tmp_path, monkeypatch):
    """Through a link (the browser test types them into the Build page's fields)."""
    from gpt2viz import PRESETS
    from gpt2viz.core.config import TrainSettings
    from gpt2viz.text.corpus import Corpus
    from gpt2viz.weights.checkpoint_cache import checkpoint_folder

    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))
    at = app(variants=["gqa"], steps="5", lr="0.002", batch_size="4")
    assert at.dataframe[0].value.iloc[0]["weights"] == "trained"
    assert any("5 steps · batch 4 × 128 tokens · lr 0.002" in c.value for c in at.caption)
    settings = TrainSettings(steps=5, lr=0.002, batch_size=4)
    assert checkpoint_folder(PRESETS["gqa"], Corpus.default(), settings, 0).is_dir()
    # learned positions have 128 rows: a 512-token block cannot train, said before anything runs
    at = app(variants=["gqa"], steps="5", lr="0.002", batch_size="4", block_size="512")
    assert any("gqa cannot be trained with these settings" in e.value and "max_seq_len=128" in e.value
               for e in at.error)
    assert at.dataframe[0].value.iloc[0]["weights"] == "random init (not trained yet)"
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("data, said", [
    (b"", "is empty"), (b"   \n\t", "is empty"), (b"\x00\x01PNG", "looks binary"),
    (b"caf\xe9 au lait", "is not UTF-8"), (b"too short " * 10, "training needs at least 4096"),
])
def test_own_text_that_cannot_train_is_refused_with_the_reason(data, said):
    from gpt2viz.text.corpus import Corpus, CorpusError, decode_text

    with pytest.raises(CorpusError, match=said):
        Corpus.from_text(decode_text(data, "notes.txt"), "notes.txt")


def test_a_corpus_link_names_its_hash_and_an_unknown_one_is_said(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))
    at = app(weights="random", corpus="gone.txt@0123456789ab")
    assert any("The corpus 'gone.txt@0123456789ab' is not on this server" in w.value for w in at.warning)
    assert "pydoc_data.topics" in at.caption[0].value or at.dataframe  # the embedded one, working
