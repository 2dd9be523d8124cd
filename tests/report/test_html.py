import base64
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from petspect.report import HtmlReport  # noqa: E402


def test_report_is_self_contained_with_figure_and_tables(tmp_path):
    rep = HtmlReport("Test <report>", subtitle="pytest")
    rep.heading("Metrics")
    rep.metrics_table({"gaussian": {"psnr_db": 30.0, "bias": -2.0}, "unet": {"psnr_db": 33.5, "bias": 0.5}},
                      better={"psnr_db": "higher", "bias": "abs-lower"})
    rep.table([{"a": 1, "b": 2.5}], floatfmt=".1f")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    rep.figure(fig, caption="a line")
    path = rep.write(tmp_path / "report" / "index.html")
    text = path.read_text()
    assert "Test &lt;report&gt;" in text  # escaped
    assert "<td><b>33.500</b></td>" in text and "<td><b>0.500</b></td>" in text  # best values bold
    m = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    assert m and base64.b64decode(m.group(1)).startswith(b"\x89PNG")
    assert "http://" not in text and "https://" not in text  # nothing fetched


def test_missing_and_non_finite_values():
    """na_rep replaces NaN, infinities, None and missing keys; numpy numbers are formatted like Python's;
    without na_rep the values are written as they are (the denoising reports' behaviour)."""
    import numpy as np

    from petspect.report import format_number

    rep = HtmlReport("t")
    rep.table([{"m": "a", "x": np.float32(1.23456), "y": float("nan")}, {"m": "b", "x": np.int64(7)}],
              columns=["m", "x", "y"], floatfmt=".3g", na_rep="-")
    assert "<td>a</td><td>1.23</td><td>-</td>" in rep.parts[-1] and "<td>b</td><td>7</td><td>-</td>" in rep.parts[-1]
    rep.table([{"x": float("nan")}, {}], columns=["x"])
    assert "<td>nan</td>" in rep.parts[-1] and "<td></td>" in rep.parts[-1]
    assert format_number(float("inf")) == "-" and format_number(None, na_rep="n/a") == "n/a"
    assert format_number(np.float64(0.000123456), ".2e") == "1.23e-04" and format_number(3) == "3"
