"""pytest harness for ``pytest claims``: options, the ``claim`` marker, session fixtures, report.

Fixtures build the model, the FZ bank and the natural-image tables lazily through the cache, so
pytest-xdist workers share work instead of repeating it. At session end the controller writes
``claims-report.md`` and ``claims-report.json`` from the per-claim JSON every worker wrote.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .models import DEFAULT_MODEL, DEFAULT_WEIGHTS, WeightsUnavailable


def claim(claim_id: str):
    """Mark a test as the check of one SPEC claim; its test id is the claim id."""
    def mark(fn):
        return pytest.mark.claim(claim_id)(pytest.mark.parametrize("claim_id", [claim_id])(fn))
    return mark


def pytest_addoption(parser):
    g = parser.getgroup("rsi", "rsi: paper claims")
    g.addoption("--model", default=DEFAULT_MODEL, help="torchvision ResNet to test (default resnet18)")
    g.addoption("--weights", default=os.environ.get("RSI_WEIGHTS", DEFAULT_WEIGHTS),
                help="IMAGENET1K_V1 (torchvision cache), a .pth file, or random:SEED (a control)")
    g.addoption("--images", default=None,
                help="natural-image folder (ImageNet val layout); default $RSI_IMAGES, else the 1,000-image stand-in")
    g.addoption("--profile", default=None, choices=["paper", "quick", "smoke"],
                help="paper: all channels, 2,560 steps; quick/smoke: sampled channels, fewer steps "
                     "(default: paper on CUDA, quick on CPU)")
    g.addoption("--device", default=None, help="cpu or cuda (default: cuda when available)")
    g.addoption("--cache-dir", default=None, help="cache folder (default $RSI_CACHE or ~/.cache/rsi)")
    g.addoption("--artifacts-dir", default="artifacts", help="where figures, numbers and the report go")
    g.addoption("--baseline", default=None, help="claims-report.json of an earlier run: flag regressions")
    g.addoption("--antialias", action="store_true", help="antialias S_inv's shrink (today's torchvision default)")
    g.addoption("--jitter-table", default="paper", help="paper or authors-script")


def _device(config) -> str:
    from .device import resolve_device  # under xdist: this worker's own GPU
    return resolve_device(config.getoption("--device"))


def _profile(config) -> str:
    from .profiles import default_profile
    return config.getoption("--profile") or default_profile(_device(config))


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config):
    config.addinivalue_line("markers", "claim(id): a paper claim, identified by its SPEC id")
    if _is_worker(config):  # xdist workers share the cores: oversubscribed OpenMP threads spin
        import torch
        workers = int(config.workerinput.get("workercount", 1))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    if not _is_worker(config) and config.getoption("--artifacts-dir", None):
        shutil.rmtree(Path(config.getoption("--artifacts-dir")) / "claims", ignore_errors=True)


def pytest_report_header(config):
    if not any(part.startswith("claims") for a in config.args for part in Path(str(a)).parts):
        return None
    lines = [f"rsi: model {config.getoption('--model')}, weights {config.getoption('--weights')}, "
             f"profile {_profile(config)} on {_device(config)}, artifacts in {config.getoption('--artifacts-dir')}"]
    from .models import weights_missing  # realjob (issue 9): say up front why claims may all skip
    missing = weights_missing(config.getoption("--model"), config.getoption("--weights"))
    if missing:
        lines.append(f"rsi: WEIGHTS NOT FOUND: {missing}")
    return lines


@pytest.fixture(scope="session")
def rsi_options(request):
    c = request.config
    return {k: c.getoption(f"--{k}") for k in
            ("model", "weights", "images", "cache-dir", "artifacts-dir", "baseline", "antialias", "jitter-table")} | {
        "device": _device(c), "profile": _profile(c)}


@pytest.fixture(scope="session")
def rsi_model(rsi_options, request):
    from .models import load_model
    try:
        return load_model(rsi_options["model"], rsi_options["weights"], rsi_options["device"])
    except WeightsUnavailable as exc:
        pytest.skip(f"weights unavailable: {exc}")


@pytest.fixture(scope="session")
def rsi_study(rsi_model, rsi_options):
    from .analysis import Study
    from .cache import Cache
    from .images import ImageSet
    from .profiles import get_profile
    study = Study(rsi_model, get_profile(rsi_options["profile"]), Cache(rsi_options["cache-dir"]),
                  images=ImageSet.from_dir(rsi_options["images"]), device=rsi_options["device"],
                  antialias=rsi_options["antialias"], jitter_table=rsi_options["jitter-table"])
    study.prepare()
    return study


@pytest.fixture(scope="session")
def rsi_baseline(rsi_options):
    from .report import load_baseline
    return load_baseline(rsi_options["baseline"]) if rsi_options["baseline"] else None


@pytest.fixture
def check_claim(rsi_study, rsi_options, rsi_baseline):
    """Evaluate a claim, save its artifacts, and turn its verdict into a test outcome:
    fail when an expected claim does not hold or regressed against the baseline, xfail when it
    fails as expected, skip when inconclusive; observed claims never fail."""
    from .claims import check

    def run(claim_id: str) -> dict:
        entry = check(claim_id, rsi_study, rsi_options["artifacts-dir"], rsi_baseline)
        message = (f"{claim_id}: {entry['verdict']} (expected: {entry['expectation']}). Measured: "
                   f"{entry['reason']}. Paper: {entry['paper']}. Statistic: {entry['statistic']}")
        if entry["regressions"]:
            pytest.fail(f"{claim_id} regressed against the baseline: {'; '.join(entry['regressions'])}. {message}")
        if entry["outcome"] == "inconclusive":
            pytest.skip(f"inconclusive on profile {rsi_options['profile']}: {message}")
        if entry["outcome"] == "fails as expected":
            pytest.xfail(message)
        assert entry["outcome"] in ("pass", "observed"), message
        return entry

    return run


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if _is_worker(config) or not config.getoption("--artifacts-dir", None):
        return
    from .report import collect, write_report
    folder = Path(config.getoption("--artifacts-dir"))
    entries = collect(folder)
    if entries:
        md, _ = write_report(entries, folder)
        config._rsi_report = md


def _weights_skip_reasons(terminalreporter) -> list[str]:
    reasons = []
    for rep in terminalreporter.stats.get("skipped", []):
        text = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        if "weights unavailable" in text:
            reasons.append(text)
    return reasons


def pytest_terminal_summary(terminalreporter, config):
    md = getattr(config, "_rsi_report", None)
    if md:
        terminalreporter.write_sep("-", f"rsi claims report: {md}")
    skipped = _weights_skip_reasons(terminalreporter)  # realjob (issue 9): loud without -rs
    if skipped:
        terminalreporter.write_sep("!", f"NO CLAIM WAS CHECKED: {len(skipped)} claims skipped, weights unavailable",
                                   red=True, bold=True)
        reason = skipped[0].split("weights unavailable: ", 1)[-1]
        terminalreporter.write_line(reason)
        terminalreporter.write_line("Fix: supply the weights as said above, then run again; "
                                    "this run verified nothing about the paper's claims.", red=True)
