"""Local or shared is decided by the listening address; in shared mode the checkpoint loader
reads only inside the models folder; uploads are capped."""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from gpt2viz.weights.serving import (
    MAX_CHECKPOINT_UPLOAD,
    MAX_CORPUS_UPLOAD,
    Refused,
    check_upload,
    checkpoint_path,
    is_local,
    max_upload_megabytes,
    models_folder,
    public_message,
)


def test_only_loopback_addresses_are_local():
    for address in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert is_local(address), address
    for address in (None, "", "0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "example.org",
                    "unix:///tmp/s.sock"):
        assert not is_local(address), address


@pytest.fixture
def models(tmp_path, monkeypatch):
    """A models folder with one checkpoint folder, and a secret folder beside it."""
    root = tmp_path / "models"
    (root / "mine").mkdir(parents=True)
    (root / "weights.bin").write_bytes(b"x")
    (tmp_path / "secret").mkdir()
    monkeypatch.setenv("GPT2VIZ_MODELS", str(root))
    return models_folder()


def test_inside_the_models_folder_is_allowed(models):
    assert checkpoint_path("mine", models) == models / "mine"
    assert checkpoint_path(" mine/ ", models) == models / "mine"
    assert checkpoint_path(str(models / "mine"), models) == models / "mine"  # absolute, inside
    os.symlink(models / "mine", models / "alias")  # a link that stays inside is fine
    assert checkpoint_path("alias", models) == models / "mine"


@pytest.mark.parametrize("text, says", [
    ("../secret", "`..` is not allowed"),
    ("mine/../../secret", "`..` is not allowed"),
    ("~", "`~` is not allowed"),
    ("~root/.ssh", "`~` is not allowed"),
    ("/etc", "outside the models folder"),
    ("", "Type the name"),
    ("mi\x00ne", "NUL byte"),
    ("a" * 300, "too long"),
    ("a/" * 600, "too long"),
    ("weights.bin", "is a file"),
    ("nothing-here", "no folder"),
])
def test_shared_mode_refuses_with_one_line(models, text, says):
    with pytest.raises(Refused, match=says) as refused:
        checkpoint_path(text, models)
    message = str(refused.value)
    assert "\n" not in message and str(models.parent) not in message


def test_a_symlink_leading_out_is_refused(models):
    os.symlink(models.parent / "secret", models / "escape")
    with pytest.raises(Refused, match="outside the models folder"):
        checkpoint_path("escape", models)
    os.symlink(models.parent, models / "up")
    with pytest.raises(Refused, match="outside the models folder"):
        checkpoint_path("up/secret", models)


def test_an_unreadable_folder_is_refused(tmp_path):
    """Root reads every folder whatever its permissions, so as root the check runs in a forked
    child that has dropped to user nobody."""
    root = Path(tempfile.mkdtemp(prefix="gpt2viz-models-"))  # /tmp/pytest-of-root is private
    (root / "closed" / "inner").mkdir(parents=True)
    (root / "closed").chmod(0)
    try:
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the child: drop root, check, report, exit without pytest's clean-up
            try:
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                lines = []
                for name in ("closed", "closed/inner"):
                    try:
                        checkpoint_path(name, root)
                        lines.append("loaded")
                    except Refused as err:
                        lines.append(str(err))
                os.write(write, "\n".join(lines).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            reported = pipe.read().splitlines()
        os.waitpid(child, 0)
        assert reported == ["The folder 'closed' cannot be read (no permission).",
                            "The folder 'closed/inner' cannot be read (no permission)."]
    finally:
        (root / "closed").chmod(0o755)
        shutil.rmtree(root)


def test_local_mode_reads_any_folder_and_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "ckpt").mkdir()
    assert checkpoint_path("~/ckpt", None) == tmp_path / "ckpt"
    dotted = str(tmp_path / "ckpt" / ".." / "ckpt")
    assert checkpoint_path(dotted, None).resolve() == tmp_path / "ckpt"
    for text, says in (("x\x00", "NUL"), ("b" * 300, "too long"),
                       (str(tmp_path / "nope"), "no folder")):
        with pytest.raises(Refused, match=says):
            checkpoint_path(text, None)


def test_no_models_folder_named_means_none(monkeypatch):
    monkeypatch.delenv("GPT2VIZ_MODELS", raising=False)
    assert models_folder() is None
    monkeypatch.setenv("GPT2VIZ_MODELS", "  ")
    assert models_folder() is None


def test_messages_for_visitors_hide_where_the_models_folder_is(models):
    line = public_message(f"config.json is missing from {models / 'mine'}.\nTraceback...", models)
    assert line == "config.json is missing from mine."
    assert public_message(f"{models} is empty", models) == "the models folder is empty"


def test_uploads_over_the_cap_are_refused():
    check_upload("corpus", MAX_CORPUS_UPLOAD)
    check_upload("checkpoint", MAX_CHECKPOINT_UPLOAD)
    with pytest.raises(Refused, match="the limit is 20 MiB"):
        check_upload("corpus", MAX_CORPUS_UPLOAD + 1)
    with pytest.raises(Refused, match="the limit is 160 MiB"):
        check_upload("checkpoint", 548 * 1024**2)  # Hugging Face's gpt2 weights
    assert max_upload_megabytes() == 160 < 200  # below Streamlit's default


def test_the_largest_sidebar_variant_fits_the_checkpoint_cap(corpus):
    from gpt2viz import ModelConfig
    from gpt2viz.training.train import param_count

    largest = ModelConfig(vocab_size=corpus.vocab.size, n_layer=12, n_head=8,
                          d_model=512, position="learned")
    assert param_count(largest) * 4 < MAX_CHECKPOINT_UPLOAD
