"""RoPE: the rotation itself, which frequencies turn inside the context, and the decay of
q.k with distance, live for any base, head size and context length."""
import streamlit as st
import torch

from gpt2viz.analysis.rope_usage import pair_norms, qk_by_distance
from gpt2viz.core.config import ROPE_SCALINGS, ModelConfig
from gpt2viz.core.positions import apply_rope, rope_cos_sin, sinusoidal_table
from gpt2viz.core.resources import format_number
from gpt2viz.dashboard import link, models, prompts, real_model, routing
from gpt2viz.dashboard.export import chart
from gpt2viz.viz.rope import (
    absolute_position_similarity,
    alibi_weight_by_distance,
    measured_decay_figure,
    pair_usage_figure,
    rope_score_by_distance,
    rotation_panels,
    scaled_decay_figure,
    scaled_score_by_distance,
    scaling_figure,
    score_decay,
    wavelength_bars,
)

selection = routing.selection()
st.title("RoPE geometry")
st.caption("Rotary embeddings turn each pair of q/k dimensions by position × θ_i, θ_i = base^(−2i/d). "
           "The score q_m·k_n then depends on m − n only. Pairs used here: (x_i, x_{i+d/2}), as in "
           "GPT-NeoX and Llama.")
built = models.variants(selection)
rope_variants = {n: v for n, v in built.items() if v.config.position == "rope"}
# The explanatory figures start at the chosen RoPE model's own base and head size.
# Another model starts them again at its own; the three sliders are in the link (link.control).
name = (st.selectbox("RoPE model", list(rope_variants),
                     on_change=link.forget, args=("geometry_base", "geometry_head_dim"))
        if rope_variants else None)
own = rope_variants[name].config if name else None
c1, c2, c3 = st.columns(3)
bases = sorted({100.0, 500.0, 1000.0, 10000.0, 100000.0, 1000000.0} | ({own.rope_base} if own else set()))
base = link.control(c1.select_slider, "RoPE base", "geometry_base", own.rope_base if own else 10000.0,
                    options=bases, format_func=lambda b: f"{b:g}")
head_dims = sorted({8, 16, 32, 64, 128} | ({own.head_dim} if own else set()))
head_dim = link.control(c2.select_slider, "Head size", "geometry_head_dim", own.head_dim if own else 16,
                        options=head_dims)
# the model's own context is offered and is where the slider starts (128 for the small models,
# 8,192 for SmolLM2-135M)
contexts = sorted({64, 128, 256, 512, 1024, 4096, 32768} | ({own.max_seq_len} if own else set()))
context = link.control(c3.select_slider, "Context length", "geometry_context",
                       own.max_seq_len if own else 256, options=contexts)

st.subheader("The rotation")
prompt = prompts.prompt_input()
if prompt and rope_variants:
    variant = rope_variants[name]
    cfg = variant.config
    a, b = st.columns(2)
    layer = a.slider("Layer", 0, cfg.n_layer - 1, 0) if cfg.n_layer > 1 else 0
    head = b.slider("Query head", 0, cfg.n_head - 1, 0) if cfg.n_head > 1 else 0
    tr = prompts.trace(variant, prompt)
    kv_head = head // cfg.group_size
    positions = tr.positions[:1]  # (1, T)
    cos, sin = rope_cos_sin(positions, cfg.head_dim, cfg.rope_base, tr.q[layer].dtype)
    content = apply_rope(tr.q[layer][:, head:head + 1], cos, -sin)[0, 0, -1]  # last query, unrotated
    trajectory = apply_rope(content.expand(1, 1, positions.shape[1], cfg.head_dim), cos, sin)[0, 0]
    chart(rotation_panels(trajectory.numpy(), positions[0].numpy(), cfg.rope_base,
                          keys=tr.k[layer][0, kv_head].numpy()))
    st.caption(f"{name}, layer {layer}: the last token's query (head {head}) with its rotation undone, "
               f"then rotated to each of the prompt's {positions.shape[1]} positions; grey: the real "
               f"rotated keys of kv head {kv_head}. This model's base is {format_number(cfg.rope_base)} and head "
               f"size {cfg.head_dim}; the sliders above change the figures below.")

    st.subheader("What the model does with the rotation")
    if variant.pretrained:  # a real model: a long stretch of real text, not just the prompt
        tokens = st.select_slider("Tokens of text", [128, 256, 512, 1024], value=512,
                                  help="The first tokens of the default corpus's validation text, "
                                       "in the model's own tokens; traced once per server process.")
        vectors, source = real_model.qk_trace(variant, tokens), f"the first {tokens} tokens of the default corpus"
    else:
        vectors, source = tr, "the prompt"
    chart(pair_usage_figure(pair_norms(vectors.q).numpy(), pair_norms(vectors.k).numpy(),
                            cfg.rope_base, cfg.max_seq_len,
                            f"{name}: the rotation pairs its q and k use ({source})"))
    st.caption("Each cell: the mean length of one (x_k, x_k+d/2) pair over heads and positions, over "
               "the layer's mean pair. A rotation keeps a pair's length, so this is how much of q or k "
               "the model puts on each frequency. Pairs that hardly turn inside the context carry content, "
               f"not position: right of the dotted line a pair turns less than once in the model's "
               f"{cfg.max_seq_len:,}-token context (base {format_number(cfg.rope_base)}).")
    measured = qk_by_distance(vectors, layer, head, base=cfg.rope_base)
    chart(measured_decay_figure(measured, cfg.head_dim, cfg.rope_base,
                                f"{name}, layer {layer}, head {head} (kv head {kv_head}): q·k "
                                f"against distance on {source}"))
    st.caption("Solid: the mean score q_i·k_(i−Δ)/√d the model computes (before masks and softmax) "
               "at each distance; dashed: the same vectors with their rotation undone; dotted (right "
               "axis): the analytic decay for q = k = ones at this base and head size. Layer and head: "
               "the sliders above.")
