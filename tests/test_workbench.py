"""gpt2viz.analysis.workbench: what the pages compute that is not a figure."""



def test_within_noise_lists_exactly_the_variants_closer_than_the_noise():
    from gpt2viz.analysis.workbench import within_noise

    losses = {"gpt2": 3.944, "gqa": 3.945, "swa": 3.812, "rope": 3.714}
    close = within_noise(losses, 0.05)
    for name, loss in losses.items():
        closer = [o for o, other in losses.items() if o != name and abs(other - loss) < 0.05]
        assert sorted(close[name]) == sorted(closer)
    assert close["gpt2"] == ["gqa"] and close["rope"] == []
