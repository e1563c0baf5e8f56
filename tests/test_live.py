"""Progress of a claims run: the processes' counters, the controller's live line, a real run under -n 2."""
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rsi_core.harness.live import LiveLine, Plan, clock, verdict_line
from rsi_core.model import progress

ROOT = Path(__file__).resolve().parents[1]
try:
    import pytest_html  # noqa: F401
    HTML = True
except ImportError:
    HTML = False


class Writer:
    """A terminal writer that is not a terminal (lines, as CI sees them)."""
    def __init__(self):
        self.out, self.width_of_current_line = "", 0

    def write(self, msg):
        self.out += msg
        self.width_of_current_line = len(self.out) - self.out.rfind("\n") - 1

    def flush(self):
        pass


def test_counters_of_every_process_are_summed_and_written_at_flush(tmp_path, monkeypatch):
    folder = tmp_path / "p"
    monkeypatch.setattr(progress, "_state", {"path": None, "written": 0.0, "counts": dict.fromkeys(progress.KINDS, 0)})
    progress.advance(fzs=3)                      # not attached: counts only, writes nothing
    assert not folder.exists()
    progress.attach(folder / "gw0.json")         # from zero
    progress.advance(fz_steps=5, fzs=1)
    progress.advance(images=50)                  # within EVERY seconds of the last write: not yet on disk
    (folder / "gw1.json").write_text('{"fz_steps": 7, "fzs": 2, "images": 0}')
    progress.flush()
    assert progress.read_all(folder) == {"fz_steps": 12, "fzs": 3, "images": 50}