elif prompt:
    st.info("No RoPE model is selected: showing one fixed vector rotated by position. Add 'rope' "
            "or 'rope+gqa+swa' in the sidebar to see a model's real q and k.")
    positions = torch.arange(min(context, 64))[None]
    vec = torch.randn(1, 1, 1, head_dim, generator=torch.Generator().manual_seed(0)).expand(1, 1, positions.shape[1], head_dim)
    rotated = apply_rope(vec.double(), *rope_cos_sin(positions, head_dim, base, torch.float64))[0, 0]
    chart(rotation_panels(rotated.numpy(), positions[0].numpy(), base))

st.subheader("Wavelengths against the context")
chart(wavelength_bars(head_dim, base, context))

st.subheader("Past the trained context: interpolation, NTK and YaRN")
SCALING_NAMES = {"linear": "linear (Position Interpolation)", "ntk": "NTK-aware (static)",
                 "dynamic": "dynamic NTK", "yarn": "YaRN", "llama3": "Llama 3"}
c1, c2 = st.columns(2)
method = link.control(c1.selectbox, "Scaling method", "geometry_scaling", "yarn",
                      options=list(SCALING_NAMES), format_func=SCALING_NAMES.get)
factors = [2.0, 4.0, 8.0, 16.0, 32.0]
factor = link.control(c2.select_slider, "Factor s: the new context is s × the trained one",
                      "geometry_factor", 4.0, options=factors, format_func=lambda s: f"{s:g}×")


def stretched(scaling):
    """A one-head RoPE config of the sliders' head size and base, trained to `context` tokens."""
    return ModelConfig(vocab_size=2, n_layer=1, n_head=1, d_model=head_dim, max_seq_len=context,
                       position="rope", rope_base=base, rope_scaling=scaling,
                       rope_factor=1.0 if scaling == "none" else factor)


chart(scaling_figure(stretched(method)))
st.caption(f"Trained context L = the context slider ({context:,}); s·L = {factor * context:,.0f}. "
           "Plain RoPE past L turns its slow pairs to angles no training position reached "
           "(extrapolation). Linear scaling (Chen et al. 2023) divides every θ by s: every angle "
           "stays inside the trained range, but neighbouring tokens now differ by 1/s of a step on "
           "the fast pairs too, which the model has to be fine-tuned for. NTK-aware scaling raises "
           "the base by s^(d/(d−2)): the fast pairs are kept, the slowest is interpolated by exactly "
           "s. YaRN (Peng et al. 2023) keeps pairs that turn more than β=32 times in L, interpolates "
           "those turning less than α=1 time, ramps between, and multiplies cos and sin by "
           "0.1·ln(s) + 1 (sharper attention at long range). Dynamic NTK chooses the base from the "
           "current length, so nothing changes up to L. Measured on models: Experiments → "
           "'Context extension'.")
curves = scaled_score_by_distance({SCALING_NAMES.get(m, "plain RoPE"): stretched(m)
                                   for m in ROPE_SCALINGS}, int(round(factor * context)))
chart(scaled_decay_figure(curves, context, factor))

st.subheader("Long-term decay of q·k")
curves = rope_score_by_distance(head_dim, base, context)
lines = {"RoPE, q = k = ones (score / d)": (curves["distance"], curves["ones"]),
         "RoPE, RoFormer's bound (relative)": (curves["distance"], curves["bound"])}
sin_table = sinusoidal_table(torch.arange(context)[None], head_dim, torch.float64)[0].numpy()
lines["sinusoidal PE(m)·PE(m+Δ) (absolute, added)"] = absolute_position_similarity(sin_table)
learned = [v for v in built.values() if v.config.position == "learned" and v.model.wpe is not None]
if learned:
    wpe = learned[0].model.wpe.weight.detach().cpu().numpy()[:context]  # (rows, d_model)
    lines[f"learned positions of {learned[0].name}, rows 0–{len(wpe) - 1} ({learned[0].source}; "
          f"mean p_m·p_m+Δ)"] = absolute_position_similarity(wpe)
alibi_heads = next((v.config.n_head for v in built.values() if v.config.position == "alibi"), 8)
alibi = alibi_weight_by_distance(alibi_heads, context)
for head in (0, alibi_heads - 1):
    lines[f"ALiBi weight exp(−m·Δ), head {head} of {alibi_heads} (m = {alibi['slopes'][head]:.4g})"] = \
        (alibi["distance"], alibi["factor"][head])
chart(score_decay(lines, head_dim, base))
st.caption("RoPE's score oscillates and its envelope decays with distance. At base 10000 the "
           "sinusoidal table's similarity is the same curve (the same frequencies), but it is added "
           "to the input, so content and position mix before q and k are formed; RoPE builds the "
           "distance into q·k itself. Move the base to separate them. ALiBi has no rotation: it "
           "subtracts m·Δ from the score, which multiplies a key's weight by exp(−m·Δ), the same "
           "decay for every query and content.")
