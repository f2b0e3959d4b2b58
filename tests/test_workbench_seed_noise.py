"""Seed noise judges only runs like the one it was measured in (issue 24, item 19)."""
from gpt2viz.analysis.workbench import SEED_LOSSES, SEED_NOISE_NOTE, seed_noise, seed_noise_mismatch
from gpt2viz.core.config import TrainSettings
from gpt2viz.text.corpus import Corpus


def test_seed_noise_applies_only_where_it_was_measured():
    embedded = Corpus.default().sha256
    measured = max(SEED_LOSSES.values()) - min(SEED_LOSSES.values())
    assert seed_noise(TrainSettings(), embedded, 0.0) == measured
    assert seed_noise_mismatch(TrainSettings(), embedded, 0.0) == []
    other_text = Corpus.from_text("A different text. " * 3000, "mine").sha256
    assert seed_noise(TrainSettings(), other_text, 0.0) is None
    assert seed_noise(TrainSettings(), embedded, 0.1) is None
    assert seed_noise(TrainSettings(steps=10), embedded, 0.0) is None
    assert seed_noise_mismatch(TrainSettings(steps=10), other_text, 0.1) == [
        f"other training settings ({TrainSettings(steps=10).describe()})", "another corpus", "dropout 0.1"]


def test_the_note_says_where_the_noise_was_measured():
    for where in ("gpt2 preset", "embedded corpus", f"{TrainSettings().steps} steps", "no dropout",
                  f"{max(SEED_LOSSES.values()) - min(SEED_LOSSES.values()):.3f}"):
        assert where in SEED_NOISE_NOTE
