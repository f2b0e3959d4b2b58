"""Properties every variant must have: causality, window reach, relative positions under
RoPE, grouped kv heads, padding that changes nothing, and a trace that tells the truth."""
import pytest
import torch
from conftest import VARIANTS, tiny_model

from gpt2viz import GPT2
from gpt2viz.core.attention import resolve
from gpt2viz.weights.checkpoints import to_gqa


def logit_change(model, idx, j):
    """|change| of the logits at every position when token j is replaced."""
    changed = idx.clone()
    changed[:, j] = (changed[:, j] + 1) % model.config.vocab_size
    with torch.no_grad():
        return (model(changed) - model(idx)).abs().amax(dim=(0, 2))  # (T,)


def test_causality(variant):
    _, fields = variant
    model = tiny_model(**fields)
    idx = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(0))
    for j in (0, 7, 19):
        change = logit_change(model, idx, j)
        assert (change[:j] == 0).all(), "a token changed logits before it"
        assert change[j] > 1e-6


@pytest.mark.parametrize("fields", [VARIANTS["swa"], VARIANTS["rope+gqa+swa"],
                                    dict(position="none", window=3, n_layer=3)])
def test_window_reach_is_exactly_layers_times_window_minus_one(fields):
    model = tiny_model(**fields)
    reach = model.config.n_layer * (model.config.window - 1)
    idx = torch.randint(0, 97, (1, 30), generator=torch.Generator().manual_seed(1))
    j = 4
    change = logit_change(model, idx, j)
    for i in range(30):
        influenced = bool(change[i] > 1e-12)
        assert influenced == (0 <= i - j <= reach), f"i={i}, j={j}, reach={reach}"
    assert change[j + reach] > 1e-12 and change[j + reach + 1] == 0  # both sides of the edge


def test_rope_with_window_sees_relative_positions_only():
    """Same last L*(w-1)+1 tokens at different absolute positions: same last logits under
    RoPE and ALiBi, different under learned positions."""
    gen = torch.Generator().manual_seed(2)
    for fields, same in [(VARIANTS["rope+gqa+swa"], True), (VARIANTS["alibi+gqa+swa"], True),
                         (VARIANTS["swa"], False)]:
        model = tiny_model(**fields)
        suffix = torch.randint(0, 97, (1, model.config.n_layer * (model.config.window - 1) + 1),
                               generator=gen)
        a = torch.cat([torch.randint(0, 97, (1, 3), generator=gen), suffix], 1)
        b = torch.cat([torch.randint(0, 97, (1, 21), generator=gen), suffix], 1)
        with torch.no_grad():
            gap = (model(a)[:, -1] - model(b)[:, -1]).abs().max()
        assert (gap < 1e-10) if same else (gap > 1e-4)


def test_rope_model_scores_depend_on_distance_only():
    model = tiny_model(position="rope")
    idx = torch.full((1, 24), 11)  # one token repeated: only position differs
    tr = model.trace(idx)
    q, k = tr.q[0][0, 0], tr.k[0][0, 0]  # layer 0, head 0: (T, hd)
    scores = q @ k.T
    torch.testing.assert_close(scores[1:, 1:], scores[:-1, :-1], rtol=0, atol=1e-10)


def test_padding_left_or_right_equals_each_prompt_alone(variant):
    _, fields = variant
    model = tiny_model(**fields)
    gen = torch.Generator().manual_seed(3)
    prompts = [torch.randint(0, 97, (n,), generator=gen) for n in (5, 11, 2)]
    t = 11
    for side in ("left", "right"):
        idx = torch.zeros(3, t, dtype=torch.long)
        mask = torch.zeros(3, t, dtype=torch.bool)
        for row, p in enumerate(prompts):
            span = slice(t - len(p), t) if side == "left" else slice(0, len(p))
            idx[row, span], mask[row, span] = p, True
        with torch.no_grad():
            batched = model(idx, padding_mask=mask)
            tr = model.trace(idx, padding_mask=mask)
            for row, p in enumerate(prompts):
                alone = model(p[None])[0]
                torch.testing.assert_close(batched[row][mask[row]], alone, rtol=0, atol=1e-10)
        for probs in tr.attn:  # real queries put no mass on padded keys
            real_rows = probs.transpose(1, 2)[mask]  # (real tokens, n_head, T)
            keys_padded = (~mask).repeat_interleave(mask.sum(1), 0)[:, None, :]
            assert (real_rows * keys_padded).abs().max() == 0


def test_trace_is_a_distribution_inside_the_window_and_matches_forward(variant):
    name, fields = variant
    model = tiny_model(**fields)
    idx = torch.randint(0, 97, (2, 17), generator=torch.Generator().manual_seed(4))
    tr = model.trace(idx)
    cfg = model.config
    i, j = torch.arange(17)[:, None], torch.arange(17)[None, :]
    outside = (j > i) | ((i - j >= cfg.window) & (j >= cfg.sinks) if cfg.window
                         else torch.zeros_like(j > i))
    assert len(tr.attn) == len(tr.q) == len(tr.k) == len(tr.v) == cfg.n_layer
    for probs, q, k, v in zip(tr.attn, tr.q, tr.k, tr.v):
        assert probs.shape == (2, cfg.n_head, 17, 17)
        assert q.shape == (2, cfg.n_head, 17, cfg.head_dim)
        assert k.shape == v.shape == (2, cfg.n_kv_head, 17, cfg.head_dim)
        torch.testing.assert_close(probs.sum(-1), torch.ones(2, cfg.n_head, 17).double())
        assert (probs[..., outside] == 0).all()
    with torch.no_grad():
        torch.testing.assert_close(tr.logits, model(idx), rtol=0, atol=1e-10)


