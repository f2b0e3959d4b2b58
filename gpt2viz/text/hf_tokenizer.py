"""A model's own tokenizer through Hugging Face's `tokenizers`: the one wrapper for the GGUF
model (gpt2viz.weights.pretrained builds it from the file's metadata) and for a Hugging Face
folder's tokenizer.json. Same interface as gpt2viz.text.tokenizer.Tokenizer (encode, decode,
token_labels, vocab_size), plus eos_id and the chat template of an instruct model."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from gpt2viz.text.tokenizer import readable


class HFTokenizer:
    def __init__(self, tokenizer, chat_template: str | None, eos_id: int | None,
                 add_special_tokens: bool = False):
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.eos_id = eos_id
        # a folder's tokenizer.json may add BOS itself (its post-processor), as AutoTokenizer does
        self.add_special_tokens = add_special_tokens
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self._special = {t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special}

    @classmethod
    def from_folder(cls, folder: Path, eos_id: int | None = None) -> "HFTokenizer | None":
        """tokenizer.json (+ tokenizer_config.json / chat_template.jinja) of a Hugging Face
        folder; None when it has no tokenizer.json. ValueError when a file does not read."""
        from tokenizers import Tokenizer

        path = folder / "tokenizer.json"
        if not path.is_file():
            return None
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises its own Exception on bad JSON or models
            raise ValueError(f"tokenizer.json in {folder} cannot be read ({err}).") from None
        settings = {}
        config_path = folder / "tokenizer_config.json"
        if config_path.is_file():
            try:
                settings = json.loads(config_path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ValueError(f"{config_path} is not valid JSON: {err}.") from None
        template = settings.get("chat_template")
        if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}]
            template = {t.get("name"): t.get("template") for t in template}.get("default")
        jinja = folder / "chat_template.jinja"  # where transformers 5 saves it
        if template is None and jinja.is_file():
            template = jinja.read_text(encoding="utf-8")
        eos = settings.get("eos_token")
        eos = eos.get("content") if isinstance(eos, dict) else eos
        if isinstance(eos, str) and tokenizer.token_to_id(eos) is not None:
            eos_id = tokenizer.token_to_id(eos)
        return cls(tokenizer, template, eos_id, add_special_tokens=True)

    def to_json(self) -> str:
        return json.dumps({"tokenizer": self.tokenizer.to_str(), "chat_template": self.chat_template,
                           "eos_id": self.eos_id, "add_special_tokens": self.add_special_tokens})

    @classmethod
    def from_json(cls, text: str) -> "HFTokenizer":
        from tokenizers import Tokenizer

        data = json.loads(text)
        return cls(Tokenizer.from_str(data["tokenizer"]), data["chat_template"], data["eos_id"],
                   data.get("add_special_tokens", False))

    def encode(self, text: str) -> list[int]:
        """Special tokens written in the text (<|im_start|>) become their ids."""
        return self.tokenizer.encode(text, add_special_tokens=self.add_special_tokens).ids

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_labels(self, ids) -> list[str]:
        """As gpt2viz.text.tokenizer's: spaces '·', newlines '↵', partial characters <0xNN>;
        special tokens by name; pieces of other models (SentencePiece's '▁') as they are."""
        labels = []
        for i in ids:
            token = self.tokenizer.id_to_token(int(i))
            if token is None or token in self._special:
                labels.append(str(token))
            elif all(c in _byte_decoder() for c in token):
                labels.append(readable(_token_bytes(token)))
            else:
                labels.append(token.replace("▁", "·").replace("\n", "↵"))
        return labels

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The model's own Jinja chat template, rendered in a sandbox, as transformers renders
        it: [{"role": "user", "content": "..."}] -> the prompt text."""
        if not self.chat_template:
            raise ValueError("this model has no chat template.")
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        return env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt)


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the printable character that stands for each byte."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def _token_bytes(token: str) -> bytes:
    decoder = _byte_decoder()
    return bytes(decoder[c] for c in token)
