"""``rsi``: the command line. Subcommands: blocks, fz, activations, run, compare, expectations, bench, config, validate.

Every option comes from ``rsi_core.harness.options`` (``rsi run``'s are the table ``pytest claims``
uses) and is checked there before any work: a bad value is one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
from importlib import metadata
from pathlib import Path

from rsi_core.harness import options as opts
from rsi_core.paper import FZ_TARGETS


def cmd_blocks(args) -> int:
    from rsi_core.fz.transform import jitter_of
    from rsi_core.model.anatomy import anatomy_of, canonical_tap, describe_blocks, preprocess_of, tap
    from rsi_core.model.load import load_model
    model = load_model(args.run.model, args.run.weights)
    rows = describe_blocks(model)
    for r in rows:  # the FZ jitter of each tap: the paper's table on resnet18, its rule elsewhere (paper.py)
        for t, v in r["taps"].items():
            v["jitter"] = jitter_of(model, canonical_tap(model, tap(r["block"], t)))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    p = preprocess_of(model)
    print(f"{args.run.model} ({anatomy_of(model).family.name}); preprocessing: mean {p.mean}, std {p.std}, resize {p.resize} "
          f"{p.interpolation}, crop {p.crop} ({p.source})")
    print(f"{'block':6} {'kind':10} {'roles':10} {'ch':>4}  " + "  ".join(f"{t}: size centre RF jitter" for t in "IBO"))
    for r in rows:
        taps = "  ".join(f"{t}: {v['size'][0]:>3} {v['centre'][0]:>3} {v['receptive_field']:>4} {v['jitter']:>3}"
                         for t, v in r["taps"].items())
        print(f"{r['block']:6} {r['kind']:10} {','.join(r['roles']) or '-':10} {r['channels']:>4}  {taps}")
        h = r["hooks"]
        print(f"{'':6} I = {h['I']}; B = {h['B']}; O = {h['O']}; block output = {h['output']}")
    return 0


def cmd_compare(args) -> int:
    from rsi_core.report.universality import differences, read_report, write
    paths = write(args.reports, args.out, args.allow_mixed)
    mixed = differences([read_report(p) for p in args.reports])
    if mixed:
        print(f"rsi compare: MIXED reports compared (--allow-mixed): {'; '.join(mixed)}")
    print("\n".join(map(str, paths)))
    return 0


def _model(args):
    """The model the options' check loaded (moved to the device), or the load's own error."""
    from rsi_core.model.load import load_model
    run = args.run
    return run.loaded.to(run.device) if run.loaded is not None else load_model(run.model, run.weights, run.device)


def _blocks(model, spec: str) -> list:
    from rsi_core.model.anatomy import block_roles, find_block
    names = block_roles(model)["studied"] if spec == "paper" else [b.strip() for b in spec.split(",")]
    try:
        return [find_block(model, b) for b in names]
    except KeyError as exc:
        raise opts.OptionError("blocks", spec, opts.one_line(exc)) from None


def cmd_fz(args) -> int:
    from rsi_core.cache import Cache
    from rsi_core.fz.bank import FZBank
    from rsi_core.fz.export import export_pngs
    from rsi_core.fz.render import FZSettings
    from rsi_core.measure.study import Study
    from rsi_core.model.anatomy import block_of, provenance_of, taps_of
    run, model = args.run, _model(args)
    device = run.device
    if provenance_of(model).head:  # a fine-tune's other classifier: said before any work
        print(f"rsi fz: {provenance_of(model).head}")
    if args.unit:
        return _fz_units(args, model)
    profile = run.profile  # resolved by the options' check as in pytest claims: quick on a CPU
    steps = args.steps or profile.steps
    targets = run.readings.asked  # fz (issue 8): --fz-target both renders each reading (shared entries once)
    blocks = _blocks(model, args.blocks)
    chosen = {}  # --channels, checked against each block before the cache is opened
    for block in blocks if args.channels is not None else ():
        try:
            chosen[block.name] = opts.channels(args.channels, block.channels)
        except ValueError as exc:
            raise opts.OptionError("channels", args.channels, f"{exc} ({block.name})") from None
    banks = [FZBank(model, Cache(run.cache_dir),
                    FZSettings(steps=steps, objective=args.objective, jitter_table=run.jitter_table,
                               crop=not args.no_crop, precision=args.precision, target=target),
                    device=device, batch_size=args.batch_size) for target in targets]
    bank = banks[0]
    if not chosen:  # a run's channels: the profile's, as pytest claims renders them
        studied = Study(model, profile, bank.cache, device=device, blocks=[b.name for b in blocks])
        chosen = {b.name: studied.channels(b.name) for b in blocks}
    requests = {tap: chosen[block_of(tap)] for tap in taps_of([b.name for b in blocks], args.taps)}
    if args.shard:  # realjob (issue 9): this process renders 1/N of the bank into the shared cache
        from rsi_core.fz.shard import parse_shard, shard_requests
        k, n = parse_shard(args.shard)
        from rsi_core.model.anatomy import canonical_tap  # one entry per tensor: 1.1.I and 1.0.O never in two shards
        canonical = {}
        for tap, chans in requests.items():
            canonical.setdefault(canonical_tap(model, tap), []).extend(chans)
        requests = shard_requests(canonical, k, n)
        for bank in banks:
            bank.lock_tag = f"shard{k}of{n}"
    print(fz_plan(banks, requests, profile.name, device))
    if args.dry_run:
        return 0
    from rsi_core.fz.resume import Interrupted, stop_on_signals
    try:  # issue 31: SIGTERM / Ctrl-C checkpoint the batch in flight and stop in one line
        with stop_on_signals():
            for bank in banks:
                bank.ensure(requests)
    except Interrupted as exc:
        return _stopped(exc, bank.cache)
    print(f"FZ bank ready: {sum(map(len, requests.values()))} FZs"
          f"{f' (shard {args.shard})' if args.shard else ''}, {steps} steps, cache {bank.cache.root}")
    if args.export:
        for bank in banks:
            folder = Path(args.export) / bank.settings.target if len(banks) > 1 else args.export
            for tap, chans in requests.items():
                print(export_pngs(bank, tap, chans, folder))
    return 0


def _stopped(exc, cache) -> int:
    """The one line of a render stopped by a signal (``resume.Interrupted``); its exit status."""
    kept = f"its batch at {exc.path}" if exc.path else "no batch state (second signal)"
    print(f"rsi fz: stopped by {exc.signal_name}: finished FZs are in {cache.root}, {kept}; "
          f"run the same command again to resume", file=sys.stderr)
    return exc.exit_code


def _fz_units(args, model) -> int:
    """issue 31: ``rsi fz --unit K/N``: units K, K+N, ... of the run's plan (``rsi plan``), each
    unit's missing FZs rendered without locks; SIGTERM / Ctrl-C checkpoint the batch in flight."""
    from rsi_core.fz.resume import Interrupted, stop_on_signals
    from rsi_core.harness.plan import Banks, for_run, parse_unit
    for name, default in (("blocks", "paper"), ("taps", ["I", "B"]), ("channels", None), ("steps", None),
                          ("objective", "neuron"), ("export", None), ("no_crop", False), ("precision", "fp32")):
        if getattr(args, name) != default:
            raise opts.OptionError("unit", args.unit, f"renders the run's plan: leave out --{name.replace('_', '-')} "
                                   "(the plan's FZs are set by the run options, as in pytest claims)")
    study, plan = for_run(model, args.run, batch_size=args.batch_size)
    k, n = parse_unit(args.unit, len(plan.units))
    units = plan.shard(k, n)
    banks = Banks(study, plan)
    missing = banks.missing(units)
    print(f"{plan.totals()}\nrsi fz: unit {k}/{n}: {len(units)} units, {sum(len(u.channels) for u in units)} FZs, "
          f"{sum(len(g) for _, g in missing)} to render")
    if args.dry_run:
        return 0
    try:
        with stop_on_signals():
            done = banks.render(units)
    except Interrupted as exc:
        return _stopped(exc, study.cache)
    print(f"rsi fz: unit {k}/{n} done: rendered {done} FZs into {study.cache.root}")
    return 0


