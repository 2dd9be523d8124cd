"""Procedural adult anatomy for the torso phantom: parameter sampler and deterministic shape builder.

:func:`sample_anatomy` draws a subject (sex, height, BMI, fat, arm position, organ sizes and positions)
into a JSON-serialisable dict; :func:`build_structures` turns that dict into shapes in paint order;
:func:`paint_labels` voxelises them (later structures overwrite earlier ones).

Body frame: LPS mm with the soles at z = 0 and the body axis at x = y = 0 (x to the patient's left,
y posterior, z superior). Segment heights are fractions of stature after Drillis & Contini (1966, as
tabulated by Winter, *Biomechanics and Motor Control of Human Movement*, 4th ed., Fig. 4.1): chin 0.870 H,
shoulder 0.818 H, elbow 0.630 H, wrist 0.485 H, hip (greater trochanter) 0.530 H, knee 0.285 H,
ankle 0.039 H. Organ sizes are set so that the volumes fall in adult reference ranges (ICRP
Publication 89, 2002: liver 1.4-1.8 kg, spleen ~150 g, kidneys ~150 g each, brain 1.3-1.45 kg;
lungs at functional residual capacity ~3 L air).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from petspect.phantoms.shapes import Difference, Ellipsoid, HalfSpace, Intersection, Shape, Sphere, Union
from petspect.phantoms.torso_shapes import Capsule, Ribs, Segmented, WavyRegion, ZTube, frame_from_axis

LABELS: tuple[str, ...] = (
    "background", "soft_tissue", "fat", "skin", "lung", "airway", "myocardium", "blood_pool", "aorta",
    "liver", "spleen", "kidney_cortex", "kidney_medulla", "stomach", "bowel", "bladder", "prostate",
    "spine", "spinal_cord", "ribs", "pelvis", "long_bones", "skull", "brain", "salivary_glands", "thyroid",
)
LABEL_IDS: dict[str, int] = {n: i for i, n in enumerate(LABELS)}
SKIN_MM = 2.0
SCALP_FAT_MM = 5.0


def _r(x: float) -> float:
    return round(float(x), 3)


def _e(centre, semi, axis=(0.0, 0.0, 1.0), roll=0.0) -> dict[str, Any]:
    return {"centre": [_r(c) for c in centre], "semi": [_r(s) for s in semi],
            "axis": [_r(a) for a in axis], "roll": _r(roll)}


def sample_anatomy(rng: np.random.Generator, *, arms: str | None = None, sex: str | None = None,
                   weight_kg: float | None = None) -> dict[str, Any]:
    """Draw one adult subject's anatomy (all lengths in mm, body frame).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (the only one used).
    arms : {"up", "down"}, optional
        Arm position; drawn (70 % up, as in oncological PET) when None.
    sex : {"M", "F"}, optional
        Drawn 50/50 when None.
    weight_kg : float, optional
        Body weight; sets the BMI (clipped to 16-45) instead of drawing it.

    Returns
    -------
    dict
        JSON-serialisable parameters consumed by :func:`build_structures`.
    """
    sex = sex or ("M" if rng.random() < 0.5 else "F")
    arms = arms or ("up" if rng.random() < 0.7 else "down")
    h = float(np.clip(rng.normal(1760, 70) if sex == "M" else rng.normal(1630, 65), 1500, 1950))
    bmi = float(np.clip(rng.normal(26.0, 4.0), 18.0, 40.0))
    if weight_kg is not None:
        bmi = float(np.clip(weight_kg / (h / 1000.0) ** 2, 16.0, 45.0))
    fat = float(np.clip(4.0 + 1.6 * (bmi - 18.0) + (4.0 if sex == "F" else 0.0) + rng.normal(0, 3), 3.0, 45.0))
    s = h / 1720.0
    w = s * (1.0 + 0.008 * (bmi - 24.0)) * math.exp(rng.normal(0, 0.04))

    z = {"vertex": h, "chin": 0.870 * h, "shoulder": 0.818 * h, "elbow": 0.630 * h, "wrist": 0.485 * h,
         "hip": 0.530 * h, "crotch": 0.470 * h, "knee": 0.285 * h, "ankle": 0.039 * h,
         "waist": 0.600 * h, "chest": 0.720 * h, "axilla": 0.780 * h}
    z["diaphragm"] = z["shoulder"] - 0.145 * h * math.exp(rng.normal(0.0, 0.05))
    fem = sex == "F"
    hip_ax, waist_ax = 150 * w * (1.08 if fem else 1.0), 125 * w * (0.95 if fem else 1.0)
    chest_ax, sh_ax = 140 * w * (0.94 if fem else 1.0), 168 * w * (0.9 if fem else 1.0)
    trunk = {"z": [z["crotch"] - 40, z["hip"], z["hip"] + 0.06 * h, z["waist"], 0.66 * h, z["chest"],
                   z["axilla"], z["shoulder"], z["shoulder"] + 25],
             "ax": [0.55 * hip_ax, hip_ax, 0.93 * hip_ax, waist_ax, 0.97 * chest_ax, chest_ax, 1.02 * chest_ax,
                    sh_ax, 0.5 * sh_ax],
             "ay": [v * w for v in (85, 95, 92, 90, 98, 105, 100, 80, 62)]}
    fat_profile = {"z": [0.0, z["knee"], z["crotch"], z["hip"], z["waist"], z["chest"], z["shoulder"], z["chin"],
                         z["chin"] + 1.0, h + 400.0],
                   "mm": [0.3 * fat, 0.5 * fat, 0.9 * fat, fat, 1.25 * fat, 0.8 * fat, 0.5 * fat, 0.3 * fat,
                          SCALP_FAT_MM, SCALP_FAT_MM]}
    organs, bladder_ml, waves = _sample_organs(rng, z, s, w, waist_ax)
    return {"sex": sex, "arms": arms, "height_mm": _r(h), "bmi": _r(bmi), 
            "weight_kg": _r(weight_kg if weight_kg is not None else bmi * (h / 1000) ** 2),
            "fat_mm": _r(fat), "scale": _r(s), "width": _r(w), "z": {k_: _r(v) for k_, v in z.items()},
            "trunk": {k_: [_r(v) for v in vals] for k_, vals in trunk.items()},
            "fat_profile": {k_: [_r(v) for v in vals] for k_, vals in fat_profile.items()},
            "organs": organs, "bladder_ml": _r(bladder_ml), "bowel_waves": waves}


def _sample_organs(rng: np.random.Generator, z: dict[str, float], s: float, w: float, waist_ax: float):
    """Organ ellipsoids (centre, semi-axes, axis) around the sampled landmarks, bladder filling, bowel waves."""

    def f(cv: float = 0.1) -> float:  # multiplicative size jitter
        return math.exp(rng.normal(0.0, cv))

    def j(sd: float = 8.0) -> float:  # position jitter (mm)
        return rng.normal(0.0, sd)

    h = z["vertex"]
    d = z["diaphragm"]
    organs: dict[str, Any] = {}
    lung_sz = f(0.08)
    for side, name in ((-1, "right"), (1, "left")):
        organs[f"lung_{name}"] = _e((side * 60 * w + j(4), 10 + j(4), d + 125 + j(5)),
                                    (45 * w * lung_sz, 72 * w * lung_sz, 148 * s * lung_sz))
        organs[f"dome_{name}"] = _e((side * 65 * w, 10, d - (0.0 if side < 0 else 15.0) - 90), (125 * w, 125 * w, 90))
    organs["heart"] = _e((25 * w + j(5), -22 + j(4), d + 55 + j(5)), (45 * w * f(0.07), 50 * w, 62 * w),
                         (0.55 + j(0.08), -0.45 + j(0.05), -0.70))
    organs["liver"] = _e((-55 * w + j(6), -5 + j(5), d - 72 + j(5)), np.array([90, 76, 80]) * w * f(0.08),
                         (math.sin(math.radians(-12 + j(6))), 0.0, math.cos(math.radians(-12))))
    organs["spleen"] = _e((92 * w + j(5), 45 + j(6), d - 35 + j(5)), np.array([25, 42, 50]) * w * f(0.15),
                          (0.3, 0.2, 1.0), 35 + j(10))
    organs["stomach"] = _e((45 * w + j(6), -25 + j(6), d - 65 + j(6)), np.array([35, 38, 75]) * w * f(0.12),
                           (-0.35, -0.3, -0.88))
    for side, name, dz in ((-1, "right", -100.0), (1, "left", -88.0)):
        organs[f"kidney_{name}"] = _e((side * 70 * w + j(5), 62 * w + j(4), d + dz + j(8)),
                                      np.array([29, 25, 55]) * w * f(0.07), (-side * 0.2, 0.15, 1.0))
    bladder_ml = float(math.exp(rng.uniform(math.log(80.0), math.log(400.0))))
    a_bl = (3 * bladder_ml * 1000 / (4 * math.pi * 0.8 * 0.75)) ** (1 / 3)
    organs["bladder"] = _e((j(5), -40 * w, z["crotch"] + 45 + 0.75 * a_bl), (a_bl, 0.8 * a_bl, 0.75 * a_bl))
    organs["brain"] = _e((0, 15, 0.5 * (h + z["chin"]) + 20), np.array([64, 82, 57]) * math.sqrt(s) * f(0.05))
    bowel_top, bowel_bottom = d - 110, z["hip"] + 10
    organs["bowel"] = _e((0, -15, 0.5 * (bowel_top + bowel_bottom)),
                         (0.78 * waist_ax, 0.55 * 92 * w, 0.5 * (bowel_top - bowel_bottom)))
    k_dirs = rng.normal(size=(6, 3))
    k = k_dirs / np.linalg.norm(k_dirs, axis=1, keepdims=True) * (2 * math.pi / (45.0 * f(0.1)))
    waves = {"k_per_mm": np.round(k, 6).tolist(), "phase_rad": np.round(rng.uniform(0, 2 * math.pi, 6), 6).tolist()}
    return organs, bladder_ml, waves


def _ell(p: dict[str, Any], grow_mm: float = 0.0) -> Ellipsoid:
    return Ellipsoid(p["centre"], np.asarray(p["semi"]) + grow_mm, frame_from_axis(p["axis"], p["roll"]))


def fat_mm_at(a: dict[str, Any], z_mm):
    """Subcutaneous fat thickness (mm) at heights ``z_mm`` (numpy)."""
    return np.interp(z_mm, a["fat_profile"]["z"], a["fat_profile"]["mm"])


def body_parts(a: dict[str, Any]) -> list[Shape]:
    """The body outline (skin surface) as a list of parts whose union is the body."""
    z, s, w = a["z"], a["scale"], a["width"]
    t = a["trunk"]
    fz = lambda zz: float(fat_mm_at(a, zz)) + SKIN_MM  # noqa: E731
    tz = np.asarray(t["z"])
    fat_t = np.array([fz(v) for v in tz])
    parts: list[Shape] = [ZTube(tz, np.zeros_like(tz), np.zeros_like(tz), np.asarray(t["ax"]) + fat_t,
                                np.asarray(t["ay"]) + fat_t)]
    nz = [z["shoulder"] - 10, z["chin"] + 30]
    parts.append(ZTube(nz, [0, 0], [10, 10], [52 * s + fz(nz[0]), 52 * s + fz(nz[1])],
                       [55 * s + fz(nz[0]), 55 * s + fz(nz[1])]))
    head_c = (0.0, 10.0, 0.5 * (z["vertex"] + z["chin"]))
    parts.append(Ellipsoid(head_c, (75 * s + fz(z["vertex"]), 95 * s + fz(z["vertex"]),
                                    0.5 * (z["vertex"] - z["chin"]) + 15)))
    leg_x = 0.5 * t["ax"][1]
    for side in (-1.0, 1.0):
        lx = side * leg_x
        parts.append(Capsule((lx, 5, z["hip"]), (0.9 * lx, 10, z["knee"]), 0.55 * t["ax"][1] + fz(z["hip"]),
                             48 * w + fz(z["knee"])))
        parts.append(Capsule((0.9 * lx, 10, z["knee"]), (0.85 * lx, 10, z["ankle"]), 48 * w + fz(z["knee"]),
                             30 * w + fz(z["ankle"])))
        for p0, p1, r0, r1 in arm_segments(a, side):
            parts.append(Capsule(p0, p1, r0 + fz(p0[2]), r1 + fz(p1[2])))
    return parts


def arm_segments(a: dict[str, Any], side: float) -> list[tuple[tuple, tuple, float, float]]:
    """Lean arm segments ``(start, end, r_start, r_end)``: upper arm, forearm, hand."""
    z, h, w = a["z"], a["height_mm"], a["width"]
    sh_ax = a["trunk"]["ax"][7]
    shoulder = (side * (sh_ax - 25), 5.0, z["shoulder"] - 20)
    if a["arms"] == "down":  # hanging beside the trunk, clear of its widest part (chest or hips)
        t = a["trunk"]
        x_arm = max(t["ax"][1], t["ax"][5]) + float(fat_mm_at(a, z["waist"])) + 2 * float(fat_mm_at(a, z["elbow"])) \
            + 45 * w + 8
        elbow = (side * x_arm, 15.0, z["elbow"])
        wrist = (side * (x_arm + 6), 0.0, z["wrist"])
        hand = (side * (x_arm + 8), 0.0, z["wrist"] - 0.1 * h)
    else:
        elbow = (side * (sh_ax - 5), 10.0, z["shoulder"] + 0.186 * h)
        wrist = (side * 45.0, 10.0, elbow[2] + 0.09 * h)
        hand = (side * 5.0, 10.0, wrist[2] + 0.04 * h)
    return [(shoulder, elbow, 40 * w, 32 * w), (elbow, wrist, 32 * w, 24 * w), (wrist, hand, 22 * w, 16 * w)]


def _spine(a: dict[str, Any]) -> tuple[Shape, Shape, ZTube]:
    """Vertebral column (bodies, arches, spinous processes; discs removed), spinal cord, and body tube."""
    z, t, w, s = a["z"], a["trunk"], a["width"], a["scale"]
    zk = np.array([z["hip"] + 30, z["waist"], z["diaphragm"], z["chest"], z["shoulder"], z["chin"] + 15])
    back = np.interp(zk[:5], t["z"], t["ay"])
    yv = np.append(back - np.array([80, 78, 68, 64, 50]) * w, 25.0)
    yv[4] = 0.5 * (yv[3] + yv[5])
    rx, ry = np.array([25, 24, 20, 16, 13, 10]) * w, np.array([18, 17, 15, 13, 11, 9]) * w
    body = ZTube(zk, np.zeros(6), yv, rx, ry)
    yc = yv + ry + 10 * s
    ring = Difference(ZTube(zk, np.zeros(6), yc, np.full(6, 13 * s), np.full(6, 11 * s)),
                      ZTube(zk, np.zeros(6), yc, np.full(6, 7 * s), np.full(6, 6 * s)))
    spinous = ZTube(zk, np.zeros(6), yc + 24 * s, np.full(6, 4 * s), np.full(6, 14 * s))
    heights = np.concatenate([np.full(5, 1.6), np.full(12, 1.2), np.full(7, 0.8)])
    bounds = zk[0] + np.concatenate([[0], np.cumsum(heights)]) / heights.sum() * (zk[-1] - zk[0])
    column = Segmented(Union(body, ring, spinous), bounds, 0.2)
    cord_z = np.array([z["diaphragm"] - 90, *zk[2:]])
    cord = ZTube(cord_z, np.zeros(5), np.interp(cord_z, zk, yc), np.full(5, 5 * s), np.full(5, 4 * s))
    return column, cord, body


def _pelvis(a: dict[str, Any], sacrum_y: float) -> list[Shape]:
    z, w = a["z"], a["width"]
    zh = z["hip"]
    parts: list[Shape] = [Ellipsoid((0, sacrum_y + 5, zh + 50), (45 * w, 22 * w, 60 * w),
                                    frame_from_axis((0, 0.42, 0.9)))]
    for side in (-1.0, 1.0):
        c = np.array([side * 62 * w, 10, zh + 60])
        semi = np.array([70 * w, 55 * w, 68 * w])
        shell = Difference(Ellipsoid(c, semi), Ellipsoid(c, semi - 7))
        parts.append(Intersection(shell, HalfSpace((side * 30, 0, 0), (-side, 0, 0)),
                                  HalfSpace((0, 0, zh + 20), (0, 0, -1)), HalfSpace((0, 0, zh + 110), (0, 0, 1)),
                                  HalfSpace((0, -50, 0), (0, -1, 0))))
        acet = np.array([side * 88 * w, 0.0, zh + 10])
        parts.append(Intersection(Difference(Sphere(acet, 31 * w), Sphere(acet, 25 * w)),
                                  HalfSpace(acet, (-side * 0.5, 0, -0.85))))
        tub = (side * 55 * w, 25.0, zh - 55)
        parts += [Capsule((side * 80 * w, -10, zh + 5), (side * 6, -65 * w, zh - 25), 9 * w),
                  Capsule(tuple(acet), tub, 12 * w), Capsule(tub, (side * 8, -60 * w, zh - 40), 7 * w)]
    return parts


def _long_bones(a: dict[str, Any]) -> list[Shape]:
    z, w = a["z"], a["width"]
    zh, leg_x = z["hip"], 0.5 * a["trunk"]["ax"][1]
    bones: list[Shape] = []
    for side in (-1.0, 1.0):
        head = (side * 88 * w, 0.0, zh + 10)
        troch = (side * 112 * w, 5.0, zh - 20)
        knee = (side * 0.9 * leg_x, 10.0, z["knee"] + 30)
        bones += [Sphere(head, 23 * w), Capsule(head, troch, 16 * w), Capsule(troch, knee, 14 * w, 16 * w),
                  Capsule((side * 0.9 * leg_x, 10.0, z["knee"] - 20), (side * 0.85 * leg_x, 10, z["ankle"] + 30),
                          15 * w, 11 * w)]
        (sh, el, _, _), (_, wr, _, _), _ = arm_segments(a, side)
        bones += [Capsule(sh, el, 12 * w, 10 * w), Capsule(el, wr, 9 * w, 8 * w)]
    return bones


def _heart_vessels_airways(a: dict[str, Any], vbody: ZTube) -> list[tuple[str, Shape]]:
    """Heart (blood pool, LV myocardium, LV cavity), aorta (root, arch, descending) and airways."""
    o, z, w, s = a["organs"], a["z"], a["width"], a["scale"]
    d = z["diaphragm"]
    heart = o["heart"]
    axis = np.asarray(heart["axis"]) / np.linalg.norm(heart["axis"])
    rot = frame_from_axis(axis)
    hc = np.asarray(heart["centre"])
    lv_c = hc + rot @ np.array([6.0, 6.0, 8.0]) * w
    out: list[tuple[str, Shape]] = [
        ("blood_pool", _ell(heart)), ("myocardium", Ellipsoid(lv_c, np.array([33, 33, 50]) * w, rot)),
        ("blood_pool", Ellipsoid(lv_c + 3 * axis, np.array([22, 22, 38]) * w, rot))]
    y_front = float(np.interp(d + 150, vbody.zk, vbody.cy - vbody.ay))
    y_lumbar = float(np.interp(z["hip"] + 60, vbody.zk, vbody.cy - vbody.ay))
    root = hc - axis * 40 * w
    arch_top = (0.0, -15.0, d + 150)
    arch_end = (18.0 * w, y_front - 13 * w, d + 155)
    out.append(("aorta", Union(Capsule(root, arch_top, 14 * w), Capsule(arch_top, arch_end, 13 * w),
                               Capsule(arch_end, (8 * w, y_lumbar - 12 * w, z["hip"] + 0.05 * a["height_mm"]),
                                       12 * w, 9 * w))))
    carina = (0.0, 5.0, d + 140)
    out.append(("airway", Union(Capsule((0, -10, z["chin"] - 5), carina, 9 * s),
                                Capsule(carina, (-40 * w, 15, d + 110), 6 * s),
                                Capsule(carina, (40 * w, 15, d + 110), 6 * s))))
    return out


def _ribs(a: dict[str, Any]) -> Ribs:
    """Twelve rib pairs ~14 mm inside the lean thoracic wall, from below the shoulder to below the diaphragm."""
    z, w, s, t = a["z"], a["width"], a["scale"], a["trunk"]
    tz = np.asarray(t["z"])
    thorax = ZTube(tz, np.zeros_like(tz), np.zeros_like(tz), np.asarray(t["ax"]) - 14 * w, np.asarray(t["ay"]) - 14 * w)
    z_top = z["shoulder"] - 25
    spacing = (z_top - (z["diaphragm"] - 60)) / 11.0
    return Ribs(thorax, z_top, spacing, 80.0 * s, [2.6] + [2.75] * 9 + [1.9, 1.4],
                sternum_z_mm=(z["shoulder"] - 40 - 170 * s, z["shoulder"] - 40))


def build_structures(a: dict[str, Any]) -> list[tuple[str, Shape]]:
    """Organ and bone shapes in paint order (later ones overwrite earlier ones) for the sampled anatomy."""
    o, z, w, s = a["organs"], a["z"], a["width"], a["scale"]
    out: list[tuple[str, Shape]] = []
    bw = a["bowel_waves"]
    out.append(("bowel", WavyRegion(_ell(o["bowel"]), np.asarray(bw["k_per_mm"]), np.asarray(bw["phase_rad"]), 0.3)))
    out.append(("bladder", _ell(o["bladder"])))
    if a["sex"] == "M":
        bl = o["bladder"]
        out.append(("prostate", Ellipsoid((bl["centre"][0], -30 * w, z["crotch"] + 25), (20 * s, 15 * s, 17 * s))))
    out.append(("spleen", _ell(o["spleen"])))
    out.append(("stomach", _ell(o["stomach"])))
    domes = Union(_ell(o["dome_right"]), _ell(o["dome_left"]))
    lc = np.asarray(o["liver"]["centre"])
    out.append(("liver", Intersection(_ell(o["liver"]), domes, HalfSpace(lc + (30 * w, 0, -20), (0.5, 0, -0.87)))))
    for name in ("right", "left"):
        k = o[f"kidney_{name}"]
        out.append(("kidney_cortex", _ell(k)))
        side = -1.0 if name == "right" else 1.0
        med = dict(k, centre=[k["centre"][0] - side * 4, k["centre"][1], k["centre"][2]],
                   semi=[0.62 * v for v in k["semi"]])
        out.append(("kidney_medulla", _ell(med)))
    for name, side in (("right", -1.0), ("left", 1.0)):
        out.append(("lung", Intersection(Difference(_ell(o[f"lung_{name}"]), _ell(o[f"dome_{name}"])),
                                         HalfSpace((side * 15, 0, 0), (-side, 0, 0)))))
    column, cord, vbody = _spine(a)
    out += _heart_vessels_airways(a, vbody)
    out += [("thyroid", Union(*[Ellipsoid((sd * 17 * s, -18, z["shoulder"] + 35), (8 * s, 9 * s, 20 * s))
                                for sd in (-1, 1)]))]
    out += [("salivary_glands", Union(*[Ellipsoid((sd * 50 * s, 5, z["chin"] + 30), (12 * s, 18 * s, 22 * s))
                                        for sd in (-1, 1)],
                                      *[Ellipsoid((sd * 32 * s, -22, z["chin"] + 5), (10 * s, 12 * s, 9 * s))
                                        for sd in (-1, 1)]))]
    out.append(("brain", _ell(o["brain"])))
    out.append(("skull", Difference(_ell(o["brain"], 9.0), _ell(o["brain"], 2.0))))
    out += [("spine", column), ("spinal_cord", cord)]
    out.append(("ribs", _ribs(a)))
    out.append(("pelvis", Union(*_pelvis(a, float(np.interp(z["hip"] + 30, vbody.zk, vbody.cy))))))
    out.append(("long_bones", Union(*_long_bones(a))))
    return out


def paint_labels(points: torch.Tensor, a: dict[str, Any], structures: list[tuple[str, Shape]] | None = None,
                 *, box_of=None) -> torch.Tensor:
    """Organ label (uint8, :data:`LABELS` ids) at LPS points ``(..., 3)``: body layers, then structures."""
    labels = body_layers(points, a)
    for name, shape in structures if structures is not None else build_structures(a):
        for part in union_members(shape):
            labels[part.contains(points)] = LABEL_IDS[name]
    return labels


def union_members(shape: Shape) -> list[Shape]:
    """A union's members, recursively (painted one by one, each in its own box), or the shape itself."""
    return [p for s in shape.shapes for p in union_members(s)] if isinstance(shape, Union) else [shape]


def body_layers(points: torch.Tensor, a: dict[str, Any]) -> torch.Tensor:
    """Skin / subcutaneous fat / soft tissue labels from the body outline's signed distance (mm)."""
    d = torch.full(points.shape[:-1], 1e6, dtype=points.dtype, device=points.device)
    for part in body_parts(a):
        d = torch.minimum(d, part.sdf(points))
    fat = torch.as_tensor(fat_mm_at(a, points[..., 2].cpu().numpy()), dtype=points.dtype, device=points.device)
    labels = torch.zeros(points.shape[:-1], dtype=torch.uint8, device=points.device)
    labels[d <= 0] = LABEL_IDS["skin"]
    labels[d <= -SKIN_MM] = LABEL_IDS["fat"]
    labels[d <= -(SKIN_MM + fat)] = LABEL_IDS["soft_tissue"]
    return labels
