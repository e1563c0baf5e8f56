"""pytest harness for ``pytest claims``: options, the ``claim`` marker, the ``rsi_claims`` fixture, report.

Registered the standard way, as the ``pytest11`` entry point ``rsi_core.harness.plugin`` (a clone
run without installing loads it through the repository's ``conftest.py``), and inert in other
projects' runs: it adds only ``--rsi-*`` options (``--rsi-weights``); the short names of the
claims' command lines (``--weights``, ``--profile``, ...) are added only when pytest is pointed at
the claims (``pytest claims``, ``pytest --pyargs rsi_claims``). A run is a claims run when it
collected a ``claim``-marked test (under xdist the controller, which collects nothing, looks at
the tests the workers collected); only then are the options checked, the model loaded and the
report written. The run's state lives in ``config.stash[STATE]``, its options in one frozen
``RunConfig`` (``rsi_core.harness.options``) resolved once per process: every hook and fixture reads it.

A claim test reads ``rsi_claims.check(claim_fn)``: the fixture evaluates the claim function on the
tested ``Study`` (and FZ readings, seeds, controls when asked), writes ``artifacts/claims/<id>.json``
and turns the verdict into the test's outcome against the expectation for this model. Fixtures
build the model, the FZ bank and the natural-image tables lazily through the cache, so
pytest-xdist workers share work instead of repeating it. At session end the controller writes
``claims-report.md`` and ``claims-report.json`` from the per-claim JSON every worker wrote, or
removes a previous run's report when no claim ran.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: the prefix of the options the plugin adds to every pytest run
PREFIX = "rsi-"


@dataclass
class RunState:
    """What the plugin knows of this run (``config.stash[STATE]``)."""
    run: object = None                          # the RunConfig (checked on the controller, resolved on a worker)
    claims_run: bool = False                    # a claim-marked test was collected
    probed: bool = False                        # (xdist controller) the workers' tests were looked at
    attached: bool = False                      # this process's progress goes to the run's folder
    report: str | None = None                   # the summary's line about the report
    entries: list = field(default_factory=list)


STATE = pytest.StashKey[RunState]()


def state(config) -> RunState:
    if STATE not in config.stash:
        config.stash[STATE] = RunState()
    return config.stash[STATE]


def _dest(name: str) -> str:
    return "rsi_" + name.replace("-", "_")


def _add_options(parser, prefix: str) -> None:
    """The run's options, from the one table (``rsi_core.harness.options``), as ``--{prefix}{name}``;
    values are parsed and checked once a claims run is recognised, before any test runs."""
    from rsi_core.harness.options import OPTIONS, RUN_OPTIONS
    g = parser.getgroup("rsi", "rsi: paper claims (short names where pytest is pointed at the claims)")
    for name in RUN_OPTIONS:
        opt = OPTIONS[name]
        if opt.flag:
            g.addoption(f"--{prefix}{name}", action="store_true", dest=_dest(name), help=opt.full_help(prefix))
        else:
            g.addoption(f"--{prefix}{name}", action="append" if opt.repeat else "store", dest=_dest(name),
                        metavar=opt.shown_metavar(), default=[] if opt.repeat else opt.default_value(),
                        help=opt.full_help(prefix))


def pytest_addoption(parser):
    try:  # the defaults read the environment and the config file (rsi_core.harness.config)
        _add_options(parser, PREFIX)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def add_short_options(parser) -> None:
    """The claims' short option names (``--weights``, ...), once: the claims folder's
    ``conftest.py`` adds them (``pytest claims``), and so does this plugin for ``--pyargs``."""
    from rsi_core.harness.options import RUN_OPTIONS
    group = parser.getgroup("rsi")
    if not any(f"--{RUN_OPTIONS[0]}" in opt.names() for opt in group.options):
        _add_options(parser, "")


def _points_at_claims(arg: str, pyargs: bool) -> bool:
    """Whether a command-line argument names the claims folder or a test in it (a path, or with
    ``--pyargs`` a module)."""
    from rsi_core.harness.expectations import claims_dir
    try:
        folder = claims_dir()
    except FileNotFoundError:
        return False
    target = arg.split("::")[0]
    path = Path(target)
    if pyargs and not path.exists():
        try:
            spec = importlib.util.find_spec(target)
        except (ImportError, ValueError):
            return False
        if spec is None or not spec.origin:
            return False
        path = Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
    path = path.resolve()
    return path == folder or folder in path.parents


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(parser, args):
    """The claims' short option names, only where pytest is pointed at the claims."""
    pyargs = "--pyargs" in args
    if any(_points_at_claims(a, pyargs) for a in args if not a.startswith("-")):
        add_short_options(parser)


