from benchmarks.likelihood_speed import conv_vae, measure, table


def test_the_pass_and_the_decoder_alone_are_timed_against_the_fastest_decoder_run():
    result = measure(conv_vae(None), images=2, samples=16, decodes=[32, 8], batches=[16, 8], repeats=2)
    runs = result["runs"]
    assert list(runs) == ["pass, decodes=32", "pass, decodes=8", "decoder alone, batch 16", "decoder alone, batch 8"]
    assert min(runs[name]["over_bound"] for name in runs if name.startswith("decoder")) == 1.0
    assert all(r["seconds"] > 0 and r["minutes_for_test_set"] == r["seconds"] * 5000 / 60 for r in runs.values())
    assert len(table(result).splitlines()) == 6  # header, rule and four rows
