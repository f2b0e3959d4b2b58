"""gpt2viz.viz.charts: loss curves and next-token bars draw exactly the numbers they are given."""
from gpt2viz.training.train import History
from gpt2viz.viz.charts import loss_curves, next_token_bars


def test_loss_curves_draw_each_history_and_the_baseline():
    h = History(steps=[1, 2, 3], train_loss=[5.0, 4.5, 4.2], eval_steps=[3], val_loss=[4.4])
    fig = loss_curves({"m": h}, 5.4)
    train, val = fig.data
    assert list(train.x) == [1, 2, 3] and list(train.y) == [5.0, 4.5, 4.2]
    assert list(val.x) == [3] and list(val.y) == [4.4]
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 5.4


def test_next_token_bars_put_the_most_likely_token_on_top_of_each_panel():
    fig = next_token_bars({"a": (["x", "y"], [0.7, 0.2]), "b": (["z"], [0.9])})
    a, b = fig.data
    assert list(a.x) == [0.2, 0.7] and list(a.y) == ["y ", "x "]  # plotly draws bottom-up
    assert list(b.x) == [0.9] and a.xaxis == "x" and b.xaxis == "x2"
