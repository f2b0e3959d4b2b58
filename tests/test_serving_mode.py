"""The dashboard in local and shared mode (AppTest; the mode comes from server.address exactly
as on a real server): what the checkpoint loader may read, one-line errors, the training
queue's refusal, the cache panel."""
import os
import shutil
import tomllib
from pathlib import Path

import pytest
from apptest import wait_for_training
from streamlit import config
from streamlit.testing.v1 import AppTest

from gpt2viz import PRESETS, ModelConfig
from gpt2viz.core.config import TrainSettings
from gpt2viz.training.train import train
from gpt2viz.weights.checkpoint_cache import cache_entries, checkpoint_folder
from gpt2viz.weights.serving import max_upload_megabytes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_models_folder(quick_training, monkeypatch):
    monkeypatch.delenv("GPT2VIZ_MODELS", raising=False)


@pytest.fixture
def served_on():
    """Set the address the 'server' listens on, as `--server.address` would."""
    before = config.get_option("server.address")
    yield lambda address: config.set_option("server.address", address)
    config.set_option("server.address", before)
    config.set_option("client.showErrorDetails", "full")


def run(page=None, **params) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    choices = at.radio(key="sb_weights").options  # the sidebar renders on the first run only
    if page:
        at.switch_page(f"pages/{page}.py")
        at.run()
    wait_for_training(at)
    assert not at.exception, [e.value for e in at.exception]
    at.weight_choices = choices
    return at


@pytest.fixture
def models(tmp_path, monkeypatch, corpus):
    """GPT2VIZ_MODELS with one real checkpoint ('mine') and an empty folder ('broken'), a real
    checkpoint outside it ('outside') and a symlink inside that leads there."""
    tiny = ModelConfig(n_layer=1, n_head=2, d_model=32, max_seq_len=64)
    settings = TrainSettings(steps=2, batch_size=2, block_size=32)
    train(tiny, corpus, settings, seed=5)
    trained = checkpoint_folder(tiny, corpus, settings, 5)
    root = tmp_path / "models"
    shutil.copytree(trained, root / "mine")
    (root / "broken").mkdir()
    shutil.copytree(trained, tmp_path / "outside")
    os.symlink(tmp_path / "outside", root / "link")
    monkeypatch.setenv("GPT2VIZ_MODELS", str(root))
    return root


@pytest.mark.slow
def test_local_mode_offers_any_folder(served_on, models):
    served_on("127.0.0.1")
    at = run("attention", weights="checkpoint", checkpoint=str(models.parent / "outside"))
    assert "Local checkpoint folder" in at.weight_choices and len(at.get("plotly_chart")) == 1
    assert config.get_option("client.showErrorDetails") == "full"


@pytest.mark.slow
def test_shared_mode_without_a_models_folder_offers_no_local_folder(served_on):
    served_on("0.0.0.0")  # and no GPT2VIZ_MODELS
    at = run("attention", weights="checkpoint", checkpoint="/etc")  # a crafted link
    assert "Local checkpoint folder" not in at.weight_choices
    assert at.session_state["sidebar_values"]["weights"] == "trained" and not at.error
    assert config.get_option("client.showErrorDetails") == "none"  # tracebacks: server log only


@pytest.mark.slow
@pytest.mark.parametrize("typed, says", [
    ("OUTSIDE", "is outside the models folder"),
    ("../outside", "`..` is not allowed"),
    ("link", "is outside the models folder"),
    ("~/outside", "`~` is not allowed"),
    ("mine\x00", "NUL byte"),
    ("x" * 5000, "too long"),
    ("mine/meta.json", "is a file"),
])
def test_shared_mode_refuses_paths_out_of_the_models_folder(served_on, models, typed, says):
    served_on("0.0.0.0")
    typed = typed.replace("OUTSIDE", str(models.parent / "outside"))
    at = run("attention", weights="checkpoint", checkpoint=typed)
    assert "Local checkpoint folder" in at.weight_choices
    (error,) = at.error
    assert says in error.value and "\n" not in error.value
    assert str(models.parent) not in error.value or typed.startswith(str(models.parent))
    assert not at.get("plotly_chart")  # nothing loaded


@pytest.mark.slow
def test_shared_mode_loads_inside_and_hides_server_paths(served_on, models):
    served_on("0.0.0.0")
    at = run("attention", weights="checkpoint", checkpoint="mine")
    assert len(at.get("plotly_chart")) == 1 and not at.error
    at = run("attention", weights="checkpoint", checkpoint="broken")
    (error,) = at.error
    assert error.value == "That checkpoint does not load: config.json is missing from broken."


@pytest.mark.slow
def test_a_full_training_queue_is_said_and_nothing_trains(served_on, corpus, monkeypatch):
    import threading

    from gpt2viz.dashboard import models, serving_mode

    served_on("0.0.0.0")
    monkeypatch.setattr(serving_mode, "MAX_WAITING", 0)
    release = threading.Event()
    busy = models.store().training.submit("another visitor's model", "theirs",
                                           lambda cb: release.wait(60), 10**6, waiter="another visitor")
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
        at.query_params["variants"], at.query_params["seed"] = ["gpt2"], "4242"
        at.run()
    finally:
        release.set()
    assert busy.done.wait(60)
    (warning,) = at.warning
    assert "gpt2 is not trained: The training queue is full (1 jobs); the wait is about" in warning.value
    assert list(at.dataframe[0].value["weights"]) == ["random init (not trained yet)"]  # said plainly
    assert not checkpoint_folder(PRESETS["gpt2"], corpus, TrainSettings(steps=8), 4242).exists()


@pytest.mark.slow
def test_build_page_shows_the_cache_and_clears_it_locally(served_on):
    served_on("127.0.0.1")
    at = run()
    caption = [c.value for c in at.caption if c.value.startswith("Checkpoint cache")][0]
    assert f"{len(cache_entries())} checkpoint(s)" in caption and "of 2.0 GiB" in caption
    assert cache_entries()  # the two default variants, trained above
    at.button(key="clear-cache").click().run()
    assert any("Removed" in s.value for s in at.success) and not cache_entries()
    assert "0 checkpoint(s)" in [c.value for c in at.caption if c.value.startswith("Checkpoint")][0]
    served_on("0.0.0.0")
    at = run()
    assert "clear-cache" not in [b.key for b in at.button]
    assert any(c.value.startswith("Checkpoint cache: ") for c in at.caption)


def test_streamlit_settings_keep_loopback_xsrf_and_our_upload_cap():
    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert settings["address"] == "127.0.0.1" and settings["enableXsrfProtection"] is True
    assert settings["maxUploadSize"] == max_upload_megabytes()
