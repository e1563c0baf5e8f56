"""pytest harness for ``pytest claims``: options, the ``claim`` marker, the ``rsi_claims`` fixture, report.

A claim test reads ``rsi_claims.check(claim_fn)``: the fixture evaluates the claim function on the
tested ``Study`` (and FZ readings, seeds, controls when asked), writes ``artifacts/claims/<id>.json``
and turns the verdict into the test's outcome against the expectation for this model. Fixtures
build the model, the FZ bank and the natural-image tables lazily through the cache, so
pytest-xdist workers share work instead of repeating it. At session end the controller writes
``claims-report.md`` and ``claims-report.json`` from the per-claim JSON every worker wrote, or
removes a previous run's report when no claim ran.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rsi_core.model.load import WeightsUnavailable


def pytest_addoption(parser):
    """The run's options, from the one table (``rsi_core.harness.options``); values are parsed and
    checked in ``pytest_configure``, so a bad one is a usage error before collection."""
    from rsi_core.harness.options import OPTIONS, RUN_OPTIONS
    g = parser.getgroup("rsi", "rsi: paper claims")
    for name in RUN_OPTIONS:
        opt = OPTIONS[name]
        if opt.flag:
            g.addoption(f"--{name}", action="store_true", help=opt.full_help())
        else:
            g.addoption(f"--{name}", action="append" if opt.repeat else "store", metavar=opt.shown_metavar(),
                        default=[] if opt.repeat else opt.default_value(), help=opt.full_help())


class Checked:
    """``rsi run``'s plugin: the options it already checked (and the model it loaded), so the
    in-process pytest does not check them again."""

    def __init__(self, values: dict, model):
        self.values, self.model = values, model


def _claims_run(config) -> bool:
    return any(part.startswith("claims") for a in config.args for part in Path(str(a)).parts)


def _values(config) -> dict:
    return getattr(config, "_rsi_values", None) or {}


def _device(config) -> str:
    from rsi_core.model.device import resolve_device  # under xdist: this worker's own GPU
    return resolve_device(_values(config).get("device"))


def _profile(config) -> str:
    from rsi_core.measure.profiles import default_profile
    return _values(config).get("profile") or default_profile(_device(config))


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config):
    config.addinivalue_line("markers", "claim(id): a paper claim, identified by its SPEC id")
    _check_options(config)
    from rsi_core.fz.bank import FZBank
    FZBank.key_device = _values(config).get("fz-device")  # issue 31: another device's bank, read only
    FZBank.cached_only = bool(_values(config).get("require-cached"))  # issue 31: this process renders no FZ
    if FZBank.cached_only:
        if _claims_run(config) and not _is_worker(config) and not config.option.collectonly:
            _require_cached(config)
    if _is_worker(config):  # xdist workers share the cores: oversubscribed OpenMP threads spin
        import torch
        workers = int(config.workerinput.get("workercount", 1))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    artifacts = config.getoption("--artifacts-dir", None)
    if not _is_worker(config) and artifacts:
        shutil.rmtree(Path(artifacts) / "claims", ignore_errors=True)
    if artifacts and _claims_run(config) and not config.option.collectonly:
        from rsi_core.harness.live import progress_folder
        from rsi_core.model import progress  # this process's counters, for the controller's live line
        folder = progress_folder(artifacts)
        if not _is_worker(config):
            shutil.rmtree(folder, ignore_errors=True)
            config.pluginmanager.register(ClaimsProgress(config), "rsi-progress")
        progress.attach(folder / f"{config.workerinput['workerid'] if _is_worker(config) else 'main'}.json")


def pytest_unconfigure(config):
    from rsi_core.model import progress
    progress.detach()  # after an in-process run (rsi run) the process's work reports to no stale file


def _check_options(config) -> None:
    """Every option parsed; on the controller of a claims run also checked (files, folders, images,
    device, the weights loaded once): a bad value is one usage-error line (exit 4) before any work."""
    from rsi_core.harness import options
    raw = {name: config.getoption(f"--{name}") for name in options.RUN_OPTIONS}
    config._rsi_model = None
    try:
        config._rsi_values = options.parse(raw)
        if _claims_run(config) and not _is_worker(config) and not config.option.help:
            pre = next((p for p in config.pluginmanager.get_plugins() if isinstance(p, Checked)), None)
            load = not config.option.collectonly  # listing tests loads (or downloads) no weights
            config._rsi_values, config._rsi_model = (pre.values, pre.model) if pre else options.check(config._rsi_values,
                                                                                                        load=load)
    except options.OptionError as exc:
        raise pytest.UsageError(str(exc)) from None


def _require_cached(config) -> None:
    """--require-cached: the bank checked against the run's plan before any work; a missing FZ
    is one usage-error line with the count and the ``rsi fz --unit`` command that renders them."""
    from rsi_core.harness.plan import Banks, for_run, unit_command
    opts = _options(config)
    if config._rsi_model is None:
        return  # weights unavailable offline: the run says so (every claim skipped)
    study, plan = for_run(config._rsi_model.to(opts["device"]), opts, progress=False)
    missing = Banks(study, plan).missing()
    if missing:
        n = sum(len(g) for _, g in missing)
        raise pytest.UsageError(
            f"--require-cached: {n} of the plan's {plan.total} FZs are not in the cache {study.cache.root} "
            f"({len(missing)} of {len(plan.units)} units, e.g. unit {missing[0][0].index}: {missing[0][0].tap} of "
            f"{missing[0][0].bank.label()}); render them with: {unit_command(opts)}")


def pytest_generate_tests(metafunc):
    """A claim test's id carries its SPEC id (``test_robust[fig7-robust]``): ``-k fig7`` selects it."""
    mark = metafunc.definition.get_closest_marker("claim")
    if mark and mark.args and "rsi_claim_id" in metafunc.fixturenames:
        metafunc.parametrize("rsi_claim_id", [mark.args[0]], ids=[mark.args[0]])