@pytest.mark.parametrize("fields", [dict(window=40), dict(window=40, n_kv_head=2, position="rope"),
                                    dict(window=40, sinks=4, n_kv_head=1, position="alibi")])
def test_trace_eager_equals_banded_fast_path_on_long_inputs(fields):
    model = tiny_model(dtype=torch.float32, max_seq_len=800, **fields)
    idx = torch.randint(0, 97, (1, 700), generator=torch.Generator().manual_seed(5))  # auto: banded
    assert resolve(700, 700, 40) == "banded"
    with torch.no_grad():
        assert (model.trace(idx).logits - model(idx)).abs().max() <= 1e-5


def test_gqa_parameters_and_equivalence_to_mha_with_shared_heads():
    gqa = tiny_model(n_kv_head=2)
    cfg = gqa.config
    attn = gqa.blocks[0].attn
    kv_weights = attn.k_proj.weight.numel() + attn.v_proj.weight.numel()
    assert kv_weights == 2 * cfg.d_model * cfg.n_kv_head * cfg.head_dim
    # MHA whose k/v heads repeat each GQA head for its group computes the same function
    mha = GPT2(cfg.replace(n_kv_head=cfg.n_head)).double().eval()
    state = gqa.state_dict()
    for name, tensor in list(state.items()):
        if ".k_proj." in name or ".v_proj." in name:
            heads = tensor.reshape(cfg.n_kv_head, cfg.head_dim, *tensor.shape[1:])
            state[name] = heads.repeat_interleave(cfg.group_size, 0).reshape(cfg.d_model, *tensor.shape[1:])
    mha.load_state_dict(state)
    idx = torch.randint(0, 97, (2, 15))
    with torch.no_grad():
        torch.testing.assert_close(mha(idx), gqa(idx), rtol=0, atol=1e-10)


def test_to_gqa_identity_and_mean_pool():
    mha = tiny_model()
    idx = torch.randint(0, 97, (2, 15))
    same = to_gqa(mha, mha.config.n_head)
    with torch.no_grad():
        assert torch.equal(same(idx), mha(idx))
    pooled = to_gqa(mha, 2)
    assert pooled.config.n_kv_head == 2
    hd = mha.config.head_dim
    w = mha.blocks[1].attn.v_proj.weight
    expected = (w[2 * hd:3 * hd] + w[3 * hd:4 * hd]) / 2  # kv head 1 = mean of heads 2 and 3
    torch.testing.assert_close(pooled.blocks[1].attn.v_proj.weight[hd:], expected)
    with pytest.raises(ValueError, match="choose n_kv_head from"):
        to_gqa(mha, 3)


def test_alibi_trace_probabilities_are_the_papers_bias_under_the_mask():
    """softmax(q·kᵀ/√d − m_h·(i − j)) with the window-and-sinks mask, from the traced q and k."""
    model = tiny_model(**VARIANTS["alibi+mqa+swa+sinks"])
    cfg = model.config
    tr = model.trace(torch.randint(0, 97, (1, 12), generator=torch.Generator().manual_seed(6)))
    i, j = torch.arange(12)[:, None], torch.arange(12)[None, :]
    allowed = (j <= i) & ((i - cfg.window < j) | (j < cfg.sinks))
    slopes = torch.tensor([2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8], dtype=torch.float64)  # H=4
    for q, k, probs in zip(tr.q, tr.k, tr.attn):
        scores = q[0] @ k[0, 0].T / cfg.head_dim ** 0.5 - slopes[:, None, None] * (i - j)
        expected = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
        torch.testing.assert_close(probs[0], expected, rtol=0, atol=1e-12)


def test_trace_captures_only_what_it_is_asked_for(monkeypatch):
    """capture=("q", "k") gives the same q, k and logits as a full trace and never builds the
    probabilities (resolve() does not send it to eager); "resid" is the residual stream whose
    last entry, through the final norm and LM head, is the logits."""
    import gpt2viz.core.attention as attention_module

    model = tiny_model(position="rope", n_kv_head=2, window=4)
    idx = torch.randint(0, 97, (2, 12))
    full = model.trace(idx)
    decided = []
    original = attention_module.resolve
    monkeypatch.setattr(attention_module, "resolve",
                        lambda *a, **kw: decided.append(original(*a, **kw)) or decided[-1])
    light = model.trace(idx, capture=("q", "k"))
    assert "eager" not in decided and light.attn == [] and light.v == [] and light.resid == []
    assert all(torch.allclose(a, b) for a, b in zip(light.q + light.k, full.q + full.k))
    assert torch.allclose(light.logits, full.logits)
    stream = model.trace(idx, capture=("resid",)).resid
    assert len(stream) == model.config.n_layer + 1
    assert torch.allclose(model.lm_head(model.ln_f(stream[-1])), full.logits)
    with pytest.raises(ValueError, match="cannot capture"):
        model.trace(idx, capture=("scores",))


def test_ablating_heads_in_a_trace_is_zeroing_their_output_projection_columns():
    """The definition: head h's output is columns h*hd .. (h+1)*hd of out_proj's input; with
    those weights zero, the head adds nothing. ablate= must give the same logits."""
    model = tiny_model(n_kv_head=2)
    idx = torch.randint(0, 97, (1, 10))
    ablated = model.trace(idx, capture=(), ablate={1: [0, 3]}).logits
    hd = model.config.head_dim
    with torch.no_grad():
        for head in (0, 3):
            model.blocks[1].attn.out_proj.weight[:, head * hd:(head + 1) * hd] = 0
    assert torch.allclose(ablated, model(idx))
    with pytest.raises(ValueError, match="head 9 does not exist"):
        model.trace(idx, ablate={0: [9]})
