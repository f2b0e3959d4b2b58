"""gpt2viz.analysis.measurements: stored bench runs, labelled with when and where they were measured."""



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
