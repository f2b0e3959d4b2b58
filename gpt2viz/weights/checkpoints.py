"""Weights in and out: a local Hugging Face folder (GPT-2, or the Llama family: Llama,
Mistral, Qwen2), our own checkpoints (safetensors + JSON, written atomically), and MHA -> GQA
conversion by mean-pooling.

Nothing here ever unpickles arbitrary objects: a GPT-2 folder's .bin goes through
torch.load(weights_only=True); the Llama family loads from safetensors only.
"""
from __future__ import annotations

import io
import json
import math
import pickle
import re
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gpt2viz.core.config import ModelConfig, kv_head_choices
from gpt2viz.core.model import GPT2
from gpt2viz.core.resources import ensure_fits
from gpt2viz.core.staging import write_whole
from gpt2viz.text.hf_tokenizer import HFTokenizer


class CheckpointError(ValueError):
    """A checkpoint that cannot become the model it claims to be; the message says why."""


# ---------------------------------------------------------------- Hugging Face GPT-2 folders
def load_hf_gpt2(folder) -> GPT2:
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder; give the folder that holds "
                              f"config.json and model.safetensors.")
    config = hf_config_to_ours(_read_json(folder / "config.json"))
    hf_state = _read_hf_weights(folder)
    state = _hf_state_to_ours(hf_state, config)
    model = GPT2(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path.name} is missing from {path.parent}.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}.") from None


def hf_config_to_ours(hf: dict) -> ModelConfig:
    if hf.get("model_type") != "gpt2":
        raise CheckpointError(f"config.json describes model_type={hf.get('model_type')!r}; "
                              f"only GPT-2 checkpoints (model_type 'gpt2') load here.")
    activation = hf.get("activation_function", "gelu_new")
    if activation not in ("gelu_new", "gelu_pytorch_tanh"):
        raise CheckpointError(f"activation_function={activation!r}: this GPT-2 uses tanh GELU "
                              f"('gelu_new') only.")
    if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("scale_attn_weights") is False:
        raise CheckpointError("config.json changes GPT-2's attention scaling "
                              "(scale_attn_by_inverse_layer_idx / scale_attn_weights); "
                              "those variants are not supported.")
    try:
        return ModelConfig(vocab_size=hf["vocab_size"], n_layer=hf["n_layer"],
                           n_head=hf["n_head"], d_model=hf["n_embd"],
                           max_seq_len=hf["n_positions"], position="learned",
                           layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5))
    except KeyError as err:
        raise CheckpointError(f"config.json has no {err.args[0]!r}.") from None
    except ValueError as err:
        raise CheckpointError(f"config.json: {err}") from None


def _read_hf_weights(folder: Path, pickled_ok: bool = True) -> dict:
    """model.safetensors, the shards model.safetensors.index.json names, or (GPT-2 only,
    pickled_ok) pytorch_model.bin read with weights_only=True."""
    safetensors_path, bin_path = folder / "model.safetensors", folder / "pytorch_model.bin"
    index_path = folder / "model.safetensors.index.json"
    if not safetensors_path.is_file() and index_path.is_file():
        return _read_shards(folder, _read_json(index_path))
    try:
        if safetensors_path.is_file():
            return load_file(str(safetensors_path))
        if bin_path.is_file() and pickled_ok:
            return torch.load(bin_path, map_location="cpu", weights_only=True)
    except (SafetensorError, OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        name = safetensors_path.name if safetensors_path.is_file() else bin_path.name
        raise CheckpointError(f"{name} in {folder} cannot be read ({err}); "
                              f"the file is damaged or not a weights file.") from None
    if pickled_ok:
        raise CheckpointError(f"{folder} has no model.safetensors (or pytorch_model.bin).")
    raise CheckpointError(f"{folder} has no model.safetensors (nor model.safetensors.index.json): "
                          f"save it with save_pretrained(..., safe_serialization=True); pickled "
                          f".bin weights are not read.")


def _read_shards(folder: Path, index: dict) -> dict:
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"model.safetensors.index.json in {folder} has no weight_map.")
    state = {}
    for shard in sorted(set(weight_map.values())):
        path = folder / str(shard)
        if Path(str(shard)).name != str(shard) or not str(shard).endswith(".safetensors"):
            raise CheckpointError(f"model.safetensors.index.json names {shard!r}: shards are "
                                  f".safetensors files beside it.")
        if not path.is_file():
            raise CheckpointError(f"{shard} is missing from {folder} (model.safetensors.index.json "
                                  f"names it).")
        try:
            state.update(load_file(str(path)))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{shard} in {folder} cannot be read ({err}); the file is "
                                  f"damaged or not a weights file.") from None
    return state


