"""What a link could not mean is said once, in one box, one line per note (issue 24, item 9)."""
import pytest
from apptest import app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def test_link_notes_share_one_box_and_the_missing_corpus_is_said_once():
    at = app(weights="random", rope_base="nan", seed="-3", corpus="gone@0123456789ab")
    boxes = [w.value for w in at.warning]
    notes = [b for b in boxes if "rope_base" in b or "seed=" in b or "gone@" in b]
    assert len(notes) == 1, boxes
    lines = notes[0].split("  \n")
    assert lines == ["seed=-3 is outside 0–2,147,483,647; using the nearest valid value, 0.",
                     "rope_base='nan' is not a finite number; using the default, 10,000.",
                     lines[2]]
    assert lines[2].startswith("The corpus 'gone@0123456789ab' is not on this server")
    assert sum("gone@" in b for b in boxes) == 1
    assert at.session_state["sb_corpus"] == ""