class Checked:
    """``rsi run``'s plugin: the ``RunConfig`` it already checked (the model loaded), so the
    in-process pytest does not check the options again."""

    def __init__(self, run):
        self.run = run


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config):
    config.addinivalue_line("markers", "claim(id): a paper claim, identified by its SPEC id")
    pre = next((p for p in config.pluginmanager.get_plugins() if isinstance(p, Checked)), None)
    if pre is not None:  # rsi run checked the options and loaded the model
        state(config).run = pre.run


def pytest_unconfigure(config):
    if state(config).claims_run:  # what the process does after an in-process run renders as usual
        from rsi_core.fz.bank import FZBank
        FZBank.key_device, FZBank.cached_only = None, False
    if state(config).attached:
        from rsi_core.model import progress
        progress.detach()  # after an in-process run (rsi run) the process's work reports to no stale file


def _start_claims_run(config) -> None:
    """A claims run recognised (a claim-marked test collected): its options parsed and, on the
    controller, checked (files, folders, images, device, the weights loaded once), so a bad value
    is one usage-error line (exit 4) before any test runs; the previous run's per-claim files
    removed and this process's progress reported (an xdist worker's from its first claim on: it
    writes nothing before the controller's check)."""
    from rsi_core.harness import options
    st = state(config)
    if st.claims_run:
        return
    if st.run is None:  # the one read of the command line's options
        raw = {name: config.getoption(_dest(name)) for name in options.RUN_OPTIONS}
        try:
            values = options.parse(raw)
            st.run = (options.resolve(values) if _is_worker(config)  # listing tests loads (or downloads) no weights
                      else options.check(values, load=not config.option.collectonly))
        except options.OptionError as exc:
            raise pytest.UsageError(str(exc)) from None
    st.claims_run, run = True, st.run
    from rsi_core.fz.bank import FZBank  # issue 31: another device's bank, read only; --require-cached renders none
    FZBank.key_device, FZBank.cached_only = run.fz_device, bool(run.require_cached)
    if FZBank.cached_only and not _is_worker(config) and not config.option.collectonly:
        _require_cached(config)
    if _is_worker(config):  # xdist workers share the cores: oversubscribed OpenMP threads spin
        import torch
        workers = int(config.workerinput.get("workercount", 1))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
        return
    if run.artifacts:
        shutil.rmtree(run.artifacts / "claims", ignore_errors=True)
    if run.artifacts and not config.option.collectonly:
        from rsi_core.harness.live import progress_folder
        shutil.rmtree(progress_folder(run.artifacts), ignore_errors=True)
        config.pluginmanager.register(ClaimsProgress(config), "rsi-progress")
        _report_progress(config, "main")


def _require_cached(config) -> None:
    """--require-cached: the bank checked against the run's plan before any work; a missing FZ
    is one usage-error line with the count and the ``rsi fz --unit`` command that renders them."""
    from rsi_core.harness.plan import Banks, for_run, unit_command
    run = state(config).run
    if run.loaded is None:
        return  # weights unavailable offline: the run says so (every claim skipped)
    study, plan = for_run(run.loaded.to(run.device), run, progress=False)
    missing = Banks(study, plan).missing()
    if missing:
        (first, _), n = missing[0], sum(len(g) for _, g in missing)
        raise pytest.UsageError(
            f"--require-cached: {n} of the plan's {plan.total} FZs are not in the cache {study.cache.root} "
            f"({len(missing)} of {len(plan.units)} units, e.g. unit {first.index}: {first.tap} of {first.bank.label()}); "
            f"render them with: {unit_command(run)}")


