"""Receptive field with attention sinks (issue 24, item 17): every query reads the first s
keys, so the reach is the whole prefix from layer 1 on; between the sinks and the window band
nothing gets through (a sink query reads only keys before it)."""
import pytest
import torch
from conftest import tiny_model

from gpt2viz.analysis.experiments import reach, receptive_field, theory_reach
from gpt2viz.viz.experiments import receptive_figure


def influenced_by_definition(position, window, sinks, n_layer):
    """[l][j]: input j reaches position P after l + 1 layers: a sink, or inside the band."""
    return [[j < sinks or position - j <= (layer + 1) * (window - 1) for j in range(position + 1)]
            for layer in range(n_layer)]


@pytest.mark.parametrize("window,sinks", [(3, 1), (4, 2), (5, 3)])
@pytest.mark.parametrize("position", [3, 12, 40])
def test_sinks_make_the_reach_the_whole_prefix(window, sinks, position):
    model = tiny_model(n_layer=4, window=window, sinks=sinks, position="rope")
    influence = receptive_field(model, torch.randint(0, 97, (50,)), position)
    assert influence.tolist() == influenced_by_definition(position, window, sinks, 4)
    assert reach(influence) == [position] * 4 == theory_reach(4, window, position, sinks)


def test_receptive_figure_marks_the_sinks_theory_and_the_window_band():
    position, window, sinks = 20, 4, 2
    influence = torch.tensor(influenced_by_definition(position, window, sinks, 3))
    fig = receptive_figure(influence.numpy(), window, theory_reach(3, window, position, sinks), "t", sinks)
    heat, theory, band = fig.data
    assert (heat.z == influence.numpy()).all()
    assert list(theory.x) == [-0.5] * 3  # the whole prefix: input 0 (a sink) reaches every layer
    assert list(band.x) == [position - 3 * layer - 0.5 for layer in (1, 2, 3)]
    assert "sink" in theory.name and "band" in band.name
