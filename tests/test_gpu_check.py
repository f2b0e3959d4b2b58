"""docs/gpu_check.py: it says plainly when there is no GPU, and --quick runs it end to end on
the CPU with only the torch side of the library (no plotly, no streamlit: a bare GPU machine
has neither)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "gpu_check.py"


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_without_cuda_it_says_so_and_stops():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "no CUDA device" in done.stderr


@pytest.mark.slow
def test_quick_run_passes_without_plotly_or_streamlit(tmp_path):
    out = tmp_path / "check.json"
    blocked = ("import sys, runpy; sys.modules['plotly'] = sys.modules['streamlit'] = None; "
               f"sys.argv = ['gpu_check.py', '--quick', '--out', {str(out)!r}]; "
               f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["failures"] == [] and report["quick"]
    assert {row["part"] for row in report["rows"]} == {"equivalence", "train", "window", "gqa",
                                                        "forward"}
    assert "0 failures" in done.stdout and "crossover" in done.stdout