def _hf_state_to_ours(hf_state: dict, config: ModelConfig) -> dict:
    """HF's Conv1D stores (in, out); nn.Linear wants (out, in). c_attn splits into q, k, v."""
    prefix = "transformer." if any(k.startswith("transformer.") for k in hf_state) else ""
    d = config.d_model

    def get(name, shape):
        key = prefix + name
        if key not in hf_state:
            raise CheckpointError(f"weight {key!r} is missing: this is not a complete GPT-2 "
                                  f"checkpoint for n_layer={config.n_layer}.")
        tensor = hf_state[key]
        if tuple(tensor.shape) != shape:
            raise CheckpointError(f"weight {key!r} has shape {tuple(tensor.shape)}, but "
                                  f"config.json implies {shape}.")
        return tensor.float()

    state = {"wte.weight": get("wte.weight", (config.vocab_size, d)),
             "wpe.weight": get("wpe.weight", (config.max_seq_len, d)),
             "ln_f.weight": get("ln_f.weight", (d,)), "ln_f.bias": get("ln_f.bias", (d,))}
    state["lm_head.weight"] = state["wte.weight"]
    for i in range(config.n_layer):
        hf, ours = f"h.{i}.", f"blocks.{i}."
        for ln in ("ln_1", "ln_2"):
            state[ours + ln + ".weight"] = get(hf + ln + ".weight", (d,))
            state[ours + ln + ".bias"] = get(hf + ln + ".bias", (d,))
        qkv_w = get(hf + "attn.c_attn.weight", (d, 3 * d)).t()
        qkv_b = get(hf + "attn.c_attn.bias", (3 * d,))
        for part, w, b in zip(("q", "k", "v"), qkv_w.split(d, 0), qkv_b.split(d, 0)):
            state[ours + f"attn.{part}_proj.weight"] = w.contiguous()
            state[ours + f"attn.{part}_proj.bias"] = b
        state[ours + "attn.out_proj.weight"] = get(hf + "attn.c_proj.weight", (d, d)).t().contiguous()
        state[ours + "attn.out_proj.bias"] = get(hf + "attn.c_proj.bias", (d,))
        state[ours + "mlp.c_fc.weight"] = get(hf + "mlp.c_fc.weight", (d, 4 * d)).t().contiguous()
        state[ours + "mlp.c_fc.bias"] = get(hf + "mlp.c_fc.bias", (4 * d,))
        state[ours + "mlp.c_proj.weight"] = get(hf + "mlp.c_proj.weight", (4 * d, d)).t().contiguous()
        state[ours + "mlp.c_proj.bias"] = get(hf + "mlp.c_proj.bias", (d,))
    return state


# ---------------------------------------------------------------- any Hugging Face folder
# what a folder's config.json may name, by architecture (else model_type)
HF_ARCHITECTURES = {"GPT2LMHeadModel": "gpt2", "LlamaForCausalLM": "llama",
                    "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2"}