def pytest_report_header(config):
    if not _claims_run(config):
        return None
    lines = [f"rsi: model {config.getoption('--model')}, weights {config.getoption('--weights')}, "
             f"profile {_profile(config)} on {_device(config)}, artifacts in {config.getoption('--artifacts-dir')}"]
    if config.option.collectonly:  # issue 31: the plan's totals, as rsi plan and rsi run --dry-run print them
        lines.append(_plan_totals(config))
    from rsi_core.model.load import weights_missing  # realjob (issue 9): say up front why claims may all skip
    missing = weights_missing(config.getoption("--model"), config.getoption("--weights"))
    if missing:
        lines.append(f"rsi: WEIGHTS NOT FOUND: {missing}")
    head = getattr(getattr(config, "_rsi_model", None), "rsi_head_note", None)  # a fine-tune's other classifier
    if head:
        lines.append(f"rsi: {head}")
    live = config.pluginmanager.get_plugin("rsi-progress")
    if live is not None and not missing:
        lines.append(live.start())
    return lines


def _plan_totals(config) -> str:
    """The work plan's totals line from the model's architecture (listing loads no weights: a
    random initialization has the same blocks, taps and channels)."""
    from rsi_core.harness.plan import for_run
    from rsi_core.model.load import load_model
    opts = _options(config)
    try:  # planted networks carry their own channel lists: built (cheap); any other weights: the architecture
        weights = opts["weights"] if str(opts["weights"]).startswith(("random:", "planted:")) else "random:0"
        model = load_model(opts["model"], weights, "cpu")
        model.rsi_weights = opts["weights"]  # the controls are named after the tested weights
        return for_run(model, opts, progress=False)[1].totals()
    except Exception as exc:  # listing tests never fails for the plan
        return f"rsi: no plan ({type(exc).__name__}: {exc})"