def _plan_totals(config) -> str:
    """The work plan's totals line from the model's architecture (listing loads no weights: a
    random initialization has the same blocks, taps and channels)."""
    from rsi_core.harness.plan import for_run
    from rsi_core.model.anatomy import amend
    from rsi_core.model.load import load_model
    run = state(config).run
    try:  # planted networks carry their own channel lists: built (cheap); any other weights: the architecture
        weights = run.weights if str(run.weights).startswith(("random:", "planted:")) else "random:0"
        model = load_model(run.model, weights, "cpu")
        amend(model, weights=run.weights)  # the controls are named after the tested weights
        return for_run(model, run, progress=False)[1].totals()
    except Exception as exc:  # listing tests never fails for the plan
        return f"rsi: no plan ({type(exc).__name__}: {exc})"


def _report_progress(config, name: str) -> None:
    """This process's work counters go to the run's progress folder, for the controller's live line."""
    from rsi_core.harness.live import progress_folder
    from rsi_core.model import progress
    progress.attach(progress_folder(state(config).run.artifacts) / f"{name}.json")
    state(config).attached = True


def pytest_runtest_setup(item):
    st = state(item.config)
    if st.claims_run and not st.attached and _is_worker(item.config) and st.run.artifacts:
        _report_progress(item.config, item.config.workerinput["workerid"])


def _is_claim(item) -> bool:
    return item.get_closest_marker("claim") is not None


def _node_bases(config) -> list[Path]:
    """Folders a node id's file may be relative to: the rootdir, and the folders of the command
    line's arguments (with ``--pyargs`` a package's node ids are relative to its folder)."""
    bases = [config.rootpath]
    for arg in config.args:
        target = str(arg).split("::")[0]
        path = Path(target)
        if config.option.pyargs and not path.exists():
            try:
                spec = importlib.util.find_spec(target)
            except (ImportError, ValueError):
                continue
            if spec is None or not spec.origin:
                continue
            path = Path(spec.origin)
        bases += [path if path.is_dir() else path.parent, (path if path.is_dir() else path.parent).parent]
    return bases