def load_hf_folder(folder) -> tuple[GPT2, HFTokenizer | None]:
    """A local Hugging Face folder (config.json + safetensors, sharded or not) of GPT-2 or the
    Llama family -> (model in eval mode, its tokenizer.json as HFTokenizer or None). A GPT-2
    folder loads as load_hf_gpt2 (GPT-2's BPE reads it: tokenizer None). Llama-family weights
    are fixed: no gradients, `model.pretrained` names the folder. Nothing is downloaded."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder; give the folder that holds "
                              f"config.json and model.safetensors.")
    hf = _read_json(folder / "config.json")
    if hf_family(hf) == "gpt2":
        return load_hf_gpt2(folder), None
    config = hf_llama_config_to_ours(hf)
    with torch.device("meta"):
        expected = GPT2(config, init_weights=False).state_dict()  # shapes only
    # the file's tensors (bf16 or fp32) and their float32 copies, at most 8 bytes a parameter
    n_params = sum(t.numel() for name, t in expected.items()
                   if not (config.tie_embeddings and name == "lm_head.weight"))
    ensure_fits(8 * n_params, f"loading {folder.name} ({n_params:,} parameters in float32)")
    state = _hf_llama_state_to_ours(_read_hf_weights(folder, pickled_ok=False), expected,
                                    config.tie_embeddings)
    try:
        tokenizer = HFTokenizer.from_folder(folder, _first_id(hf.get("eos_token_id")))
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    if tokenizer is not None and tokenizer.vocab_size > config.vocab_size:
        raise CheckpointError(f"tokenizer.json has {tokenizer.vocab_size} tokens, more than the "
                              f"model's vocab_size={config.vocab_size}.")
    model = GPT2.from_weights(config, state)
    model.pretrained = folder.resolve().name
    return model.requires_grad_(False), tokenizer


def hf_family(hf: dict) -> str:
    """'gpt2' | 'llama' | 'mistral' | 'qwen2' from config.json's architectures (else its
    model_type); anything else is refused in one line that names what loads."""
    names = hf.get("architectures") or []
    name = names[0] if isinstance(names, list) and names else None
    family = HF_ARCHITECTURES.get(name) if name else hf.get("model_type")
    if family not in HF_ARCHITECTURES.values():
        raise CheckpointError(f"config.json describes {name or hf.get('model_type')!r}, which does "
                              f"not load here; supported: {', '.join(HF_ARCHITECTURES)}.")
    return family


def hf_llama_config_to_ours(hf: dict) -> ModelConfig:
    """config.json of LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM -> our Llama
    body. Mistral's sliding_window is our window; Qwen2 has biases on q, k and v only."""
    family = hf_family(hf)
    try:
        d, heads = hf["hidden_size"], hf["num_attention_heads"]
        changes = dict(vocab_size=hf["vocab_size"], n_layer=hf["num_hidden_layers"], n_head=heads,
                       n_kv_head=hf.get("num_key_value_heads") or heads, d_model=d,
                       d_ff=hf["intermediate_size"],
                       max_seq_len=hf.get("max_position_embeddings", 2048))
    except KeyError as err:
        raise CheckpointError(f"config.json has no {err.args[0]!r}.") from None
    if hf.get("hidden_act", "silu") != "silu":
        raise CheckpointError(f"hidden_act={hf['hidden_act']!r}: only SwiGLU with silu loads here.")
    head_dim = hf.get("head_dim")
    if head_dim is not None and head_dim * heads != d:
        raise CheckpointError(f"head_dim={head_dim} with {heads} heads is not hidden_size={d}; "
                              f"only head_dim = hidden_size / num_attention_heads loads here.")
    if family == "qwen2":
        bias, qkv_bias = False, True
    else:  # Llama's attention_bias covers q, k, v and o; mlp_bias the MLP
        attention_bias, mlp_bias = bool(hf.get("attention_bias")), bool(hf.get("mlp_bias"))
        if attention_bias != mlp_bias:
            raise CheckpointError(f"attention_bias={attention_bias} with mlp_bias={mlp_bias}: "
                                  f"only both or neither load here.")
        bias, qkv_bias = attention_bias, False
    window = None
    if family == "mistral":
        window = hf.get("sliding_window")  # null: full attention
    elif family == "qwen2" and hf.get("use_sliding_window"):
        raise CheckpointError("use_sliding_window=true: Qwen2's windows on some layers only "
                              "(max_window_layers) are not supported.")
    try:
        return ModelConfig(**changes, position="rope", norm="rmsnorm", mlp="swiglu", bias=bias,
                           qkv_bias=qkv_bias, window=window,
                           tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
                           layer_norm_eps=hf.get("rms_norm_eps", 1e-6), **_hf_rope(hf))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"config.json: {err}") from None


