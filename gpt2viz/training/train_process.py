"""Training in a child process at a lower priority, so training cannot starve serving.

Inside the server process a training thread shares the GIL and every core with the web server
and each session's page script; from the sixth session on, pages stopped loading. Here a child
Python (`python -m gpt2viz.training.train_process`, so nothing of the parent's main script is re-run)
trains at `nice` 10 on all cores but one — notebook kernels and TensorBoard's loaders run apart
from their servers for the same reason —, streams its progress back, and sends the trained
weights. It writes the checkpoint cache itself; a cancelled or killed child writes nothing
(checkpoints are staged and renamed).
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import torch

from gpt2viz.core.config import ModelConfig, TrainSettings
from gpt2viz.core.model import GPT2
from gpt2viz.core.resources import device, training_threads
from gpt2viz.text.corpus import Corpus
from gpt2viz.training.jobs import TrainingCancelled
from gpt2viz.training.train import Progress, TrainedModel, train

NICENESS = 10


def train_in_child(config: ModelConfig, corpus: Corpus, settings: TrainSettings = TrainSettings(),
                   seed: int = 0, callback: Callable[[Progress], None] | None = None,
                   use_cache: bool = True) -> TrainedModel:
    """train(), run in a child process (run_in_child); the model is rebuilt here from its weights."""
    weights, history, from_cache = run_in_child(trained_weights, config, corpus, settings, seed,
                                                use_cache, callback=callback)
    model = GPT2(config.replace(vocab_size=corpus.vocab.size))
    model.load_state_dict(weights)
    return TrainedModel(model.to(device()).eval(), corpus.vocab, history, corpus.name, from_cache)


def trained_weights(config, corpus, settings, seed, use_cache, callback):
    """The child's job for train_in_child: train(), then only what the parent needs, on the CPU."""
    result = train(config, corpus, settings, seed=seed, callback=callback, use_cache=use_cache)
    return {k: v.detach().cpu() for k, v in result.model.state_dict().items()}, result.history, result.from_cache


def run_in_child(job: Callable, *args, callback: Callable | None = None):
    """job(*args, callback=report) in a child process at nice 10; its return value comes back.
    job must be a module-level function (the child imports it by name). `callback` runs here,
    in the caller's thread, for every report; if it raises (TrainingCancelled), the child stops
    at its next report and saves nothing."""
    package_root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-m", "gpt2viz.training.train_process"], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    pickle.dump((job, args), child.stdin)
    child.stdin.close()
    try:
        while True:
            try:
                kind, payload = pickle.load(child.stdout)
            except EOFError:
                raise RuntimeError(f"The training process stopped without a result (exit code "
                                   f"{child.wait()}).") from None
            if kind == "progress":
                if callback is not None:
                    callback(payload)
            elif kind == "error":
                raise payload
            else:
                break
    except BaseException:
        _stop(child)
        raise
    finally:
        child.stdout.close()
    child.wait()
    return payload


def _stop(child: subprocess.Popen) -> None:
    """SIGTERM: the child stops at its next step, writing nothing; killed if it does not."""
    child.terminate()
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def training_niceness(parent: int) -> int:
    """At least nice 10, not the parent's plus 10: a server already started at 10 (the test
    suite runs so) trains at 10, level with its peers, instead of starving at 19."""
    return max(parent, NICENESS)


def _serve() -> None:
    """The child: one job on stdin, pickled messages on stdout."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the message stream
    os.nice(training_niceness(os.nice(0)) - os.nice(0))
    torch.set_num_threads(training_threads())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    job, args = pickle.load(sys.stdin.buffer)

    def send(kind, payload):
        pickle.dump((kind, payload), out)
        out.flush()

    def report(progress):
        if stop.is_set():
            raise TrainingCancelled()
        send("progress", progress)

    try:
        send("done", job(*args, callback=report))
    except Exception as err:
        if not stop.is_set():
            send("error", err)


if __name__ == "__main__":
    _serve()
