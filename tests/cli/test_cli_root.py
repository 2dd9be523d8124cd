from typer.testing import CliRunner

import petspect
from petspect.cli.main import app

runner = CliRunner()


def test_version_and_help():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and petspect.__version__ in res.output
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "nuclide" in res.output


def test_nuclide_and_material_commands():
    res = runner.invoke(app, ["nuclide", "Lu-177"])
    assert res.exit_code == 0, res.output
    assert "208.37" in res.output and "0.1041" in res.output
    res = runner.invoke(app, ["material", "water", "--energy-kev", "511"])
    assert res.exit_code == 0, res.output
    assert "0.0959" in res.output  # 0.096/cm (docs/REFERENCE.md)


def test_bad_input_gives_clean_error():
    res = runner.invoke(app, ["nuclide", "Xx-1"])
    assert res.exit_code == 2
    assert "unknown radionuclide" in res.output
    assert "Traceback" not in res.output


def test_bad_device_is_rejected():
    from petspect._device import resolve_device
    from petspect.errors import InputError
    import pytest
    import torch

    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(InputError):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(InputError):
            resolve_device("cuda")