def _hf_rope(hf: dict) -> dict:
    """rope_theta and rope_scaling (transformers 4's names) or rope_parameters (5's) -> our
    rope_base and rope_scaling fields, each as transformers' ROPE_INIT_FUNCTIONS reads it."""
    params = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    if any(isinstance(value, dict) for value in params.values()):
        raise CheckpointError("rope_parameters differ by layer type: one RoPE for every layer "
                              "loads here.")
    kind = params.get("rope_type", params.get("type", "default"))
    base = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    out = {"rope_base": float(base)}
    if params.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0)) != 1.0:
        raise CheckpointError("partial_rotary_factor < 1 (RoPE on part of each head) is not supported.")
    if kind == "default":
        return out
    if kind not in ("linear", "dynamic", "yarn", "llama3"):
        raise CheckpointError(f"rope_type={kind!r} is not supported; these load: default, linear, "
                              f"dynamic, yarn, llama3.")
    out.update(rope_scaling=kind, rope_factor=float(params.get("factor") or 1.0))
    original = params.get("original_max_position_embeddings", hf.get("original_max_position_embeddings"))
    if kind in ("yarn", "llama3") and original is not None:
        out["rope_original_length"] = int(original)  # dynamic and linear: max_position_embeddings
    if kind == "yarn":
        if params.get("truncate", True) is False:
            raise CheckpointError("yarn with truncate=false is not supported.")
        if params.get("factor") is None and original:
            out["rope_factor"] = hf.get("max_position_embeddings", 2048) / original
        out.update(rope_beta_fast=float(params.get("beta_fast") or 32.0),
                   rope_beta_slow=float(params.get("beta_slow") or 1.0))
        factor, mscale, mscale_all = (out["rope_factor"], params.get("mscale"),
                                      params.get("mscale_all_dim"))
        if params.get("attention_factor") is not None:
            out["rope_attention_factor"] = float(params["attention_factor"])
        elif mscale and mscale_all and factor > 1:
            out["rope_attention_factor"] = ((0.1 * mscale * math.log(factor) + 1)
                                            / (0.1 * mscale_all * math.log(factor) + 1))
    if kind == "llama3":
        out.update(rope_low_freq_factor=float(params.get("low_freq_factor", 1.0)),
                   rope_high_freq_factor=float(params.get("high_freq_factor", 4.0)))
    return out


def _first_id(value) -> int | None:
    """config.json's eos_token_id: an id, a list of ids (the first), or null."""
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) else None


# transformers' names in each Llama-family layer -> ours
HF_LLAMA_TENSORS = {"input_layernorm": "ln_1", "post_attention_layernorm": "ln_2",
                    "self_attn.q_proj": "attn.q_proj", "self_attn.k_proj": "attn.k_proj",
                    "self_attn.v_proj": "attn.v_proj", "self_attn.o_proj": "attn.out_proj",
                    "mlp.gate_proj": "mlp.c_gate", "mlp.up_proj": "mlp.c_fc",
                    "mlp.down_proj": "mlp.c_proj"}


