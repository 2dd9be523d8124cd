"""Tests of the MNI152-based brain phantom: offline templates, determinism, tracer contrasts, disease."""

from __future__ import annotations

import json
import socket

import pytest
import torch

from petspect.errors import InputError
from petspect.phantoms import rebuild
from petspect.phantoms.brain import BRAIN_LABELS, load_templates, make_brain

IDS = {n: i for i, n in enumerate(BRAIN_LABELS)}
V = 4.0  # tests use 4 mm voxels (2 mm templates)


def _mean(p, *names):
    lab, act = p["labels"].data, p["activity"].data
    m = torch.isin(lab, torch.tensor([IDS[n] for n in names], dtype=lab.dtype))
    return float(act[m].mean())


def test_templates_load_without_network(monkeypatch):
    """nilearn's MNI152 GM/WM/mask ship with the package: loading works with sockets disabled."""
    load_templates.cache_clear()

    def no_net(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "socket", no_net)
    t = load_templates(2)
    assert t["gm"].shape == t["wm"].shape == t["mask"].shape == (99, 117, 95)
    gm_ml, wm_ml = t["gm"].sum() * 8e-3, t["wm"].sum() * 8e-3  # 2 mm voxels = 8e-3 mL
    assert 500 < gm_ml < 1200 and 400 < wm_ml < 900  # adult GM ~0.6-0.8 L, WM ~0.45-0.55 L (+ template blur)


@pytest.fixture(scope="module")
def fdg():
    return make_brain(voxel_mm=V, seed=0, tracer="fdg")


def test_rebuild_is_bit_exact_and_seeds_differ(fdg):
    again = rebuild(json.loads(json.dumps(fdg.record)))
    for key, vol in fdg.volumes.items():
        assert torch.equal(vol.data, again.volumes[key].data), key
    other = make_brain(voxel_mm=V, seed=1, tracer="fdg")
    assert not torch.equal(other["labels"].data, fdg["labels"].data)
    assert fdg.record["disease"] is None and fdg.record["severity"] == 0.0


def test_labels_and_striatum_volumes(fdg):
    """Caudate ~3-5 mL and putamen ~4-6 mL each (adult MRI volumetry, e.g. Fischl et al, Neuron 2002)."""
    lab = fdg["labels"].data
    vv = fdg["labels"].voxel_volume_ml
    for side in ("left", "right"):
        assert 1.5 <= float((lab == IDS[f"caudate_{side}"]).sum()) * vv <= 8.0
        assert 2.0 <= float((lab == IDS[f"putamen_{side}"]).sum()) * vv <= 9.0
    assert 700 <= float((lab == IDS["grey_matter"]).sum()) * vv <= 1500
    assert (lab == IDS["skull"]).any() and not (lab == IDS["disease_region"]).any()
    # left structures lie at LPS x > 0 (MNI x < 0)
    idx = torch.nonzero(lab == IDS["putamen_left"]).double().mean(0).numpy()
    assert fdg["labels"].voxel_to_world(idx)[0] > 10


def test_fdg_grey_white_ratio(fdg):
    """FDG grey:white about 4:1 (tracers._FDG: GM SUV 8.5, WM 2.2; Berti et al, Semin Nucl Med 2014)."""
    suv = fdg.record["sampled"]["suv"]
    ratio = _mean(fdg, "grey_matter") / _mean(fdg, "white_matter")
    assert ratio == pytest.approx(suv["grey_matter"] / suv["white_matter"], rel=0.05)
    assert 2.5 < ratio < 7.0


def test_amyloid_negative_and_positive_patterns():
    """Amyloid-negative: white matter above cortex; positive (AD, severity 1): cortex above white matter
    in the association cortex (Clark et al, JAMA 2011)."""
    neg = make_brain(voxel_mm=V, seed=2, tracer="amyloid")
    pos = make_brain(voxel_mm=V, seed=2, tracer="amyloid", disease="alzheimer", severity=1.0)
    assert _mean(neg, "grey_matter") < _mean(neg, "white_matter")
    assert _mean(pos, "disease_region") > _mean(pos, "white_matter")
    assert _mean(pos, "white_matter") == pytest.approx(_mean(neg, "white_matter"), rel=1e-6)


def test_alzheimer_fdg_hypometabolism_graded():
    """Posterior cingulate / temporo-parietal uptake falls with severity; white matter is unchanged."""
    means = [make_brain(voxel_mm=V, seed=3, tracer="fdg", disease="alzheimer", severity=sev) for sev in (0.0, 0.5, 1.0)]
    assert (means[-1]["labels"].data == IDS["disease_region"]).sum() > 50
    assert means[1].record["severity"] == 0.5 and means[1].record["disease"] == "alzheimer"
    ref = means[-1]["disease"].data >= 0.5
    cortex_act = [float(m["activity"].data[ref & ((m["labels"].data == IDS["grey_matter"])
                                                  | (m["labels"].data == IDS["disease_region"]))].mean()) for m in means]
    assert cortex_act[0] > cortex_act[1] > cortex_act[2]
    assert cortex_act[2] / cortex_act[0] == pytest.approx(1 - 0.35 * 0.8, abs=0.12)  # up to 35 % loss
    assert _mean(means[0], "white_matter") == pytest.approx(_mean(means[2], "white_matter"), rel=1e-6)


def test_dat_parkinson_posterior_putamen_first():
    """DaT: striatum ~4x background normally; in PD the posterior putamen loses most, caudate least."""
    normal = make_brain(voxel_mm=V, seed=4, tracer="dat")
    assert _mean(normal, "putamen_left", "putamen_right") / _mean(normal, "grey_matter") > 2.5
    pd = make_brain(voxel_mm=V, seed=4, tracer="dat", disease="parkinson", severity=0.8)
    w = pd["disease"].data
    lab, act = pd["labels"].data, pd["activity"].data
    put = torch.isin(lab, torch.tensor([IDS["putamen_left"], IDS["putamen_right"], IDS["disease_region"]],
                                       dtype=lab.dtype))
    # posterior putamen (large weight) has lower uptake than anterior putamen
    assert float(act[put & (w > 0.6)].mean()) < float(act[put & (w < 0.45) & (w > 0)].mean())
    cau = _mean(pd, "caudate_left", "caudate_right") / _mean(normal, "caudate_left", "caudate_right")
    putr = float(act[put].mean()) / _mean(normal, "putamen_left", "putamen_right")
    assert putr < cau < 1.0


def test_ct_mu_mr_present(fdg):
    from petspect.materials import hu_to_mu_per_mm

    ct = fdg["ct"].data
    assert float(ct[fdg["labels"].data == IDS["skull"]].mean()) > 600
    assert torch.allclose(fdg["mu_511"].data, hu_to_mu_per_mm(ct, 511.0).float(), atol=1e-7)
    t2 = fdg["mr_t2"].data
    # T2-weighted: CSF brighter than grey matter brighter than white matter (Stanisz et al, MRM 2005)
    lab = fdg["labels"].data
    m = {n: float(t2[lab == IDS[n]].mean()) for n in ("csf", "grey_matter", "white_matter")}
    assert m["csf"] > m["grey_matter"] > m["white_matter"]


@pytest.mark.parametrize("bad", [dict(tracer="psma"), dict(disease="flu"), dict(severity=1.5),
                                 dict(voxel_mm=0.1), dict(deformation_mm=-1.0)])
def test_bad_inputs_raise(bad):
    with pytest.raises(InputError):
        make_brain(**{"voxel_mm": V, **bad})