def _claim_marked(config, nodeids) -> bool:
    """Whether any of the tests ``nodeids`` is marked ``claim``, read from their modules (the
    xdist controller collects nothing). Only a module whose text marks a claim is imported."""
    tests = {}
    for nodeid in nodeids:
        file, _, rest = nodeid.partition("::")
        tests.setdefault(file, set()).add(rest.split("::")[-1].split("[")[0])
    for file, names in tests.items():
        path = next((b / file for b in _node_bases(config) if (b / file).is_file()), config.rootpath / file)
        try:
            if "mark.claim" not in path.read_text():
                continue
        except OSError:
            continue
        spec = importlib.util.spec_from_file_location(f"rsi_probe_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if any(m.name == "claim" for n in names for m in getattr(getattr(module, n, None), "pytestmark", [])):
            return True
    return False


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """The xdist controller's recognition of a claims run: what the first worker collected; its
    plan goes into the terminal (the header was written before any collection)."""
    config = node.config
    st = state(config)
    if st.claims_run or st.probed:
        return
    st.probed = True
    if _claim_marked(config, ids):
        _start_claims_run(config)
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        for line in _header_lines(config):
            reporter.write_line(line)


def pytest_generate_tests(metafunc):
    """A claim test's id carries its SPEC id (``test_robust[fig7-robust]``): ``-k fig7`` selects it."""
    mark = metafunc.definition.get_closest_marker("claim")
    if mark and mark.args and "rsi_claim_id" in metafunc.fixturenames:
        metafunc.parametrize("rsi_claim_id", [mark.args[0]], ids=[mark.args[0]])


def pytest_report_collectionfinish(config, items):
    """The run's header, once its tests are collected (a claims run is known by its tests)."""
    return _header_lines(config) if state(config).claims_run else None


def _header_lines(config) -> list[str]:
    run = state(config).run
    lines = [f"rsi: model {run.model}, weights {run.weights}, "
             f"profile {run.profile.name} on {run.device}, artifacts in {run.artifacts_dir}"]
    from rsi_core.model.load import weights_missing  # realjob (issue 9): say up front why claims may all skip
    missing = weights_missing(run.model, run.weights)
    if missing:
        lines.append(f"rsi: WEIGHTS NOT FOUND: {missing}")
    from rsi_core.harness.claims import natural_images_note  # issue 29: natural-image parts need natural images
    note = natural_images_note(run.profile.name, run.values.get("images"))
    if note:
        lines.append(note)
    from rsi_core.model.anatomy import provenance_of
    head = provenance_of(run.loaded).head if run.loaded is not None else None  # a fine-tune's other classifier
    if head:
        lines.append(f"rsi: {head}")
    if config.option.collectonly:  # issue 31: the plan's totals, as rsi plan and rsi run --dry-run print them
        lines.append(_plan_totals(config))
    live = config.pluginmanager.get_plugin("rsi-progress")
    if live is not None and not missing:
        lines.append(live.start())
    return lines


class ClaimsProgress:
    """The controller's side of a claims run's progress: the plan (``start``, in the header),
    the live line (``rsi_core.harness.live``), each claim's verdict as its test reports."""

    def __init__(self, config):
        self.config, self.live = config, None

    def start(self) -> str:
        from rsi_core.harness.live import LiveLine, plan_run, progress_folder
        from rsi_core.harness.plan import build_study
        from rsi_core.model.load import load_model
        run = state(self.config).run
        try:  # the model loaded and verified by the options' check
            model = run.loaded.to(run.device) if run.loaded is not None else load_model(run.model, run.weights, run.device)
            plan = plan_run(build_study(model, run), run.readings.target, run.fz_seeds, run.controls)
        except Exception as exc:  # the tests report what is wrong; the header says why there is no plan
            return f"rsi: no plan ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        n = self.config.getoption("numprocesses", None)
        workers = n if isinstance(n, int) and n > 0 else 1
        tw = self.config.pluginmanager.get_plugin("terminalreporter")._tw
        try:  # the terminal itself: capture redirects descriptor 1 while a test runs, not a copy of it
            out = os.fdopen(os.dup(tw._file.fileno()), "w", buffering=1)
        except (AttributeError, OSError, ValueError):
            out = None
        self.live = LiveLine(tw, progress_folder(run.artifacts), plan, workers, out=out).run()
        return plan.describe(workers)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report):
        claim = dict(report.user_properties).get("rsi_claim")
        if not claim or report.when == "teardown" or (report.when == "setup" and report.passed):
            return
        from rsi_core.harness.live import verdict_line
        from rsi_core.report.entry import ClaimEntry
        path = ClaimEntry.path(state(self.config).run.artifacts, claim)
        try:
            text = verdict_line(ClaimEntry.read(path).to_json())
        except (OSError, ValueError, KeyError, TypeError):  # no entry, or not one
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
        shutil.rmtree(progress_folder(state(self.config).run.artifacts), ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """A claims run is one that collected a claim (before ``-k`` deselects: a run whose claims were
    all deselected still replaces the previous report). A claim test's id travels with its reports
    (``user_properties``, junit properties): the controller names the claim whose test reported."""
    if any(_is_claim(item) for item in items):
        _start_claims_run(config)
    for item in items:
        mark = item.get_closest_marker("claim")
        if mark is not None:
            item.user_properties.append(("rsi_claim", mark.args[0]))


@pytest.fixture(scope="session")
def rsi_config(request):
    """The run's ``RunConfig`` (``rsi_core.harness.options``): its options resolved and loaded."""
    return state(request.config).run


@pytest.fixture(scope="session")
def rsi_options(rsi_config):
    """The run's options by name, as checked (device, profile and fz-target resolved)."""
    return dict(rsi_config.values)


@pytest.fixture(scope="session")
def rsi_model(rsi_config):
    from rsi_core.model.load import WeightsUnavailable, load_model
    run = rsi_config
    if run.loaded is not None:  # loaded and verified by the options' check (this process)
        return run.loaded.to(run.device)
    try:
        return load_model(run.model, run.weights, run.device)
    except WeightsUnavailable as exc:
        pytest.skip(f"weights unavailable: {exc}")


@pytest.fixture(scope="session")
def rsi_study(rsi_model, rsi_config):
    from rsi_core.harness.plan import build_study
    study = build_study(rsi_model, rsi_config)
    study.prepare()
    return study


@pytest.fixture(scope="session")
def rsi_harness(rsi_study, rsi_config):
    """The run's shared state: study, expectations, baseline, FZ readings/seeds, controls."""
    from rsi_core.harness import expectations
    from rsi_core.harness.claims import Harness
    run, prov = rsi_config, rsi_study.describe()  # a planted network's expectations are its own model's
    return Harness(rsi_study, run.artifacts_dir, expectations.for_run(prov["model"], prov["weights"], run.expectations),
                   run.baseline, fz_target=run.readings.target, fz_seeds=run.fz_seeds, controls=run.controls)


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

    def check(self, claim_fn, figure=None):
        """The claim's ``ClaimEntry`` (``rsi_core.report.entry``), once its outcome is asserted."""
        claim_id = self.claim_id
        entry = self.harness.run(claim_id, claim_fn, figure)
        message = (f"{claim_id}: {entry.label or entry.verdict} (expected: {entry.expectation}). "
                   f"Measured: {entry.reason}. Paper: {entry.paper}. Statistic: {entry.statistic}")
        if entry.regressions:
            pytest.fail(f"{claim_id} changed against the baseline beyond FZ seed noise: {'; '.join(entry.regressions)}. {message}")
        if entry.outcome == "inconclusive":
            pytest.skip(f"inconclusive on profile {self.harness.study.profile.name}: {message}")
        if entry.outcome == "n/a":
            pytest.skip(f"{claim_id} does not apply to {self.harness.study.describe()['model']}: {entry.reason}")
        if entry.outcome == "fails as expected":
            pytest.xfail(message)
        assert entry.outcome in ("pass", "observed"), message
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
    run = state(item.config).run
    if mark is None or run is None or not run.artifacts or rep.when == "teardown":
        return
    from rsi_core.report.entry import ClaimEntry
    path = ClaimEntry.path(run.artifacts, mark.args[0])
    if rep.failed and not path.exists():
        text = call.excinfo.exconly() if call.excinfo else str(rep.longrepr).splitlines()[-1]
        ClaimEntry.failed(mark.args[0], "", text, {"model": run.model, "weights": run.weights}).write(run.artifacts)
    if (rep.when == "call" or not rep.passed) and path.exists():
        attach(item, rep, ClaimEntry.read(path))


#: the entry's fields a claim's test carries as junit properties (``user_properties``)
PROPERTIES = ("verdict", "label", "expectation", "outcome", "value", "reason", "statistic")


def attach(item, rep, claim) -> None:
    """The claim's verdict and numbers as junit properties (``rsi_verdict``, ..., one
    ``rsi_figure`` per figure), and with pytest-html its section of the report and its figures
    as the test's extras (``pytest claims --html=report.html``)."""
    entry = claim.to_json()  # a ClaimEntry
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
    config, st = session.config, state(session.config)
    if _is_worker(config) or not st.claims_run or not st.run.artifacts or config.option.collectonly:
        return
    from rsi_core.report.claims_report import collect, remove_report, write_report
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter and _weights_skip_reasons(reporter) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # nothing was verified: not a success
    folder = st.run.artifacts
    entries = collect(folder)
    if entries:
        md, _ = write_report(entries, folder)
        st.report, st.entries = f"{md} (rewritten: {len(entries)} claims)", entries
    else:
        gone = remove_report(folder)
        st.report = ("no claim ran: " + (f"removed the previous report {', '.join(map(str, gone))}"
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
    md = state(config).report
    if md:
        terminalreporter.write_sep("-", f"rsi claims report: {md}")
    for e in state(config).entries:
        if e.label == "holds, not beyond controls":
            terminalreporter.write_line(f"{e.id}: holds, not beyond controls (a control model reaches "
                                        f"its value {e.value})", yellow=True)
        if e.verdict == "error":
            terminalreporter.write_line(f"{e.id}: ERROR {e.error or e.reason}", red=True)
    skipped = _weights_skip_reasons(terminalreporter)  # realjob (issue 9): loud without -rs
    if skipped:
        terminalreporter.write_sep("!", f"NO CLAIM WAS CHECKED: {len(skipped)} claims skipped, weights unavailable",
                                   red=True, bold=True)
        reason = skipped[0].split("weights unavailable: ", 1)[-1]
        terminalreporter.write_line(reason)
        terminalreporter.write_line("Fix: supply the weights as said above, then run again; "
                                    "this run verified nothing about the paper's claims.", red=True)