def _hf_llama_state_to_ours(hf_state: dict, expected: dict, tied: bool) -> dict:
    """Rename transformers' tensors to ours, in float32, every shape checked against ours
    (`expected`: our state dict's shapes); a tensor we do not have (a bias the config does not
    say) is refused, not dropped."""
    n_layer = 1 + max(int(name.split(".")[1]) for name in expected if name.startswith("blocks."))
    renamed = {"model.embed_tokens.weight": "wte.weight", "model.norm.weight": "ln_f.weight",
               "lm_head.weight": "lm_head.weight"}
    for i in range(n_layer):
        for theirs, ours in HF_LLAMA_TENSORS.items():
            for kind in ("weight", "bias"):
                renamed[f"model.layers.{i}.{theirs}.{kind}"] = f"blocks.{i}.{ours}.{kind}"
    state, unknown = {}, []
    for name, tensor in hf_state.items():
        if name.endswith("rotary_emb.inv_freq"):  # a buffer older versions saved: recomputed
            continue
        if name not in renamed:
            unknown.append(name)
            continue
        state[renamed[name]] = tensor.float()
    if tied and "wte.weight" in state:  # the head is the embedding matrix, saved once
        state["lm_head.weight"] = state["wte.weight"]
    theirs = {ours: name for name, ours in renamed.items()}
    for name, tensor in expected.items():
        got = state.get(name)
        if got is None:
            raise CheckpointError(f"weight {theirs[name]!r} is missing: this is not a complete "
                                  f"checkpoint for the config.json beside it.")
        if got.shape != tensor.shape:
            raise CheckpointError(f"weight {theirs[name]!r} has shape {tuple(got.shape)}, but "
                                  f"config.json implies {tuple(tensor.shape)}.")
    extra = unknown + sorted(theirs[n] for n in set(state) - set(expected))
    if extra:
        raise CheckpointError(f"the weights hold tensors this config does not have: "
                              f"{', '.join(extra[:5])}.")
    return state


# ---------------------------------------------------------------- MHA -> GQA by mean-pooling
def to_gqa(model: GPT2, n_kv_head: int) -> GPT2:
    """A new model whose each key/value head is the mean of the heads in its group
    (Ainslie et al. 2023, section 2.1). Works from MHA or from GQA with more kv heads."""
    old = model.config
    if n_kv_head not in kv_head_choices(old.n_kv_head):
        valid = sorted(kv_head_choices(old.n_kv_head))
        raise ValueError(f"cannot pool {old.n_kv_head} key/value heads into {n_kv_head}: "
                         f"choose n_kv_head from {valid}.")
    merged = old.n_kv_head // n_kv_head
    state = {}
    for name, tensor in model.state_dict().items():
        if ".k_proj." in name or ".v_proj." in name:  # (n_kv_head * hd, ...) -> pooled heads
            heads = tensor.reshape(n_kv_head, merged, old.head_dim, *tensor.shape[1:])
            tensor = heads.mean(dim=1).reshape(n_kv_head * old.head_dim, *tensor.shape[1:])
        state[name] = tensor.clone()  # its own weights: training it leaves `model` alone
    new_model = GPT2.from_weights(old.replace(n_kv_head=n_kv_head), state)
    return new_model.train(model.training)


# ---------------------------------------------------------------- our own checkpoints
def save_checkpoint(folder, model: GPT2, meta: dict) -> Path:
    """model.safetensors + meta.json (config and whatever the caller adds), written to a
    staging folder and renamed into place: a crash leaves no half-written checkpoint. Folders
    are content-keyed: if another process saved a whole checkpoint there first, it is kept."""
    def write(staging: Path) -> None:
        tied = model.config.tie_embeddings  # the head is the embedding matrix: stored once
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
                   if not (tied and k == "lm_head.weight")}
        save_file(weights, str(staging / "model.safetensors"))
        (staging / "meta.json").write_text(json.dumps({"config": model.config.to_dict(), **meta}))

    return write_whole(Path(folder), write, is_checkpoint)


def is_checkpoint(folder: Path) -> bool:
    return (folder / "meta.json").is_file() and (folder / "model.safetensors").is_file()


def load_checkpoint(folder) -> tuple[GPT2, dict]:
    folder = Path(folder)
    meta = _read_json(folder / "meta.json")
    try:
        config = ModelConfig(**meta["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{folder / 'meta.json'} has no valid config: {err}") from None
    path = folder / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"model.safetensors is missing from {folder}.")
    try:
        weights = {name: t.float() for name, t in load_file(str(path)).items()}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} cannot be read ({err}).") from None
    if config.tie_embeddings:
        weights["lm_head.weight"] = weights.get("wte.weight")
    with torch.device("meta"):
        expected = GPT2(config, init_weights=False).state_dict()  # shapes only
    for name, tensor in expected.items():
        got = weights.get(name)
        if got is None or got.shape != tensor.shape:
            raise CheckpointError(f"{path}: weight {name!r} is "
                                  f"{'missing' if got is None else tuple(got.shape)}, the config "
                                  f"needs {tuple(tensor.shape)}.")
    unexpected = sorted(set(weights) - set(expected))
    if unexpected:
        raise CheckpointError(f"{path} holds weights this config does not have: "
                              f"{', '.join(unexpected[:5])}.")
    return GPT2.from_weights(config, weights), meta


