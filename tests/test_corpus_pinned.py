"""The default corpus is pinned: the same text, tokens and hash on every Python."""
import hashlib
import sys

import pytest

from gpt2viz.text import corpus
from gpt2viz.text.corpus import Corpus, CorpusError, default_text


def test_default_text_is_the_pinned_text():
    text = default_text()
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == corpus.DEFAULT_SHA256
    assert Corpus.default().sha256 == corpus.DEFAULT_SHA256  # checkpoint cache keys hold


def test_default_corpus_numbers_that_readme_quotes():
    data = Corpus.default()
    assert len(data.train) + len(data.val) == 139_015
    assert data.vocab.size - 1 == 5_007
    assert data.unigram_loss() == pytest.approx(5.378, abs=5e-4)


@pytest.mark.skipif(sys.version_info[:3] != (3, 11, 7), reason="the snapshot is of Python 3.11.7's copy")
def test_snapshot_equals_python_311s_own_pydoc_topics():
    from pydoc_data.topics import topics

    assert default_text() == "\n\n".join(topics[name] for name in sorted(topics))


def test_a_damaged_copy_is_one_clear_error(tmp_path, monkeypatch):
    import gzip

    damaged = tmp_path / "topics.txt.gz"
    damaged.write_bytes(gzip.compress(default_text()[:-1].encode("utf-8")))
    monkeypatch.setattr(corpus, "DEFAULT_PATH", damaged)
    with pytest.raises(CorpusError, match="damaged"):
        default_text()