def cmd_submit(args) -> int:
    """issue 31: ``rsi submit``: the plan's units as a job array, then the claims job."""
    from rsi_core.harness.plan import for_run
    from rsi_core.harness.submit import submit
    plan = for_run(_model(args), args.run, batch_size=args.batch_size, progress=False)[1]
    return submit(dict(args.run.values), len(plan.units), args.tasks, args.executor, args.folder, args.parallel, args.gpus,
                  args.timeout_min, args.partition, args.wait, args.batch_size)


def cmd_plan(args) -> int:
    """issue 31: ``rsi plan``: every FZ a claims run with these options reads, as work units."""
    from rsi_core.fz.bank import FZBank
    from rsi_core.harness.live import clock
    from rsi_core.harness.plan import Banks, dumps, for_run, unit_command
    FZBank.key_device = args.run.fz_device  # another device's bank is looked up
    model = _model(args)
    study, plan = for_run(model, args.run, batch_size=args.batch_size, progress=False)
    missing = {u.index: len(g) for u, g in Banks(study, plan).missing()}
    plan.cached = {u.index for u in plan.units if u.index not in missing}
    if not args.no_estimate:
        plan.seconds = study.bank.costs({u.tap for u in plan.units})
    if args.json:
        print(dumps(plan))
        return 0
    print(plan.totals())
    for u in plan.units:
        est = plan.unit_seconds(u)
        print(f"  unit {u.index:4}: {u.bank.label():40} {u.tap:6} {len(u.channels):4} FZs  "
              f"{'cached' if u.index in plan.cached else f'{missing[u.index]} to render':14}"
              f"{f'  ~{clock(est)} on {study.device}' if est is not None else ''}")
    todo = sum(missing.values())
    total = sum(filter(None, (plan.unit_seconds(u) for u in plan.units if u.index not in plan.cached)))
    print(f"rsi plan: {todo} FZs to render in {len(missing)} units" +
          (f", about {clock(total)} on one {study.device} (from a calibration)" if plan.seconds and todo else "") +
          (f"; render them with: {unit_command(args.run, 1)} "
           "(or --unit K/N per array task)" if todo else ""))
    return 0


