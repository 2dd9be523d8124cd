"""The Berg and Cherry 2018 set-up as presets, the stepped-source protocol and the waveform renderer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from petspect.detector import pipeline
from petspect.detector.waveforms import (TimingConfig, draw_interactions, render_waveforms, simulate_coincidences,
                                         single_photon_response)
from petspect.errors import ConfigError, InputError
from petspect.units import C_MM_PER_PS


def test_presets_registered_with_the_published_set_up():
    """PMT-read pair at 10 GS/s (Berg and Cherry, PMB 63 (2018) 02LT01; LYSO assumed); stepped variant keeps it."""
    bc, stepped = pipeline.get_preset("berg-cherry-2018"), pipeline.get_preset("Berg-Cherry-2018-stepped")
    t = bc.timing
    assert t.crystal == "LYSO" and t.sample_ps == 100.0 and t.sptr_fwhm_ps == 270.0 and t.adc_bits == 8
    assert bc.joint is None and stepped.joint is None and pipeline.get_preset("realistic").joint is not None
    # the single-photoelectron response rises in ~1.0 ns (10-90 %), the R9800 data sheet's anode rise time
    spr = single_photon_response(t, 1.0)
    rise_ps = np.argmax(spr >= 0.9) - np.argmax(spr >= 0.1)
    assert 900 <= rise_ps <= 1050
    assert stepped.timing.source_step_mm == 5.0 and stepped.timing.source_range_mm == 75.0  # 5 mm over 15 cm
    assert stepped.timing_train_source_range_mm is None and stepped.timing_arch == "pair"
    assert dataclasses.replace(stepped.timing, source_step_mm=None, source_range_mm=t.source_range_mm,
                               trigger_jitter_ps=t.trigger_jitter_ps) == t
    pub = pipeline.BERG_CHERRY_2018_PUBLISHED_CTR_PS
    assert 0.19 < 1 - pub["cnn"] / pub["led"] < 0.21  # the "~20 %" of the review
    # every LED threshold lies at least ~2 ADC steps above the baseline (8 bits over 280 spe: 1.1 spe per step)
    assert min(bc.led_thresholds_spe) >= 1.5 * t.adc_full_scale_spe / 2**t.adc_bits


def test_stepped_source_positions():
    cfg = dataclasses.replace(pipeline.BERG_CHERRY_2018_TIMING, source_range_mm=75.0, source_step_mm=5.0,
                              n_samples=32, max_shift=2)
    co = simulate_coincidences(cfg, 200, np.random.default_rng(0))
    steps = co.source_mm / 5.0
    np.testing.assert_allclose(steps, np.round(steps))
    assert np.abs(co.source_mm).max() <= 75.0 and len(np.unique(co.source_mm)) > 10
    np.testing.assert_allclose(co.dt_ps, 2.0 * co.source_mm / C_MM_PER_PS)
    with pytest.raises(ConfigError):
        TimingConfig(source_step_mm=0.0)
    with pytest.raises(ConfigError):
        TimingConfig(source_range_mm=10.0, source_step_mm=50.0)


def test_render_is_the_coincidence_simulation():
    """simulate_coincidences = draws + render_waveforms, on the same random stream (regression of the refactor)."""
    cfg = TimingConfig(length_mm=10.0, n_samples=32, max_shift=2, onset_ns=2.0, trigger_jitter_ps=1000.0)
    co = simulate_coincidences(cfg, 40, np.random.default_rng(7))
    g = np.random.default_rng(7)
    source = g.uniform(-cfg.source_range_mm, cfg.source_range_mm, 40)
    dt = 2.0 * source / C_MM_PER_PS
    t0 = cfg.onset_ns * 1e3 + cfg.max_shift * cfg.sample_ps + g.uniform(0.0, cfg.trigger_jitter_ps, 40)
    doi, n_pe, _ = draw_interactions(cfg, 40, g)
    waves = render_waveforms(cfg, np.stack([t0 + dt / 2, t0 - dt / 2], 1).ravel(), doi.ravel(), n_pe.ravel(), g)
    np.testing.assert_array_equal(waves.reshape(40, 2, -1), co.waveforms)
    # a later gamma makes a later pulse; no photoelectron, no pulse
    late = render_waveforms(cfg, np.array([2000.0, 4000.0, 2000.0]), np.array([5.0, 5.0, 5.0]),
                            np.array([2000, 2000, 0]), np.random.default_rng(1))
    assert np.argmax(late[1] > 50) > np.argmax(late[0] > 50) and late[2].max() < 10
    with pytest.raises(InputError):
        render_waveforms(cfg, np.zeros(2), np.zeros(3), np.ones(2, dtype=int), g)


def test_report_sets_the_published_ctrs_beside_the_preset():
    from petspect.detector.report import _published_rows

    pos = {"xy_fwhm_mm": 1.0, "x_mae_mm": 0.5, "y_mae_mm": 0.5, "doi_mae_mm": 0.7}
    m = {"gbt": pos, "cnn": pos, "anger": pos, "summary": {"cnn_ctr_improvement_over_cfd_pct": 5.0},
         "led": {"ctr_fwhm_ps": 233.0}, "cfd": {"ctr_fwhm_ps": 230.0}, "cnn_timing": {"ctr_fwhm_ps": 218.0}}
    assert not any("02LT01" in r[0] for r in _published_rows(m))
    preset = pipeline.get_preset("berg-cherry-2018")
    m["published_ctr_ps"] = dict(preset.published_ctr_ps)
    row = next(r for r in _published_rows(m) if "02LT01" in r[0])
    assert row[1] == "231 / 242 / 185 ps" and row[2] == "233 / 230 / 218 ps"


def test_cli_limits_on_the_published_set_up(tmp_path):
    """`petspect detector limits --preset berg-cherry-2018`: the set-up's photon-level ceiling through the CLI."""
    import json

    from typer.testing import CliRunner

    from petspect.cli.main import app

    out = tmp_path / "limits.json"
    r = CliRunner().invoke(app, ["detector", "limits", "--preset", "berg-cherry-2018", "--out", str(out),
                                 "--pairs", "200", "--first", "8"])
    assert r.exit_code == 0, r.output
    rec = json.loads(out.read_text())
    assert rec["preset"] == "berg-cherry-2018" and rec["timing"]["sptr_fwhm_ps"] == 270.0
    lim = rec["ctr_fwhm"]
    assert 0 < lim["max_likelihood_ps"] < lim["first_photon_ps"]


