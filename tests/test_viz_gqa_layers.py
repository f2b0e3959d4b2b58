"""likeness_by_layer (viz.gqa): the two lines are the numbers given, layer by layer."""
import numpy as np

from gpt2viz.viz.gqa import likeness_by_layer


def test_two_lines_by_layer():
    within, across = [0.9, 0.8, 0.7], [0.5, 0.4, 0.6]
    fig = likeness_by_layer(within, across, "t")
    assert [t.name for t in fig.data] == ["heads of one kv group", "heads of different groups"]
    assert list(fig.data[0].x) == [0, 1, 2]
    assert np.allclose(fig.data[0].y, within) and np.allclose(fig.data[1].y, across)
    assert fig.layout.yaxis.range == (0, 1)