def fz_plan(banks, requests: dict, profile: str, device: str) -> str:
    """``rsi fz``'s plan, before any work: FZs asked, cached, to render, and the time of those
    from a short calibration (``FZBank.estimate``)."""
    from rsi_core.harness.live import clock
    asked = sum(len(c) for bank in banks for c in bank.pending(requests, missing_only=False).values())
    pending = [bank.pending(requests) for bank in banks]
    todo = sum(len(c) for p in pending for c in p.values())
    seconds = sum(bank.estimate(p) for bank, p in zip(banks, pending) if p)
    eta = f"; about {clock(seconds)} on {device} (from a calibration)" if todo else ""
    return (f"rsi fz: plan: {asked} FZs of {banks[0].settings.steps} steps (profile {profile}, {len(requests)} taps), "
            f"{asked - todo} cached, {todo} to render{eta}")


def cmd_expectations(args) -> int:
    from rsi_core.harness.expectations import from_report
    print(from_report(args.report), end="")
    return 0


def cmd_activations(args) -> int:
    """realjob (issue 9): the centre tables a researcher takes into their own analysis."""
    from rsi_core.model.activations import save_tables, stream_centre, table_provenance
    from rsi_core.model.anatomy import preprocess_of, taps_of
    from rsi_core.model.images import ImageSet
    model = _model(args)
    images = args.run.images
    if args.limit:
        images = ImageSet(images.root, images.files[:args.limit])
    images = images.with_preprocess(preprocess_of(model))  # the weights' own resizing and normalization
    taps = taps_of([b.name for b in _blocks(model, args.blocks)], [t for t in "IBO" if t in args.taps])
    tables = stream_centre(model, images, taps, device=args.run.device, batch_size=args.batch_size)
    out = save_tables(args.out, tables, images.files, table_provenance(model, images, taps))
    print(f"{out}: {len(taps)} taps x {len(images)} images ({images.kind}); "
          f"np.load(...)['1.1.B'] is [images, channels], row i is files[i]; "
          f"rsi_core.model.activations.load_tables(path) gives (tables, files, provenance dict)")
    return 0


