"""gpt2viz.text.tokenizer: GPT-2 ids offline, unicode round trips, readable token labels."""
from gpt2viz.text.tokenizer import get_tokenizer


def test_gpt2_ids_offline():
    tok = get_tokenizer()
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode("<|endoftext|>") == [50256]
    assert tok.vocab_size == 50257


def test_unicode_round_trips():
    tok = get_tokenizer()
    for text in ["héllo wörld", "日本語のテキスト", "emoji 🤖🧠 mix", "tabs\tand\nnewlines\r\n", "  "]:
        assert tok.decode(tok.encode(text)) == text


def test_labels_show_spaces_newlines_and_partial_bytes():
    tok = get_tokenizer()
    labels = tok.token_labels(tok.encode(" the cat\n\n🤖"))
    assert labels[0] == "·the" and labels[1] == "·cat" and "↵" in labels
    assert any(label.startswith("<0x") for label in labels)  # the emoji is split across tokens
