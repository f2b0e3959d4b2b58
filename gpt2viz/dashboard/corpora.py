"""The text the models train on, as the pages see it: the embedded corpus, or a user's own
text (uploaded or pasted on Build & train). A link names a corpus by name and hash, never by
its text; the text lives in this server's process (for every session) and in the checkpoint
cache under its hash (corpus-<hash>/text.txt), so a link works again on the same server.
"""
from __future__ import annotations

import streamlit as st

from gpt2viz.text.corpus import Corpus, CorpusError, decode_text, store_text, stored_text
from gpt2viz.weights.checkpoint_cache import cache_dir
from gpt2viz.weights.serving import UPLOAD_CAPS, Refused, check_upload

from . import serving_mode

EMBEDDED = ""  # the sidebar value that means the embedded corpus


@st.cache_resource(show_spinner=False)
def default() -> Corpus:
    return Corpus.default()


@st.cache_resource(show_spinner=False)
def _known() -> dict:
    """Every user corpus this process has seen: id -> Corpus."""
    return {}


def _folder(sha256: str):
    return cache_dir() / f"corpus-{sha256[:16]}"


def find(corpus_id: str) -> Corpus | None:
    """The corpus a link names: from this process, else from the cache on disk."""
    if corpus_id == EMBEDDED:
        return default()
    if corpus_id in _known():
        return _known()[corpus_id]
    name, _, short_hash = corpus_id.rpartition("@")
    if not name or len(short_hash) != 12:
        return None
    candidates = sorted(cache_dir().glob(f"corpus-{short_hash}*")) if cache_dir().is_dir() else []
    for folder in candidates:
        text = stored_text(folder)
        if text is not None:
            found = Corpus.from_text(text, name)
            if found.id == corpus_id:
                _known()[corpus_id] = found
                return found
    return None


def selected(selection) -> Corpus:
    """The text the selection's models train on (the embedded corpus unless the user chose
    their own on Build & train); a corpus this server no longer has is said."""
    found = find(selection.corpus)
    if found is None:
        st.warning(missing_note(selection.corpus))
        return default()
    return found


def missing_note(corpus_id: str) -> str:
    return (f"The corpus {corpus_id!r} is not on this server (uploaded texts live in its "
            f"checkpoint cache, which may have been cleared): using the embedded corpus. "
            f"Upload the text again on Build & train.")


def add(text: str, name: str) -> Corpus:
    """Tokenize, split and keep a user's text; CorpusError says what is wrong with it."""
    corpus = Corpus.from_text(text, name)
    store_text(_folder(corpus.sha256), text)
    _known()[corpus.id] = corpus
    return corpus


def controls(current: str) -> None:
    """Build & train: pick the corpus, or bring your own text (upload or paste)."""
    options = [EMBEDDED] + [i for i in _known() if i != current] + ([current] if current else [])
    st.selectbox("Corpus", options, key="sb_corpus",
                 format_func=lambda i: f"{default().name} (embedded)" if i == EMBEDDED else i)
    with st.expander("Train on your own text"):
        upload = st.file_uploader("A UTF-8 text file", type=["txt", "md", "rst", "py", "csv", "json"],
                                  key="corpus_upload", max_upload_size=serving_mode.upload_megabytes("corpus"))
        pasted = st.text_area("…or paste text", key="corpus_paste", height=120)
        name = st.text_input("Name it", value=upload.name if upload is not None else "my text")
        st.caption(f"At least 4,096 GPT-2 tokens (about 16 KB of English), at most "
                   f"{UPLOAD_CAPS['corpus'] // 1024**2} MiB. Every tenth block of 1,024 tokens is "
                   f"held out for validation; the vocabulary is the training split's ids.")
        st.button("Use this text", on_click=_use_text, args=(upload, pasted, name.strip() or "my text"))
        message = st.session_state.get("corpus_message")
        if message and message[2] == _given(upload, pasted):  # kept until the text given changes
            (st.success if message[0] == "ok" else st.error)(message[1])


def _given(upload, pasted: str) -> tuple:
    """What the user has given: a message about it holds until this changes, so another
    rerun (a banner finishing, any click elsewhere) does not wipe it."""
    return (None if upload is None else (upload.name, upload.size), pasted)


def _use_text(upload, pasted: str, name: str) -> None:
    """Runs before the next run's widgets: select the new corpus, or say what is wrong."""
    try:
        if upload is not None:
            check_upload("corpus", upload.size)
            text = decode_text(upload.getvalue(), upload.name)
        else:
            text = decode_text(pasted.encode("utf-8"), "The pasted text")
        corpus = add(text, name)
    except (CorpusError, Refused) as err:
        st.session_state["corpus_message"] = ("error", str(err), _given(upload, pasted))
        return
    st.session_state["sb_corpus"] = corpus.id
    st.session_state["corpus_message"] = ("ok", corpus.describe(), _given(upload, pasted))