def test_live_line_counts_done_of_the_plan_and_prints_verdicts_above(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    plan = Plan(requested=12, cached=2, images=100, steps=10, seconds=40.0)
    assert plan.describe(2) == ("rsi: plan: 12 FZs of 10 steps, 2 cached, 10 to render; up to 100 natural images to pass, "
                                "about 0:20 with 2 workers (from a calibration)")
    live = LiveLine(Writer(), folder, plan, workers=2)
    assert not live.tty
    assert re.search(r"FZs 0/10 \(0% of steps\), images 0/100, 0.00 FZ/s, ETA 0:(19|20), elapsed 0:00$", live.text())
    (folder / "gw0.json").write_text('{"fz_steps": 20, "fzs": 2, "images": 0}')
    live.draw()
    (folder / "gw1.json").write_text('{"fz_steps": 30, "fzs": 4, "images": 100}')
    live.draw()
    live.draw()                                  # nothing moved: no new line
    live.above(verdict_line({"id": "fig2-final-block", "verdict": "fails", "expectation": "holds",
                             "outcome": "fail", "reason": "3/6 in [0, 0.25)"}))
    lines = live.tw.out.splitlines()
    assert [re.search(r"FZs (\d+)/10 \((\d+)%", x).groups() for x in lines[:2]] == [("2", "20"), ("6", "50")]
    assert lines[2] == "rsi: fig2-final-block: fails (expected holds: fail) 3/6 in [0, 0.25)"
    assert live.stop() == live.tw.out.splitlines()[-1]
    assert clock(3725) == "1:02:05" and clock(None) == "?"


TINY = '''"""A tinier smoke profile for the progress test: 8 FZ steps, 2 channels per block."""
from rsi_core.measure import profiles
profiles.PROFILES["smoke"] = profiles.Profile("smoke", 8, 2, False, 40)
'''


@pytest.mark.slow
def test_claims_run_under_two_workers_shows_its_progress_advancing(tmp_path):
    """The real job under -n 2 (a planted network, a tinier profile, one claim): the header has
    the plan, the controller prints progress lines that advance, then the claim's verdict; the
    claim's test carries its verdict as junit properties and, in pytest-html's report, its figure."""
    (tmp_path / "tiny_profile.py").write_text(TINY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "OMP_NUM_THREADS": "1",
           "RSI_PROGRESS_SECONDS": "0.5", "RSI_CACHE": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-m", "pytest", "claims", "-p", "tiny_profile", "-n", "2", "-k", "final",
                          "--weights", "planted:final-block-fails", "--profile", "smoke", "-p", "no:cacheprovider",
                          "--artifacts-dir", str(tmp_path / "artifacts"), "--junitxml", str(tmp_path / "junit.xml")]
                         + (["--html", str(tmp_path / "report.html"), "--self-contained-html"] if HTML else []),
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    plan = re.search(r"rsi: plan: (\d+) FZs of 8 steps, 0 cached, (\d+) to render", out)
    assert plan and plan[1] == plan[2] and int(plan[1]) > 0, out
    shown = re.findall(r"rsi: FZs (\d+)/(\d+) \((\d+)% of steps\)", out)
    assert len({(f, s) for f, _, s in shown}) >= 2, out
    assert all(int(t) == int(plan[1]) for _, t, _ in shown), out
    assert re.search(r"rsi: fig2-final-block: fails \(expected observe: observed\)", out), out
    assert f"rsi: rendered {plan[1]} FZs" in out, out
    assert not (tmp_path / "artifacts" / ".progress").exists()
    props = {p.get("name"): p.get("value") for p in ET.parse(tmp_path / "junit.xml").iter("property")}
    assert props["rsi_claim"] == "fig2-final-block" and props["rsi_verdict"] == "fails"
    assert props["rsi_figure"].endswith("fig2-final-block.png")
    assert "fig2-final-block" in (tmp_path / "artifacts" / "claims-report.html").read_text()
    if HTML:
        page = (tmp_path / "report.html").read_text()
        assert "data:image/png;base64," in page and "in [0, 0.25)" in page   # the figure, the claim's section


def test_rsi_fz_plans_on_the_runs_default_profile_and_dry_run_renders_nothing(tmp_path, capsys):
    from rsi_core.harness import cli
    args = ["fz", "--weights", "random:0", "--device", "cpu", "--blocks", "1.1", "--taps", "B",
            "--cache-dir", str(tmp_path)]
    assert cli.main(args + ["--dry-run"]) == 0
    plan = capsys.readouterr().out
    # quick on a CPU, as pytest claims: 16 sampled channels and the paper's named ones, 256 steps
    m = re.fullmatch(r"rsi fz: plan: (\d+) FZs of 256 steps \(profile quick, 1 taps\), 0 cached, (\d+) to render; "
                     r"about (\d+):(\d\d) on cpu \(from a calibration\)\n", plan)
    assert m and m[1] == m[2] and int(m[1]) >= 16 and int(m[3]) * 60 + int(m[4]) > 0, plan
    assert not list(tmp_path.rglob("*.npz"))
    assert cli.main(args + ["--channels", "0-1", "--steps", "2"]) == 0
    assert "rsi fz: plan: 2 FZs of 2 steps" in capsys.readouterr().out
    assert cli.main(args + ["--channels", "0-1", "--steps", "2", "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("rsi fz: plan: 2 FZs of 2 steps (profile quick, 1 taps), 2 cached, "
                                              "0 to render\n")


def test_bank_progress_moves_with_every_step(tmp_path, monkeypatch, model):
    """The counters (and the bar) move with each optimization step, not once per batch."""
    from rsi_core.cache import Cache
    from rsi_core.fz.bank import FZBank
    from rsi_core.fz.render import FZSettings
    seen = []
    monkeypatch.setattr(progress, "advance", lambda **c: seen.append(c))
    FZBank(model, Cache(tmp_path), FZSettings(steps=3), batch_size=2, progress=False).ensure({"1.1.B": [0, 1, 2]})
    assert seen == [{"fz_steps": 2}] * 3 + [{"fzs": 2}] + [{"fz_steps": 1}] * 3 + [{"fzs": 1}]


def test_plan_counts_what_the_run_reads_and_what_is_cached(tmp_path, model, one_thread):
    from dataclasses import replace

    from rsi_core.cache import Cache
    from rsi_core.harness.live import plan_run
    from rsi_core.measure.profiles import get_profile
    from rsi_core.measure.study import Study
    study = Study(model, get_profile("smoke"), Cache(tmp_path), blocks=["1.1"], progress=False)
    plan = plan_run(study)   # images: the activation tables' pass (smoke writes no strict scale section)
    assert (plan.requested, plan.cached, plan.steps, plan.images) == (12, 0, 24, 250) and plan.seconds > 0
    strict = study.variant()
    strict.profile = replace(study.profile, strict_section=True)   # and the strict scale test's (one block)
    assert plan_run(strict).images == 250 + 250
    plan = plan_run(study, "both", fz_seeds=2)   # seeds render each claim's decisive reading: both readings' seeds
    assert plan.requested == 48
    study.bank.ensure({"1.1.B": study.channels("1.1")})
    plan = plan_run(study, fz_seeds=2, controls=1)   # a second seed's 12, a control's 12 (not looked up)
    assert (plan.requested, plan.cached, plan.to_render, plan.unchecked, plan.images) == (36, 6, 30, 12, 500)
    plan = plan_run(study)   # partly cached, no controls: the time of what is left (1.1.B's FZs are cached)
    assert (plan.requested, plan.cached, plan.to_render) == (12, 6, 6) and plan.seconds > 0