def _options(config) -> dict:
    """The run's checked option values, the device and profile resolved."""
    return {**_values(config), "device": _device(config), "profile": _profile(config)}


def build_study(model, options: dict):
    """The tested Study of a run (not yet prepared)."""
    from rsi_core.cache import Cache
    from rsi_core.measure.profiles import get_profile
    from rsi_core.measure.study import Study
    from rsi_core.model.images import ImageSet
    return Study(model, get_profile(options["profile"]), Cache(options["cache-dir"]),
                 images=ImageSet.from_dir(options["images"]), device=options["device"],
                 antialias=options["antialias"], jitter_table=options["jitter-table"],
                 fz_target="as-run" if options["fz-target"] == "as-run" else "as-written",  # render one bank only
                 lists=getattr(model, "rsi_lists", None))  # a planted case's own lists (planted-claims)


class ClaimsProgress:
    """The controller's side of a claims run's progress: the plan (``start``, in the header),
    the live line (``rsi_core.harness.live``), each claim's verdict as its test reports."""

    def __init__(self, config):
        self.config, self.live = config, None

    def start(self) -> str:
        from rsi_core.harness.controls import default_controls
        from rsi_core.harness.live import LiveLine, plan_run, progress_folder
        from rsi_core.model.load import load_model
        opts = _options(self.config)
        try:
            model = self.config._rsi_model  # loaded and verified by the options' check
            model = model.to(opts["device"]) if model is not None else load_model(opts["model"], opts["weights"],
                                                                                    opts["device"])
            study = build_study(model, opts)
            controls = default_controls(opts["profile"]) if opts["controls"] is None else opts["controls"]
            plan = plan_run(study, opts["fz-target"], opts["fz-seeds"], controls)
        except Exception as exc:  # the tests report what is wrong; the header says why there is no plan
            return f"rsi: no plan ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        n = self.config.getoption("numprocesses", None)
        workers = n if isinstance(n, int) and n > 0 else 1
        tw = self.config.pluginmanager.get_plugin("terminalreporter")._tw
        try:  # the terminal itself: capture redirects descriptor 1 while a test runs, not a copy of it
            out = os.fdopen(os.dup(tw._file.fileno()), "w", buffering=1)
        except (AttributeError, OSError, ValueError):
            out = None
        self.live = LiveLine(tw, progress_folder(opts["artifacts-dir"]), plan, workers, out=out).run()
        return plan.describe(workers)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report):
        claim = dict(report.user_properties).get("rsi_claim")
        if not claim or report.when == "teardown" or (report.when == "setup" and report.passed):
            return
        from rsi_core.harness.live import verdict_line
        path = Path(self.config.getoption("--artifacts-dir")) / "claims" / f"{claim}.json"
        try:
            text = verdict_line(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError):
            text = f"rsi: {claim}: {report.outcome}"
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.live is not None:
            self.live.above(text)
        elif reporter is not None:  # no plan (weights missing): the verdicts still show
            reporter.write_line(text)

    def pytest_sessionfinish(self):
        from rsi_core.harness.live import progress_folder
        if self.live is not None:
            self.live.stop()
            self.live = None
        shutil.rmtree(progress_folder(self.config.getoption("--artifacts-dir")), ignore_errors=True)


def pytest_collection_modifyitems(items):
    """A claim test's id travels with its reports (``user_properties``, junit properties): the
    controller names the claim whose test reported."""
    for item in items:
        mark = item.get_closest_marker("claim")
        if mark is not None:
            item.user_properties.append(("rsi_claim", mark.args[0]))


@pytest.fixture(scope="session")
def rsi_options(request):
    return _options(request.config)


@pytest.fixture(scope="session")
def rsi_model(rsi_options, request):
    from rsi_core.model.load import load_model
    checked = request.config._rsi_model  # loaded and verified by the options' check (this process)
    if checked is not None:
        return checked.to(rsi_options["device"])
    try:
        return load_model(rsi_options["model"], rsi_options["weights"], rsi_options["device"])
    except WeightsUnavailable as exc:
        pytest.skip(f"weights unavailable: {exc}")


