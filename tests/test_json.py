"""petspect._json: the one JSON encoder (NumPy, torch, paths, dataclasses, Enums; strict non-finite option)."""

from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from petspect._json import dumps, json_default, to_jsonable, write_json


class Algo(enum.Enum):
    OSEM = "osem"


@dataclasses.dataclass(frozen=True)
class Spec:
    algorithm: Algo
    shape: tuple[int, ...]
    where: Path


def test_every_known_type_becomes_plain_json(tmp_path):
    value = {
        "np_int": np.int64(3), "np_float": np.float32(0.5), "np_bool": np.bool_(True), "array": np.arange(3),
        "tensor": torch.tensor([[1.0, 2.0]]), "dtype": torch.float32, "device": torch.device("cpu"),
        "np_dtype": np.dtype("int16"), "path": Path("a/b.nii.gz"), "enum": Algo.OSEM,
        "spec": Spec(Algo.OSEM, (2, 3), Path("x")), "set": {3, 1}, 7: "int key", "tuple": (1, (2, 3)),
    }
    out = to_jsonable(value)
    assert out == {"np_int": 3, "np_float": 0.5, "np_bool": True, "array": [0, 1, 2], "tensor": [[1.0, 2.0]],
                   "dtype": "float32", "device": "cpu", "np_dtype": "int16", "path": "a/b.nii.gz", "enum": "osem",
                   "spec": {"algorithm": "osem", "shape": [2, 3], "where": "x"}, "set": [1, 3], "7": "int key",
                   "tuple": [1, [2, 3]]}
    assert type(out["np_int"]) is int and type(out["np_float"]) is float
    assert json.loads(json.dumps(value, default=json_default)) == json.loads(json.dumps(out))
    path = write_json(tmp_path / "v.json", value, sort_keys=True)
    assert json.loads(path.read_text()) == json.loads(json.dumps(out))


def test_non_finite_values_are_kept_or_nulled():
    value = {"a": float("nan"), "b": np.array([1.0, np.inf]), "c": torch.tensor(float("-inf"))}
    assert to_jsonable(value, nonfinite="null") == {"a": None, "b": [1.0, None], "c": None}
    strict = dumps(value, nonfinite="null")
    assert "NaN" not in strict and "Infinity" not in strict
    assert "NaN" in dumps(value)


def test_unknown_types_raise_naming_the_type():
    with pytest.raises(TypeError, match="object"):
        to_jsonable({"x": object()})
    with pytest.raises(TypeError, match="object"):
        json.dumps(object(), default=json_default)
    with pytest.raises(ValueError):
        to_jsonable(1.0, nonfinite="zero")