def cmd_run(args) -> int:
    from rsi_core.harness.runner import main as run_main
    if args.dry_run:  # issue 31: the plan's totals, as pytest claims --collect-only prints them
        from rsi_core.harness.plan import for_run
        print(for_run(_model(args), args.run, progress=False)[1].totals())
        return 0
    return run_main(args)


def cmd_bench(args) -> int:
    from rsi_core.fz.bench import main as bench_main
    return bench_main(argparse.Namespace(**{**vars(args), "device": args.run.device}))


def cmd_config(args) -> int:
    """``rsi config``: every run option's resolved value and where it came from."""
    from rsi_core.harness.config import find_file, resolved
    given = {n for n in opts.RUN_OPTIONS if any(a == f"--{n}" or a.startswith(f"--{n}=") for a in args.argv)}
    rows = resolved(args.run.values, given)
    if args.json:
        print(json.dumps({"config_file": str(find_file() or ""), "options": {n: {"value": v, "source": s}
                                                                            for n, v, s in rows}}, default=str))
        return 0
    print(f"config file: {find_file() or 'none (rsi.toml, or [tool.rsi] in pyproject.toml, from here upward)'}")
    for name, value, source in rows:
        print(f"  --{name:14} {value!s:40} {source}")
    return 0


def cmd_validate(args) -> int:
    if args.calibration:  # the decision rules' operating characteristic, by simulation (no FZ)
        from rsi_core.harness.calibrate import main as calibration_main
        return calibration_main(args)
    args.draws = args.draws or 5
    from rsi_core.harness.claims import claim_functions
    if args.regression:  # the paired regression check on a planted pair, and its false-alarm rate
        from rsi_core.planted.regression import main as regression_main
        return regression_main(args, claim_functions)
    if args.claims:  # planted-claims helper: every claim on planted networks with known verdicts
        from rsi_core.planted.validate_claims import main as claims_main
        return claims_main(args, claim_functions)
    from rsi_core.planted.validate import main as validate_main
    return validate_main(args, claim_functions)