@pytest.fixture(scope="session")
def rsi_study(rsi_model, rsi_options):
    study = build_study(rsi_model, rsi_options)
    study.prepare()
    return study


@pytest.fixture(scope="session")
def rsi_harness(rsi_study, rsi_options):
    """The run's shared state: study, expectations, baseline, FZ readings/seeds, controls."""
    from rsi_core.harness import expectations
    from rsi_core.harness.claims import Harness
    from rsi_core.harness.controls import default_controls
    from rsi_core.report.claims_report import load_baseline
    prov = rsi_study.describe()
    n_controls = rsi_options["controls"]
    return Harness(rsi_study, rsi_options["artifacts-dir"],
                   expectations.for_run(prov["model"], prov["weights"], rsi_options["expectations"]),
                   load_baseline(rsi_options["baseline"]) if rsi_options["baseline"] else None,
                   fz_target=rsi_options["fz-target"], fz_seeds=rsi_options["fz-seeds"],
                   controls=default_controls(rsi_options["profile"]) if n_controls is None else n_controls)


class ClaimCheck:
    """``rsi_claims``: ``check(claim_fn, figure=None)`` evaluates the claim of the calling test
    (its ``claim`` marker names the SPEC id) and asserts: fail when an expected claim does not
    hold or regressed against the baseline, xfail when it fails as expected, skip when
    inconclusive or n/a (with the reason); observed claims never fail. ``figure(study, path, measured, controls) -> [paths]``
    draws the claim's figure from what the study computed. The per-channel quantities a claim
    function reads (``@reads(...)``, ``rsi_core.verdicts.regression``) go into its entry for
    ``--baseline``'s paired check."""

    def __init__(self, claim_id: str, harness):
        self.claim_id, self.harness = claim_id, harness

    def check(self, claim_fn, figure=None) -> dict:
        claim_id = self.claim_id
        entry = self.harness.run(claim_id, claim_fn, figure)
        message = (f"{claim_id}: {entry.get('label') or entry['verdict']} (expected: {entry['expectation']}). "
                   f"Measured: {entry['reason']}. Paper: {entry['paper']}. Statistic: {entry['statistic']}")
        if entry["regressions"]:
            pytest.fail(f"{claim_id} changed against the baseline beyond FZ seed noise: {'; '.join(entry['regressions'])}. {message}")
        if entry["outcome"] == "inconclusive":
            pytest.skip(f"inconclusive on profile {self.harness.study.profile.name}: {message}")
        if entry["outcome"] == "n/a":
            pytest.skip(f"{claim_id} does not apply to {self.harness.study.describe()['model']}: {entry['reason']}")
        if entry["outcome"] == "fails as expected":
            pytest.xfail(message)
        assert entry["outcome"] in ("pass", "observed"), message
        return entry


@pytest.fixture
def rsi_claim_id(request):
    """The calling test's SPEC id (its ``claim`` marker); parametrized into the test id."""
    mark = request.node.get_closest_marker("claim")
    if mark is None:
        raise pytest.UsageError(f"{request.node.nodeid}: mark the test @pytest.mark.claim(<SPEC id>)")
    return mark.args[0]


