"""The head atlas and ablation bars (gpt2viz.viz.heads): what they draw recomputed from the
rows they were given, without the helpers that drew them."""
import numpy as np
import pytest

from gpt2viz.analysis.heads import MEASURES
from gpt2viz.viz.heads import ablation_figure, head_atlas, selected_head


def fake_stats(n_layer, n_head, n_kv_head, seed=0):
    rng = np.random.default_rng(seed)
    return [{"layer": l, "head": h, "kv_head": h // (n_head // n_kv_head),
             **{m: float(rng.uniform(0, 1 if m != "mean_distance" else 50)) for m in MEASURES}}
            for l in range(n_layer) for h in range(n_head)]


def cell_marks(fig):
    return next(t for t in fig.data if t.type == "scatter")


@pytest.mark.parametrize("measure", MEASURES)
def test_atlas_colours_every_cell_by_its_measure(measure):
    stats = fake_stats(30, 9, 3)
    fig = head_atlas(stats, measure, n_kv_head=3)
    z = np.array(fig.data[0].z, float)
    assert z.shape == (30, 9)
    for r in stats:
        assert z[r["layer"], r["head"]] == r[measure]
    assert tuple(fig.layout.yaxis.range) == (29.5, -0.5)  # layer 0 on top, no margin around cells
    if measure in ("first_token_mass", "prev_token", "induction"):  # probabilities: 0 .. 1
        assert (fig.data[0].zmin, fig.data[0].zmax) == (0.0, 1.0)
    else:
        assert fig.data[0].zmin == 0.0 and fig.data[0].zmax == pytest.approx(z.max())


def test_atlas_hover_carries_every_number_of_the_head():
    stats = fake_stats(4, 8, 2)
    marks = cell_marks(head_atlas(stats, "induction", n_kv_head=2))
    for r, point, x, y in zip(stats, np.array(marks.customdata, float), marks.x, marks.y):
        assert (point[0], point[1], point[2]) == (r["layer"], r["head"], r["kv_head"])
        assert list(point[3:]) == [r[m] for m in MEASURES]
        assert (y, x) == (r["layer"], r["head"])  # the mark sits on its cell
    for i in range(3 + len(MEASURES)):
        assert f"customdata[{i}]" in marks.hovertemplate
    assert "<b>induction score" in marks.hovertemplate  # the chosen measure stands out


@pytest.mark.parametrize("n_head, n_kv_head", [(9, 3), (8, 2), (8, 1), (4, 4)])
def test_outlines_cover_exactly_the_kv_groups(n_head, n_kv_head):
    n_layer = 5
    fig = head_atlas(fake_stats(n_layer, n_head, n_kv_head), "entropy", n_kv_head=n_kv_head)
    groups = [s for s in fig.layout.shapes if s.name != "selected"]
    group = n_head // n_kv_head
    if group == 1:
        assert groups == []  # MHA: each head is its own group, nothing outlined
        return
    covered = []
    for s in groups:
        heads = [h for h in range(n_head) if s.x0 < h < s.x1]
        layers = [l for l in range(n_layer) if s.y0 < l < s.y1]
        assert layers == list(range(n_layer))
        covered.append(heads)
    assert covered == [list(range(g * group, (g + 1) * group)) for g in range(n_kv_head)]


def test_selected_cell_is_framed():
    fig = head_atlas(fake_stats(3, 4, 2), "prev_token", 2, selected=(2, 1))
    frame = [s for s in fig.layout.shapes if s.name == "selected"]
    assert len(frame) == 1 and frame[0].x0 < 1 < frame[0].x1 and frame[0].y0 < 2 < frame[0].y1


def test_unknown_measure_gets_one_message():
    with pytest.raises(ValueError, match="choose one of"):
        head_atlas(fake_stats(2, 2, 1), "loudness", 1)


def test_selected_head_reads_streamlits_selection_event():
    # the shape st.plotly_chart(on_select="rerun") returned for a click on an atlas cell
    # (Streamlit 1.67, Chromium): customdata comes back as a dict keyed "0", "1", ...
    clicked = {"selection": {"points": [{"curve_number": 1, "point_number": 6, "point_index": 6,
                                         "x": 2, "y": 1, "customdata": {"0": 1, "1": 2, "2": 0}}],
                             "point_indices": [6], "box": [], "lasso": []}}
    assert selected_head(clicked) == (1, 2)
    as_list = {"selection": {"points": [{"customdata": [7.0, 3.0, 1.0, 0.5]}]}}
    assert selected_head(as_list) == (7, 3)
    empty = {"selection": {"points": [], "point_indices": [], "box": [], "lasso": []}}
    assert selected_head(empty) is None and selected_head(None) is None and selected_head({}) is None
    assert selected_head({"selection": {"points": [{"x": 1, "y": 2}]}}) is None


def test_ablation_bars_show_losses_and_their_change():
    base = {"prompt_loss": 2.0, "text_loss": 3.0, "induction_loss": 1.0}
    results = [{"layer": 1, "head": 2, "kv_group": None, "base": base,
                "ablated": {"prompt_loss": 2.5, "text_loss": 3.25, "induction_loss": 4.0}},
               {"layer": 0, "head": None, "kv_group": 1, "base": base,
                "ablated": {"prompt_loss": 2.0, "text_loss": 2.75, "induction_loss": 1.5}}]
    fig = ablation_figure(results)
    assert [t.name for t in fig.data] == ["intact model", "layer 1, head 2 off", "layer 0, KV group 1 off"]
    assert list(fig.data[0].y) == [2.0, 3.0, 1.0]
    assert list(fig.data[1].y) == [2.5, 3.25, 4.0] and list(fig.data[1].customdata) == [0.5, 0.25, 3.0]
    assert list(fig.data[2].customdata) == [0.0, -0.25, 0.5]
    assert list(fig.data[1].text) == ["+0.500", "+0.250", "+3.000"]  # the change, written on each bar
    tiny = [{**results[0], "ablated": {**base, "text_loss": base["text_loss"] - 2e-4}}]
    assert list(ablation_figure(tiny).data[1].text) == ["0.000", "0.000", "0.000"]  # never "-0.000"
    assert list(fig.data[0].x) == ["prompt", "text", "repeated random tokens"]
    without_prompt = [{**r, "base": {k: v for k, v in base.items() if k != "prompt_loss"}} for r in results]
    assert list(ablation_figure(without_prompt).data[0].x) == ["text", "repeated random tokens"]
