"""The Tasks page through AppTest: a visit trains nothing; its button queues one task model per
selected variant; every accuracy it draws is recomputed here from the model's argmax predictions
on the generated batch; bad knobs are one line and start nothing."""
import json

import numpy as np
import pytest
import torch
from apptest import app, array, figures, wait_for_training

from gpt2viz.analysis.task_models import EVAL_ROWS, EVAL_SEED, expected_limits
from gpt2viz.analysis.tasks import make_task

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]


def test_a_visit_asks_first_then_the_button_trains_and_the_heatmap_is_the_models_own():
    from gpt2viz.dashboard.models import store
    from gpt2viz.dashboard.tasks import _trained

    at = app("tasks")
    at.selectbox(key="task_name").set_value("passkey").run()
    assert not any(" on passkey" in job.name for job in store().training.pending())
    assert any("Not trained yet: gpt2, rope+gqa+swa" in i.value for i in at.info)
    at.button(key="tasks_train_button").click().run()
    wait_for_training(at)
    assert not at.exception, [e.value for e in at.exception]
    heatmap = figures(at)[0]["data"][0]
    assert list(heatmap["y"]) == ["gpt2", "rope+gqa+swa"]
    z = array(heatmap["z"]).reshape(2, -1)
    task = make_task("passkey", length=at.select_slider(key="task_length").value)  # as on the page
    described = json.dumps(task.to_dict(), sort_keys=True)
    trained = {key[1]: m for key, m in _trained().items() if key[3] == described}
    for row, name in enumerate(["gpt2", "rope+gqa+swa"]):
        model = trained[name].model
        for col, distance in enumerate(heatmap["x"]):
            batch = task.generate(EVAL_ROWS, seed=EVAL_SEED + 0, distance=int(distance))
            with torch.no_grad():
                right = (model(batch.ids).argmax(-1) == batch.targets) & batch.mask
            assert z[row, col] == pytest.approx(float(right.sum() / batch.mask.sum()), abs=1e-9)
    # rope+gqa+swa's window of 16 over 2 layers reaches 30 tokens back: said under the chart
    window_line = expected_limits(trained["rope+gqa+swa"].model.config, task)[0]
    assert "window 16 × 2 layers reaches 30 tokens back" in window_line
    assert any(window_line in c.value for c in at.caption)
    curves = figures(at)[1]
    assert {t["name"] for t in curves["data"] if t.get("mode") == "lines"} == {"gpt2", "rope+gqa+swa"}
    # the head atlas of the first task model: previous-token attention from its own trace
    at.radio(key="tasks_atlas_measure").set_value("prev_token").run()
    atlas = figures(at)[-1]
    assert atlas["layout"]["title"]["text"].startswith("gpt2 (task model)")
    model = trained["gpt2"].model
    ids = task.generate(8, seed=EVAL_SEED + 0).ids
    with torch.no_grad():
        attn = model.trace(ids).attn  # per layer (8, H, T, T)
    own = np.array([[float(a[:, h].diagonal(offset=-1, dim1=-2, dim2=-1).double().mean())
                     for h in range(model.config.n_head)] for a in attn])
    assert np.allclose(array(atlas["data"][0]["z"]), own, atol=1e-6)


def test_bad_knobs_are_one_line_and_start_nothing():
    from gpt2viz.dashboard.models import store

    at = app("tasks")
    at.selectbox(key="task_name").set_value("recall").run()
    at.number_input(key="task_pairs").set_value(16).run()
    assert len(at.error) == 1 and "cannot make a task" in at.error[0].value
    assert not at.button and not any(" on recall" in job.name for job in store().training.pending())
    assert np.isfinite(make_task("recall").chance)