# ---------------------------------------------------------------- one .zip, in and out
# nothing else is read: our checkpoint, or a Hugging Face folder (GPT-2 or the Llama family,
# its weights whole or in shards, and its tokenizer)
ZIP_FILES = {"model.safetensors", "meta.json", "config.json", "model.safetensors.index.json",
             "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}
SHARD = re.compile(r"model-\d+-of-\d+\.safetensors")


def checkpoint_zip(model: GPT2, meta: dict) -> bytes:
    """Our checkpoint (model.safetensors + meta.json: config, vocabulary, settings, history)
    as one .zip to download."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_checkpoint(Path(tmp) / "checkpoint", model, meta)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in ("model.safetensors", "meta.json"):
                archive.write(folder / name, name)
        return buffer.getvalue()


def load_checkpoint_zip(data: bytes, max_unpacked_bytes: int) -> tuple[GPT2, dict | None, HFTokenizer | None]:
    """A .zip of our checkpoint, or of a Hugging Face folder of GPT-2 or the Llama family
    (config.json + model.safetensors or its shards, tokenizer.json; pickled .bin weights are
    refused: nothing is unpickled), read as load_hf_folder reads the folder. The files may sit
    in one top-level folder. Returns the model, our meta (None for Hugging Face) and the
    folder's own tokenizer (None for ours and for GPT-2, which GPT-2's BPE reads)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise CheckpointError("That file is not a .zip archive.") from None
    with archive, tempfile.TemporaryDirectory() as tmp:
        wanted, pickled, names = {}, [], []
        for info in archive.infolist():
            if info.is_dir():
                continue
            parts = Path(info.filename).parts
            if info.filename.startswith("/") or ".." in parts or len(parts) > 2:
                raise CheckpointError(f"The archive holds {info.filename!r}: a checkpoint zip has "
                                      f"its files at the top or in one folder, no other paths.")
            names.append(parts[-1])
            if parts[-1].endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")):
                pickled.append(parts[-1])
            if parts[-1] in ZIP_FILES or SHARD.fullmatch(parts[-1]):
                wanted[parts[-1]] = info
        if "model.safetensors" not in wanted and "model.safetensors.index.json" not in wanted:
            if pickled and "config.json" in wanted:  # a Hugging Face folder saved the old way
                raise CheckpointError(f"The archive holds {pickled[0]!r}, pickled weights: they can "
                                      f"run code when loaded, so they are refused. Save the "
                                      f"weights as model.safetensors.")
            shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
            raise CheckpointError(f"Not a gpt2viz checkpoint: the archive has no model.safetensors "
                                  f"(it holds {shown or 'nothing'}). Download one from Build & "
                                  f"train, or zip a Hugging Face folder (config.json + "
                                  f"model.safetensors; GPT-2, Llama, Mistral or Qwen2).")
        if sum(info.file_size for info in wanted.values()) > max_unpacked_bytes:
            raise CheckpointError(f"The archive unpacks to more than {max_unpacked_bytes / 1024**2:.0f} "
                                  f"MiB, the checkpoint limit.")
        folder = Path(tmp)
        for name, info in wanted.items():
            (folder / name).write_bytes(archive.read(info))
        if (folder / "meta.json").is_file():
            return *load_checkpoint(folder), None
        if (folder / "config.json").is_file():
            model, tokenizer = load_hf_folder(folder)
            if model.pretrained:  # named by the temporary folder: say what was uploaded instead
                model.pretrained = "uploaded " + _read_json(folder / "config.json").get("model_type", "model")
            return model, None, tokenizer
        raise CheckpointError("The archive has neither meta.json (a gpt2viz checkpoint) nor "
                              "config.json (a Hugging Face folder).")
