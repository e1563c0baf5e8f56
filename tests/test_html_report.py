"""claims-report.html: one self-contained page (figures inline, verdict colours), checked in a real browser."""
import base64
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from rsi_core.harness.plugin import attach
from rsi_core.report.claims_report import remove_report, write_report
from rsi_core.report.entry import ClaimEntry
from rsi_core.report.html import VERDICT_COLOURS

PROV = {"model": "resnet18", "weights": "random:0", "profile": "smoke", "fz": {"steps": 24}}


def entries(folder):
    """Three claims, one per decisive colour and one inconclusive, the first with a figure."""
    Image.fromarray(np.full((40, 60, 3), (10, 120, 200), np.uint8)).save(folder / "fig2-a.png")
    base = {"paper": "A statement.", "statistic": "a one-sided binomial test", "measured": {"share": 0.5},
            "blocks": {"downsample": ["2.0"]}, "expectation": "observe", "provenance": PROV, "regressions": [],
            "artifacts": []}
    return [ClaimEntry.from_json(e) for e in (
            {**base, "id": "fig2-a", "verdict": "holds", "outcome": "observed", "reason": "9/10 <b>overwrite</b>",
             "artifacts": [str(folder / "fig2-a.png")]},
            {**base, "id": "fig3-b", "verdict": "fails", "outcome": "observed", "reason": "2/10",
             "controls": [{"weights": "random:1", "kind": "random", "value": 0.4, "verdict": "holds"}],
             "beyond_controls": "no"},
            {**base, "id": "fig4-c", "verdict": "inconclusive", "outcome": "inconclusive", "reason": "n too small",
             "regressions": ["share: 0.9 -> 0.2"]})]


def test_report_html_is_one_self_contained_page(tmp_path):
    (tmp_path / "sections").mkdir()
    (tmp_path / "sections" / "strict.md").write_text("## Strict scale test\n\n![counts](strict.png)\n")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "sections" / "strict.png")
    write_report(entries(tmp_path), tmp_path)
    page = (tmp_path / "claims-report.html").read_text()
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)          # nothing outside the file
    pngs = [base64.b64decode(p) for p in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]
    assert pngs == [(tmp_path / "fig2-a.png").read_bytes(), (tmp_path / "sections" / "strict.png").read_bytes()]
    assert "## Strict scale test" in page
    for colour in ("holds", "fails", "inconclusive"):
        assert f'style="background:{VERDICT_COLOURS[colour]}">{colour}</td>' in page
    assert "9/10 &lt;b&gt;overwrite&lt;/b&gt;" in page and "<b>overwrite</b>" not in page   # escaped
    assert "a one-sided binomial test" in page and "random:1" in page and "share: 0.9 -&gt; 0.2" in page
    assert remove_report(tmp_path)[-1].name == "claims-report.html" and not (tmp_path / "claims-report.html").exists()


class Item:
    def __init__(self):
        self.user_properties = []


class Rep:
    pass


def test_a_claims_test_carries_its_numbers_and_figure(tmp_path):
    """junit properties always; pytest-html's extras (its section and the figure) when installed."""
    pytest.importorskip("pytest_html")
    entry = entries(tmp_path)[0]
    item, rep = Item(), Rep()
    attach(item, rep, entry)
    props = dict(item.user_properties)
    assert props["rsi_verdict"] == "holds" and props["rsi_statistic"] == "a one-sided binomial test"
    assert props["rsi_figure"] == entry.artifacts[0]
    kinds = [(x["format_type"], x["name"]) for x in rep.extras]
    assert kinds == [("html", None), ("image", "fig2-a.png")]
    assert "a one-sided binomial test" in rep.extras[0]["content"] and "data:image" not in rep.extras[0]["content"]


def screenshot(page, out, tmp_path):
    """``page`` in headless Chromium, 1200 x 900, as PNG ``out``."""
    subprocess.run([shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1200,900",
                    f"--screenshot={out}", page.as_uri()], check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(out).convert("RGB"))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_chromium_shows_the_verdict_table_in_its_colours(tmp_path):
    write_report(entries(tmp_path), tmp_path)
    shot = screenshot(tmp_path / "claims-report.html", tmp_path / "shot.png", tmp_path)
    assert shot.shape[:2] == (900, 1200)

    def rows_of(colour):
        rgb = tuple(int(VERDICT_COLOURS[colour][i:i + 2], 16) for i in (1, 3, 5))
        hit = np.all(np.abs(shot.astype(int) - rgb) <= 2, axis=2)
        return np.flatnonzero(hit.sum(axis=1) > 20), hit.sum()
    rows = {v: rows_of(v) for v in ("holds", "fails", "inconclusive")}
    assert all(n > 500 for _, n in rows.values()), {v: n for v, (_, n) in rows.items()}   # three coloured cells
    tops = [r[0] for r, _ in rows.values()]
    assert tops == sorted(tops) and tops[0] < 450     # one row per claim, in order, on the first screen
    assert rows_of("error")[1] == 0                   # no colour without its verdict


def test_without_pytest_html_a_claims_test_still_carries_its_properties(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pytest_html", None)   # import pytest_html raises ImportError
    item, rep = Item(), Rep()
    attach(item, rep, entries(tmp_path)[1])
    assert dict(item.user_properties)["rsi_verdict"] == "fails" and not hasattr(rep, "extras")


def test_an_image_grid_is_embedded_as_jpeg_a_plot_as_its_png(tmp_path):
    """FZ grids are noise-like pixels (a smoke run's fig8 PNG: 2.6 MB): the page embeds them as
    JPEG, far smaller, while a plot keeps its exact PNG."""
    noise = np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "fig8-grid.png")
    e = entries(tmp_path)
    e[0].artifacts.append(str(tmp_path / "fig8-grid.png"))
    write_report(e, tmp_path)
    page = (tmp_path / "claims-report.html").read_text()
    jpegs = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    pngs = [base64.b64decode(p) for p in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]
    assert len(jpegs) == 1 and len(base64.b64decode(jpegs[0])) < (tmp_path / "fig8-grid.png").stat().st_size / 2
    assert (tmp_path / "fig2-a.png").read_bytes() in pngs