class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``rsi fz: error: argument --steps: ... (see rsi fz --help)``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command(sub, name: str, summary: str, description: str, examples: list[str], func, load: bool = True,
             dirs: tuple = (), files: tuple = ()):
    """A subcommand with its description and examples; ``load``: the check loads the model;
    ``dirs`` / ``files``: its options naming a folder / a file it writes, checked writable."""
    p = sub.add_parser(name, help=summary, description=textwrap.fill(description, 100),
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n" + "\n".join(f"  {e}" for e in examples))
    p.set_defaults(func=func, load=load, dirs=dirs, files=files)
    _local(p, "log-level", "what rsi says on stderr: debug, info (progress bars, every 60 s into a file), warning, error",
           "--log-level warning", None, opts.one_of(LOG_LEVELS))
    p.add_argument("-q", "--quiet", action="store_true",
                   help="warnings and errors only, no progress bars (e.g. -q: the same as --log-level warning)")
    return p


def _add(p, *names: str, **override) -> None:
    """Options of the shared table on ``p``; ``override`` replaces fields of each (another default)."""
    for name in names:
        opts.OPTIONS[name].add_argparse(p, **override)


def _local(p, name: str, help: str, example: str, default=None, parse=None, **kw) -> None:
    """An option of this subcommand alone, with the same help format as the table's."""
    opts.Option(name, help, example, default, parse, **kw).add_argparse(p)


def _unit(text: str) -> str:
    if text != "auto":
        _shard(text)
    return text


def _shard(text: str) -> str:
    from rsi_core.fz.shard import parse_shard
    parse_shard(text)
    return text


BLOCKS_HELP = ("comma list of blocks such as 1.1,3.1, or paper (the studied blocks by role; resnet18's seven: "
               "1.1, 2.0, 2.1, 3.0, 3.1, 4.0, 4.1)")


LOG_LEVELS = ("debug", "info", "warning", "error")


class _Stderr(logging.StreamHandler):
    """A handler writing to ``sys.stderr`` as it is at each line (pytest swaps it per test)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


def configure_logging(args) -> None:
    """The ``rsi_core`` loggers' level from ``--log-level`` / ``-q`` (default info), their lines on
    stderr; progress bars follow it (``rsi_core.model.progress.bar``)."""
    level = "warning" if getattr(args, "quiet", False) else (getattr(args, "log_level", None) or "info")
    log = logging.getLogger("rsi_core")
    log.setLevel(level.upper())
    if not log.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("rsi: %(message)s"))
        log.addHandler(handler)


def build_parser() -> Parser:
    parser = Parser(prog="rsi", formatter_class=argparse.RawDescriptionHelpFormatter,
                    description=textwrap.fill("rsi: the findings of \"Interpreting the Residual Stream of ResNet18\" as "
                                              "claims re-run on a model (the main job is `pytest claims`, or `rsi run`).", 100),
                    epilog="examples:\n  rsi run --weights random:0 --profile smoke    # the offline smoke run\n"
                           "  rsi blocks --weights random:0                 # a model's blocks and taps\n\n"
                           "run `rsi COMMAND --help` for a command's options and examples")
    parser.add_argument("--version", action="version", version=f"rsi {metadata.version('rsi')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = ("model", "weights", "device", "cache-dir")

    p = _command(sub, "blocks", "list residual blocks and their I/B/O taps",
                 "The model's residual blocks: kind (simple, downsample), the roles the claims read, channels, the "
                 "module each tap hooks, and per tap (I input, B block branch, O output) the map size, centre, "
                 "receptive field and FZ jitter; the model's preprocessing.",
                 ["rsi blocks --weights random:0", "rsi blocks --model timm:resnet18 --weights random:0",
                  "rsi blocks --model convnext_tiny --weights random:0 --json"],
                 cmd_blocks, load=False)
    _add(p, *shared)
    _local(p, "json", "print the table as JSON", "--json", flag=True)

    p = _command(sub, "fz", "fill the FZ bank (resumable) and optionally export PNGs",
                 "Render feature visualizations (FZs) of the chosen blocks, taps and channels into the cache "
                 "(an interrupted run resumes where it stopped), and optionally export them as PNGs.",
                 ["rsi fz --weights random:0 --blocks 1.1 --channels 0-3 --steps 64 --export fz/",
                  "rsi fz --weights resnet18.pth --profile quick --shard $SLURM_ARRAY_TASK_ID/8"], cmd_fz,
                 dirs=("export",))
    _add(p, *shared)
    _local(p, "blocks", BLOCKS_HELP, "--blocks 2.0,2.1", "paper")
    _local(p, "taps", "comma list of tap kinds to render, of I (block input) and B (block branch)", "--taps B",
           "I,B", opts.taps)
    _local(p, "channels", "channels per block: all, a range LO-HI, a list, or a mix (default: the profile's channels)",
           "--channels 0-15,32", None, opts.channel_spec)
    _add(p, "profile", help="sets the steps and channels, as in pytest claims (default: paper on CUDA, quick on CPU)")
    _local(p, "steps", "optimization steps per FZ, overriding the profile's", "--steps 256", None, opts.at_least(1))
    _local(p, "objective", "what an FZ maximizes: the centre neuron or the whole channel", "--objective channel",
           "neuron", opts.one_of(("neuron", "channel")))
    _add(p, "jitter-table")
    _add(p, "fz-target")
    _local(p, "no-crop", "forward the whole image instead of the tap's window (slower, same result)", "--no-crop",
           flag=True)
    _local(p, "precision", "arithmetic of the render: fp32, or tf32 / bf16 on a GPU (faster, not bit-exact)",
           "--precision tf32", "fp32", opts.one_of(("fp32", "tf32", "bf16")))
    _local(p, "batch-size", "FZs rendered together (default: sized to the device)", "--batch-size 64", None,
           opts.at_least(1))
    _local(p, "export", "folder for a PNG per FZ and a grid per tap", "--export fz-pngs/", metavar="DIR")
    _local(p, "dry-run", "print the plan (FZs, cached, estimated time) and stop", "--dry-run", flag=True)
    _local(p, "shard", "render only shard K (0..N-1) of N of the requested FZs into the shared --cache-dir "
           "(SLURM arrays, torchrun ranks)", "--shard 0/4", None, _shard, metavar="K/N")
    # issue 31: the run's plan as work units, rendered by any scheduler's array index
    _add(p, "images", "fz-seeds", "controls")
    _local(p, "unit", "render units K, K+N, ... of the run's plan (rsi plan) into the shared --cache-dir; auto: "
           "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX (Kubernetes) and N from the plan",
           "--unit 0/8", None, _unit, metavar="K/N|auto")

    p = _command(sub, "plan", "every FZ a claims run needs, as work units (counts, cached, estimated time)",
                 "The FZs a claims run with these run options reads (primary and second seed, each FZ reading and "
                 "seed asked for, every control model), dealt into work units of one tap and at most one batch of "
                 "channels; per unit its FZs, whether cached, and an estimate from a short calibration. "
                 "rsi fz --unit K/N renders units K, K+N, ...",
                 ["rsi plan --weights random:0 --profile smoke --controls 1",
                  "rsi plan --profile paper --batch-size 256 --no-estimate --json"], cmd_plan)
    _add(p, "model", "weights", "images", "profile", "device", "cache-dir", "jitter-table", "fz-target", "fz-seeds",
         "controls", "fz-device")
    _local(p, "batch-size", "FZs per unit (default: a device's batch, 16 on a CPU, 256 on a GPU)", "--batch-size 256",
           None, opts.at_least(1))
    _local(p, "json", "print the plan as JSON", "--json", flag=True)
    _local(p, "no-estimate", "skip the calibration that estimates each unit's time", "--no-estimate", flag=True)

    p = _command(sub, "submit", "the run as a job array of work units and a claims job after it (submitit)",
                 "Submit the run's plan (rsi plan) as one job array, task k rendering units k, k+N, ... (a GPU "
                 "each; preempted tasks requeued and resumed), and the claims job (rsi run --require-cached) "
                 "after it (SLURM: --dependency=afterok; local/debug executors: after waiting for the array). "
                 "Needs the [slurm] extra (submitit).",
                 ["rsi submit --profile paper --tasks 32 --parallel 8 --partition gpu --cache-dir /shared/rsi",
                  "rsi submit --weights random:0 --profile smoke --executor local --wait"], cmd_submit,
                 dirs=("folder",))
    _add(p, *opts.RUN_OPTIONS)
    _local(p, "executor", "slurm, or local / debug (this machine)", "--executor local", "slurm",
           opts.one_of(("slurm", "local", "debug")))
    _local(p, "folder", "submitit's folder for the jobs' logs and pickles", "--folder rsi-jobs/", "rsi-jobs",
           metavar="DIR")
    _local(p, "tasks", "array tasks (default: one per unit)", "--tasks 32", None, opts.at_least(1))
    _local(p, "parallel", "array tasks running at once", "--parallel 8", 8, opts.at_least(1))
    _local(p, "gpus", "GPUs per task (SLURM)", "--gpus 1", 1, opts.at_least(0))
    _local(p, "timeout-min", "minutes per task before SLURM stops (and submitit requeues) it", "--timeout-min 240",
           240, opts.at_least(1))
    _local(p, "partition", "SLURM partition", "--partition gpu")
    _local(p, "batch-size", "FZs per unit (default: the device's batch)", "--batch-size 256", None, opts.at_least(1))
    _local(p, "wait", "wait for the claims job and exit with its status", "--wait", flag=True)

    p = _command(sub, "activations", "centre-neuron activations of an image folder, per tap, to .npz",
                 "Stream an image folder through the model and write, per tap, the centre neuron of every channel "
                 "as an [images, channels] table (row i is files[i]) into one .npz with its provenance.",
                 ["rsi activations --weights random:0 --limit 20 --out acts.npz",
                  "rsi activations --images ~/imagenet/val --blocks 3.1 --taps B,O --out val-3.1.npz"], cmd_activations,
                 files=("out",))
    _add(p, *shared, "images")
    _local(p, "limit", "only the first N images (sorted order)", "--limit 100", None, opts.at_least(1), metavar="N")
    _local(p, "blocks", BLOCKS_HELP, "--blocks 3.1", "paper")
    _local(p, "taps", "comma list of tap kinds, of I (input), B (block branch), O (output)", "--taps B,O", "I,B,O",
           opts.taps)
    _local(p, "batch-size", "images per forward pass", "--batch-size 100", 50, opts.at_least(1))
    _local(p, "out", "the .npz file to write", "--out acts.npz", metavar="NPZ", required=True)

    p = _command(sub, "run", "the claims analysis and report: pytest claims, as one command",
                 "Run every claim test of claims/ through pytest, with the options of `pytest claims` (the same "
                 "table), and write the report into --artifacts-dir. Exit 0: every expected claim held (or was "
                 "observed / inconclusive); 1: one failed, regressed or errored; 2: a bad option.",
                 ["rsi run --weights random:0 --profile smoke", "rsi run --weights resnet18.pth --baseline old/claims-report.json"],
                 cmd_run)
    _add(p, *opts.RUN_OPTIONS)
    _local(p, "claims", "folder of the claims tests (default: claims/ beside rsi_core)", "--claims my-claims/",
           metavar="DIR")
    _local(p, "dry-run", "print the run's plan (rsi plan's totals) and stop", "--dry-run", flag=True)

    p = _command(sub, "compare", "the claims-by-models table of several claims reports (md, json, png)",
                 "One row per claim, one column per report (model / weights): verdict, headline value and beyond "
                 "controls, as universality.md, .json and .png. Reports of different profiles or image sets are "
                 "refused unless --allow-mixed (the table then says they differ).",
                 ["rsi compare r18/claims-report.json timm/claims-report.json --out universality/"], cmd_compare,
                 load=False, dirs=("out",))
    p.add_argument("reports", nargs="+", metavar="REPORT.json", help="claims-report.json files, one per model/weights")
    _local(p, "out", "folder for universality.md, .json and .png", "--out universality/", metavar="DIR", required=True)
    _local(p, "allow-mixed", "compare reports of different profiles or image sets (the table says so)",
           "--allow-mixed", flag=True)

    p = _command(sub, "expectations", "record a run's verdicts as an expectations file (TOML on stdout)",
                 "Bless a run: its holds/fails verdicts become the expectations a later run is held to "
                 "(pass the file with --expectations). Inconclusive and errored claims are recorded as observe; "
                 "a report where every claim errored is refused.",
                 ["rsi expectations --from artifacts/claims-report.json > blessed.toml"], cmd_expectations, load=False)
    p.add_argument("--from", dest="report", required=True, metavar="JSON",
                   help="claims-report.json of the run to bless (e.g. --from artifacts/claims-report.json)")

    p = _command(sub, "bench", "benchmarks", "Speed benchmarks.", ["rsi bench fz --steps 64 --device cpu"], None,
                 load=False)
    bench = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    b = _command(bench, "fz", "FZ speed: the paper's lucent loop against the engine",
                 "Time the paper's lucent render loop and rsi's engine on the same FZs; prints a table and a JSON line.",
                 ["rsi bench fz --steps 64 --device cpu --json"], cmd_bench, load=False)
    _local(b, "steps", "optimization steps per FZ", "--steps 64", None, opts.at_least(1))
    _add(b, "device")
    _local(b, "json", "only the JSON line on stdout (the table on stderr)", "--json", flag=True)

    p = _command(sub, "config", "the run's settings as resolved, and where each came from",
                 "Every option of `pytest claims` / `rsi run`, resolved (the device and profile too) with its source: "
                 "the command line, the environment (RSI_WEIGHTS, RSI_IMAGES, RSI_CACHE), the config file (rsi.toml, or "
                 "[tool.rsi] in pyproject.toml, from the working folder upward) or the default, highest first.",
                 ["rsi config", "rsi config --weights random:0 --json"], cmd_config, load=False)
    _add(p, *opts.RUN_OPTIONS)
    _local(p, "json", "print the settings as JSON", "--json", flag=True)

    p = _command(sub, "validate", "precision/recall of the criteria on planted networks, controls",
                 "Check the method on networks whose answers are known by construction: the scale criteria's "
                 "precision and recall, or with --claims every claim's verdict on planted networks.",
                 ["rsi validate --seeds 2", "rsi validate --claims --case fig2-holds", "rsi validate --regression",
                  "rsi validate --calibration --json --draws 200"],
                 cmd_validate, load=False)
    _local(p, "json", "print a JSON line", "--json", flag=True)
    _local(p, "seeds", "FZ seeds per planted network (default 3; with --claims: each case's verdict over this "
           "many FZ seeds, default 1)", "--seeds 2", None, opts.at_least(1))
    _local(p, "first-seed", "with --claims: the first FZ seed of --seeds (default 0): runs over disjoint seed ranges "
           "in one --cache-dir split a case over processes, and a run over the whole range reads them back",
           "--first-seed 5", None, opts.at_least(0))
    _local(p, "claims", "instead: each claim on a planted network where it holds and one where it fails "
           "(expected vs obtained verdict, verdict_accuracy)", "--claims", flag=True)
    _local(p, "regression", "instead: the paired regression check measured on weight updates of resnet18 (same "
           "weights, new head, continued training, other FZ seed) and planted changes of 15 and 25 points: F_pair, "
           "the claims decided, and the check's false alarms, decided share and power at the ci profile's sizes",
           "--regression", flag=True)
    _local(p, "draws", "with --regression: FZ-seed copies of the planted network (default 1); with --calibration: "
           "simulated runs per row (default 200)", "--draws 1", None, opts.at_least(1))
    _local(p, "calibration", "instead: every claim's decision rule by simulation (P(holds), P(inconclusive), "
           "P(fails) per world, seed reliability and size; no FZ, minutes on a CPU)", "--calibration", flag=True)
    _local(p, "case", "with --claims: only this planted case (repeatable; names in rsi_core.planted.resnet)",
           "--case fig2-holds", repeat=True)
    _add(p, "cache-dir")
    _local(p, "fz-target", "planted benchmark under this FZ reading (default both)", "--fz-target as-run", None,
           opts.one_of(FZ_TARGETS))
    return parser


def check(args) -> None:
    """Every option of the command checked before any work (``options.check``), the model loaded
    once: ``args.run``, the run's ``RunConfig``, is where the commands read the table's options."""
    values = {k.replace("_", "-"): v for k, v in vars(args).items()}
    for name in args.dirs:
        if values.get(name):
            opts.writable_dir(name, values[name])
    for name in args.files:
        opts.writable_file(name, values[name])
    args.run = opts.check({k: v for k, v in values.items() if k in opts.OPTIONS}, load=args.load,
                          limit=values.get("limit"))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()  # the defaults read the environment and the config file
    except ValueError as exc:
        print(f"rsi: error: {opts.one_line(exc)}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    args.argv = argv
    configure_logging(args)
    try:
        check(args)
        return args.func(args) or 0
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        from rsi_core.model.load import WeightsError  # imported here: rsi --help imports no torch
        if isinstance(exc, RuntimeError) and not isinstance(exc, WeightsError):
            raise
        print(f"rsi: error: {opts.one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside a render: what is cached stays, no traceback
        print(f"rsi {args.command}: interrupted (Ctrl-C); everything already cached is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