@pytest.fixture
def rsi_claims(rsi_claim_id, rsi_harness):
    return ClaimCheck(rsi_claim_id, rsi_harness)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A claim whose test errored before its claim function ran (a fixture, the model, the FZ
    bank) still gets an ``error`` entry in the report, with the exception. Every claim's entry
    is attached to its test (``attach``)."""
    outcome = yield
    rep = outcome.get_result()
    mark = item.get_closest_marker("claim")
    if mark is None or not item.config.getoption("--artifacts-dir", None) or rep.when == "teardown":
        return
    folder = Path(item.config.getoption("--artifacts-dir"))
    path = folder / "claims" / f"{mark.args[0]}.json"
    if rep.failed and not path.exists():
        from rsi_core.harness.claims import error_entry, write_entry
        text = call.excinfo.exconly() if call.excinfo else str(rep.longrepr).splitlines()[-1]
        prov = {"model": item.config.getoption("--model"), "weights": item.config.getoption("--weights")}
        write_entry(folder, error_entry(mark.args[0], "", text, prov))
    if (rep.when == "call" or not rep.passed) and path.exists():
        attach(item, rep, json.loads(path.read_text()))


#: the entry's fields a claim's test carries as junit properties (``user_properties``)
PROPERTIES = ("verdict", "label", "expectation", "outcome", "value", "reason", "statistic")


def attach(item, rep, entry: dict) -> None:
    """The claim's verdict and numbers as junit properties (``rsi_verdict``, ..., one
    ``rsi_figure`` per figure), and with pytest-html its section of the report and its figures
    as the test's extras (``pytest claims --html=report.html``)."""
    item.user_properties += [(f"rsi_{k}", entry[k]) for k in PROPERTIES if entry.get(k) is not None]
    item.user_properties += [("rsi_figure", a) for a in entry.get("artifacts") or []]
    try:
        from pytest_html import extras
    except ImportError:  # pytest-html is optional: the properties and claims-report.html remain
        return
    import base64

    from rsi_core.report.html import claim_section
    rep.extras = getattr(rep, "extras", []) + [extras.html(claim_section(entry, figures=False))] + [
        extras.png(base64.b64encode(Path(a).read_bytes()).decode(), Path(a).name)
        for a in entry.get("artifacts") or [] if Path(a).is_file() and a.endswith(".png")]


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if _is_worker(config) or not config.getoption("--artifacts-dir", None) or config.option.collectonly:
        return
    from rsi_core.report.claims_report import collect, remove_report, write_report
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter and _weights_skip_reasons(reporter) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # nothing was verified: not a success
    folder = Path(config.getoption("--artifacts-dir"))
    entries = collect(folder)
    if entries:
        md, _ = write_report(entries, folder)
        config._rsi_report = f"{md} (rewritten: {len(entries)} claims)"
        config._rsi_entries = entries
    elif any(Path(str(a)).name == "claims" or "claims" in Path(str(a)).parts for a in config.args):
        gone = remove_report(folder)
        config._rsi_report = ("no claim ran: " + (f"removed the previous report {', '.join(map(str, gone))}"
                                                  if gone else "no report written"))


class FailWhenNothingRan:
    """``rsi run``'s extra plugin (realjob, issue 9): a session in which claims were skipped for
    unavailable weights and nothing else ran exits 1, so scripts see that nothing was checked."""

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        ran = any(tr.stats.get(k) for k in ("passed", "failed", "xfailed", "xpassed", "error")) if tr else True
        if tr and not ran and _weights_skip_reasons(tr):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
    for e in getattr(config, "_rsi_entries", []):
        if e.get("label") == "holds, not beyond controls":
            terminalreporter.write_line(f"{e['id']}: holds, not beyond controls (a control model reaches "
                                        f"its value {e.get('value')})", yellow=True)
        if e["verdict"] == "error":
            terminalreporter.write_line(f"{e['id']}: ERROR {e.get('error', e['reason'])}", red=True)
    skipped = _weights_skip_reasons(terminalreporter)  # realjob (issue 9): loud without -rs
    if skipped:
        terminalreporter.write_sep("!", f"NO CLAIM WAS CHECKED: {len(skipped)} claims skipped, weights unavailable",
                                   red=True, bold=True)
        reason = skipped[0].split("weights unavailable: ", 1)[-1]
        terminalreporter.write_line(reason)
        terminalreporter.write_line("Fix: supply the weights as said above, then run again; "
                                    "this run verified nothing about the paper's claims.", red=True)