# The cited parameters of the presets, as BENCHMARKS.md states them: (preset, TimingConfig field) -> (value, source).
# Changing a preset, the provenance table or BENCHMARKS.md alone fails here; change all three together.
CITED = {
    ("berg-cherry-2018-stepped", "source_step_mm"): (5.0, "read"),
    ("berg-cherry-2018-stepped", "source_range_mm"): (75.0, "read"),
    ("berg-cherry-2018", "sample_ps"): (100.0, "read"),
    ("berg-cherry-2018", "crystal"): ("LYSO", "assumed"),
    ("berg-cherry-2018", "length_mm"): (10.0, "assumed"),
    ("berg-cherry-2018", "light_collection"): (0.45, "assumed"),
    ("berg-cherry-2018", "pde"): (0.25, "assumed"),
    ("berg-cherry-2018", "sptr_fwhm_ps"): (270.0, "assumed"),
    ("berg-cherry-2018", "spr_rise_ns"): (1.2, "assumed"),
    ("berg-cherry-2018", "spr_decay_ns"): (2.5, "assumed"),
    ("berg-cherry-2018", "gain_spread"): (0.35, "assumed"),
    ("berg-cherry-2018", "adc_bits"): (8, "assumed"),
    ("berg-cherry-2018", "adc_full_scale_spe"): (280.0, "assumed"),
    ("berg-cherry-2018", "noise_spe"): (0.1, "assumed"),
    ("berg-cherry-2018-stepped", "trigger_jitter_ps"): (None, "assumed"),
    ("berg-cherry-2018", "n_samples"): (128, "chosen"),
    ("berg-cherry-2018", "trigger_jitter_ps"): (2000.0, "chosen"),
}


def test_cited_parameters_pinned_to_presets_and_benchmarks():
    """Each cited parameter: the preset simulates it, its source is as stated, BENCHMARKS.md carries the table."""
    import json
    from pathlib import Path

    from petspect._json import json_default
    from petspect.detector import berg_cherry as bc

    setup = bc.BERG_CHERRY_2018_SETUP
    assert {(p.preset, p.field): (p.field_value, p.source.value) for p in setup if p.field} == CITED
    for (preset, field), (value, _) in CITED.items():
        assert getattr(pipeline.get_preset(preset).timing, field) == value, (preset, field)
    assert pipeline.get_preset("berg-cherry-2018").published_setup == setup
    # the published figures, read in the abstract
    assert bc.BERG_CHERRY_2018_PUBLISHED_CTR_PS == {"led": 231.0, "cfd": 242.0, "cnn": 185.0}
    row = next(p for p in setup if p.name == "published CTR FWHM")
    assert row.source is bc.Source.READ and all(f"{v:.0f} ps" in row.value
                                                for v in bc.BERG_CHERRY_2018_PUBLISHED_CTR_PS.values())
    # a "read" row names a text that was read; an assumed or chosen one says where from or why
    assert all(p.reference for p in setup)
    assert all(any(t in p.reference for t in (bc.ABSTRACT, bc.NEWS, bc.REVIEW)) for p in setup
               if p.source is bc.Source.READ)
    assert {p.source for p in setup} == set(bc.Source)
    # BENCHMARKS.md states the same table, verbatim
    bench = Path(__file__).resolve().parents[2] / "BENCHMARKS.md"
    if bench.is_file():
        assert bc.setup_table_markdown() in bench.read_text(encoding="utf-8")
    # the records that go to metrics.json and dataset.json are JSON
    rec = json.loads(json.dumps([p.to_dict() for p in setup]))
    assert rec[0]["source"] == "read" and {r["source"] for r in rec} == {"read", "assumed", "chosen"}
    json.dumps(pipeline.get_preset("berg-cherry-2018").to_dict(), default=json_default)
