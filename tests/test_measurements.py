"""gpt2viz.analysis.measurements: stored bench runs, labelled with when and where they were measured."""
import pytest



def test_stored_measurements_round_trip_and_ignore_broken_files(tmp_path, monkeypatch):
    from gpt2viz.analysis import measurements

    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))
    settings = {"n": [512, 1024]}
    assert measurements.load("attention", settings) is None
    record = measurements.save("attention", settings, [{"n": 512, "median_s": 0.1}], repeats=3)
    loaded = measurements.load("attention", settings)
    assert loaded["rows"] == record["rows"] and loaded["repeats"] == 3
    assert "this machine" in measurements.label(loaded) and loaded["when"] in measurements.label(loaded)
    assert measurements.load("attention", {"n": [512]}) is None  # other settings: not this run
    assert not [p for p in (tmp_path / measurements.FOLDER).iterdir() if p.name.startswith(".")]
    path = next((tmp_path / measurements.FOLDER).iterdir())
    path.write_text('{"rows": [')  # a broken file is no measurement
    assert measurements.load("attention", settings) is None


def test_estimates_are_scaled_by_how_far_off_they_were_here(tmp_path, monkeypatch):
    from gpt2viz.analysis import measurements
    from gpt2viz.dashboard import bench_runs

    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))
    assert measurements.estimate_factor("attention") is None
    assert bench_runs.expected_seconds("attention", 7.0) == 7.0
    assert "not yet timed here" in bench_runs.about("attention", 7.0)
    for n, (took, estimated) in enumerate([(13.8, 7.0), (4.0, 2.0), (30.0, 10.0)]):
        measurements.save("attention", {"n": n}, [], seconds=took, estimated_seconds=estimated)
    measurements.save("attention", {"n": 9}, [])  # no timing: not counted
    measurements.save("forward", {"n": 0}, [], seconds=1.0, estimated_seconds=10.0)  # another kind
    ratios = sorted([13.8 / 7.0, 4.0 / 2.0, 30.0 / 10.0])
    assert measurements.estimate_factor("attention") == (ratios[1], 3)
    assert bench_runs.expected_seconds("attention", 7.0) == 7.0 * ratios[1]
    assert bench_runs.about("attention", 7.0).startswith("about 14 s (the work's count, 7 s, times 2:")
    monkeypatch.setattr(measurements, "machine", lambda device="cpu": "another machine")
    assert measurements.estimate_factor("attention") is None  # only this machine's runs count


def test_estimates_are_per_device(tmp_path, monkeypatch):
    """A GPU's runs say nothing about the CPU's pace (and the other way round), and the
    up-front count charges each device kind its own rates."""
    from gpt2viz.analysis import bench, measurements

    monkeypatch.setenv("GPT2VIZ_CACHE", str(tmp_path))
    measurements.save("attention", {"n": 1, "device": "cuda"}, [], seconds=1.0, estimated_seconds=4.0)
    assert measurements.estimate_factor("attention", "cpu") is None
    assert measurements.estimate_factor("attention", "cuda") == (0.25, 1)
    measurements.save("attention", {"n": 1, "device": "cpu"}, [], seconds=6.0, estimated_seconds=2.0)
    assert measurements.estimate_factor("attention", "cpu") == (3.0, 1)
    assert measurements.machine("cuda") != measurements.machine("cpu")
    plan = bench.attention_plan([1024, 4096], [None, 256], [12], ["banded", "sdpa", "eager"])
    cpu, gpu = bench.estimate_seconds(plan, device="cpu"), bench.estimate_seconds(plan, device="cuda")
    assert gpu < cpu / 10
    one = [(4096, None, 12, "eager")]  # 4 n^2 h d FLOPs at the eager rate, plus the call, 7 times
    expected = (4 * 12 * 4096**2 * bench.HEAD_DIM / bench.ESTIMATE_RATES["cpu"].flops["eager"]
                + bench.ESTIMATE_RATES["cpu"].call_s) * 7
    assert bench.estimate_seconds(one, device="cpu") == pytest.approx(expected)
    assert bench.estimate_rates("mps") is bench.ESTIMATE_RATES["cpu"]
