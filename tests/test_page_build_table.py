"""Build & train's tables: no grey 'None' cells (a column nobody has is left out, a gap is
'—', and a caption says why), and while the models train the page says the loss curves come
when training finishes (issue 24, item 12)."""
import pytest
from apptest import APP, app, wait_for_training
from streamlit.testing.v1 import AppTest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def cells(at):
    return [x for table in at.dataframe for column in table.value for x in table.value[column]]


def test_random_weights_show_no_empty_loss_columns_and_say_why():
    at = app(weights="random")
    assert len(at.dataframe) == 1
    assert list(at.dataframe[0].value) == ["variant", "weights", "params", "attention", "position",
                                           "window", "KV cache / token"]
    assert all(x is not None and x == x for x in cells(at))  # neither None nor NaN
    assert any("never trained here" in c.value for c in at.caption)


def test_while_training_the_page_says_the_curves_come_when_it_finishes(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))  # cold, and a seed no other test trains
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params["seed"] = "11"
    at.run()
    assert any("Training in the background" in m.value for m in at.markdown)
    infos = [i.value for i in at.info]
    assert "The loss curves appear here when training finishes." in infos
    assert not any("Random or imported weights" in i for i in infos)
    assert all(x is not None and x == x for x in cells(at))
    assert list(at.dataframe[0].value["weights"]) == ["random init (not trained yet)"] * 2
    assert any("appear when its training finishes" in c.value for c in at.caption)
    wait_for_training(at)
    assert len(at.dataframe) == 2 and at.dataframe[1].value["val loss"].notna().all()
    assert not any("when training finishes" in i.value for i in at.info)
