"""``rsi``: the command line. Subcommands: blocks, fz, activations, run, bench, validate."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rsi_core.harness.claims import claim_functions
from rsi_core.model.load import DEFAULT_MODEL, DEFAULT_WEIGHTS, WeightsError


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help="torchvision ResNet name (default resnet18)")
    p.add_argument("--weights", default=os.environ.get("RSI_WEIGHTS", DEFAULT_WEIGHTS),
                   help="IMAGENET1K_V1 (torchvision cache), a .pth path, or random:SEED")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--cache-dir", default=None, help="cache folder (default $RSI_CACHE or ~/.cache/rsi)")


def resolve_device(arg: str | None) -> str:
    from rsi_core.model.device import resolve_device as resolve  # the one place that chooses (rsi_core.model.device)
    return resolve(arg)


def parse_channels(spec: str, n: int) -> list[int]:
    """``all``, ``0-15`` or ``1,5,9`` (ranges and lists may mix)."""
    if spec == "all":
        return list(range(n))
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    bad = [c for c in out if not 0 <= c < n]
    if bad:
        raise ValueError(f"channels {bad} out of range: this block has channels 0-{n - 1}")
    return sorted(set(out))


def cmd_blocks(args) -> int:
    from rsi_core.model.anatomy import describe_blocks
    from rsi_core.model.load import load_model
    rows = describe_blocks(load_model(args.model, args.weights))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'block':6} {'kind':10} {'ch':>4}  " + "  ".join(f"{t}: size centre RF" for t in "IBO"))
    for r in rows:
        taps = "  ".join(f"{t}: {v['size'][0]:>3} {v['centre'][0]:>3} {v['receptive_field']:>4}"
                         for t, v in r["taps"].items())
        print(f"{r['block']:6} {r['kind']:10} {r['channels']:>4}  {taps}")
    return 0


def cmd_fz(args) -> int:
    from rsi_core.cache import Cache
    from rsi_core.fz.bank import FZBank
    from rsi_core.fz.export import export_pngs
    from rsi_core.fz.render import FZSettings
    from rsi_core.measure.profiles import default_profile, get_profile
    from rsi_core.measure.study import Study
    from rsi_core.model.anatomy import find_block
    from rsi_core.model.load import load_model
    from rsi_core.paper import PAPER_BLOCKS
    device = resolve_device(args.device)
    model = load_model(args.model, args.weights, device)
    profile = get_profile(args.profile or default_profile(device))  # as pytest claims: quick on a CPU
    steps = args.steps or profile.steps
    # fz (issue 8): --fz-target both renders each reading (entries they share are rendered once)
    targets = ["as-written", "as-run"] if args.fz_target == "both" else [args.fz_target]
    banks = [FZBank(model, Cache(args.cache_dir),
                    FZSettings(steps=steps, objective=args.objective, jitter_table=args.jitter_table,
                               crop=not args.no_crop, precision=args.precision, target=target),
                    device=device, batch_size=args.batch_size) for target in targets]
    bank = banks[0]
    blocks = PAPER_BLOCKS if args.blocks == "paper" else args.blocks.split(",")
    studied = Study(model, profile, bank.cache, device=device, blocks=blocks)  # the profile's channels, as a run's
    requests = {f"{b}.{t}": parse_channels(args.channels, find_block(model, b).channels) if args.channels
                else studied.channels(b) for b in blocks for t in args.taps.split(",")}
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
    for bank in banks:
        bank.ensure(requests)
    print(f"FZ bank ready: {sum(map(len, requests.values()))} FZs"
          f"{f' (shard {args.shard})' if args.shard else ''}, {steps} steps, cache {bank.cache.root}")
    if args.export:
        for bank in banks:
            folder = Path(args.export) / bank.settings.target if len(banks) > 1 else args.export
            for tap, chans in requests.items():
                print(export_pngs(bank, tap, chans, folder))
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
    from rsi_core.model.activations import block_taps, save_tables, stream_centre, table_provenance
    from rsi_core.model.images import ImageSet
    from rsi_core.model.load import load_model
    from rsi_core.paper import PAPER_BLOCKS
    device = resolve_device(args.device)
    model = load_model(args.model, args.weights, device)
    images = ImageSet.from_dir(args.images)
    if args.limit:
        images = ImageSet(images.root, images.files[:args.limit])
    blocks = PAPER_BLOCKS if args.blocks == "paper" else args.blocks.split(",")
    taps = [t for t in block_taps(blocks) if t.rsplit(".", 1)[1] in args.taps.split(",")]
    tables = stream_centre(model, images, taps, device=device, batch_size=args.batch_size)
    out = save_tables(args.out, tables, images.files, table_provenance(model, images, taps))
    print(f"{out}: {len(taps)} taps x {len(images)} images ({images.kind}); "
          f"np.load(...)['1.1.B'] is [images, channels], row i is files[i]; "
          f"rsi_core.model.activations.load_tables(path) gives (tables, files, provenance dict)")
    return 0


def cmd_run(args) -> int:
    from rsi_core.harness.runner import main as run_main
    return run_main(args)


def cmd_bench(args) -> int:
    from rsi_core.fz.bench import main as bench_main
    return bench_main(args)


def cmd_validate(args) -> int:
    if args.claims:  # planted-claims helper: every claim on planted networks with known verdicts
        from rsi_core.planted.validate_claims import main as claims_main
        return claims_main(args, claim_functions)
    from rsi_core.planted.validate import main as validate_main
    return validate_main(args, claim_functions)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="rsi", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("blocks", help="list residual blocks and their I/B/O taps")
    add_model_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_blocks)

    p = sub.add_parser("fz", help="fill the FZ bank (resumable) and optionally export PNGs")
    add_model_args(p)
    p.add_argument("--blocks", default="paper", help="comma list such as 1.1,3.1, or 'paper' (the seven studied)")
    p.add_argument("--taps", default="I,B")
    p.add_argument("--channels", default=None, help="all, 0-15, or 1,5,9 (default: the profile's channels)")
    p.add_argument("--profile", default=None, choices=["paper", "quick", "smoke"],
                   help="sets the steps and channels, as in pytest claims (default: paper on CUDA, quick on CPU)")
    p.add_argument("--steps", type=int, default=None, help="override the profile's steps")
    p.add_argument("--objective", default="neuron", choices=["neuron", "channel"])
    p.add_argument("--jitter-table", default="paper", help="paper, authors-script or none")
    p.add_argument("--fz-target", default="as-written", choices=["as-written", "as-run", "both"],
                   help="what an FZ optimizes: the tap (paper's text) or the post-ReLU block output "
                        "(the authors' code as it ran); both renders each")
    p.add_argument("--no-crop", action="store_true", help="forward the whole image (slower, same result)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--export", default=None, help="folder for PNGs and a grid per tap")
    p.add_argument("--dry-run", action="store_true", help="print the plan (FZs, cached, estimated time) and stop")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="render only shard K (0..N-1) of N of the requested FZs into the shared --cache-dir "
                        "(SLURM arrays, torchrun ranks)")
    p.set_defaults(func=cmd_fz)

    p = sub.add_parser("activations", help="centre-neuron activations of an image folder, per tap, to .npz")
    add_model_args(p)
    p.add_argument("--images", default=None, help="image folder (default $RSI_IMAGES, else the bundled sample)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (sorted order)")
    p.add_argument("--blocks", default="paper", help="comma list such as 1.1,3.1, or 'paper' (the seven studied)")
    p.add_argument("--taps", default="I,B,O")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--out", required=True, help="the .npz to write")
    p.set_defaults(func=cmd_activations)

    p = sub.add_parser("run", help="the claims analysis and report, without pytest")
    add_model_args(p)
    p.add_argument("--images", default=None)
    p.add_argument("--profile", default=None)
    p.add_argument("--artifacts-dir", default="artifacts")
    p.add_argument("--baseline", default=None, help="claims-report.json of an earlier run of the same model, "
                   "profile, image set and FZ target: flag regressions")
    p.add_argument("--expectations", action="append", default=[], help="TOML expectations file (repeatable)")
    p.add_argument("--fz-target", default=None, choices=["as-written", "as-run", "both"])
    p.add_argument("--fz-seeds", type=int, default=None, help="render FZs with seeds 0..K-1")
    p.add_argument("--controls", type=int, default=None, help="K control models (default: 2 on paper, else 0)")
    p.add_argument("--claims", default=None, help="folder of the claims tests (default: claims/ beside rsi_core)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("expectations", help="record a run's verdicts as an expectations file (TOML on stdout)")
    p.add_argument("--from", dest="report", required=True, help="claims-report.json of the run to bless")
    p.set_defaults(func=cmd_expectations)

    p = sub.add_parser("bench", help="benchmarks")
    bench = p.add_subparsers(dest="bench", required=True)
    b = bench.add_parser("fz", help="FZ speed: the paper's lucent loop against the engine")
    b.add_argument("--steps", type=int, default=None)
    b.add_argument("--device", default=None)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bench)

    p = sub.add_parser("validate", help="precision/recall of the criteria on planted networks, controls")
    p.add_argument("--json", action="store_true")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--claims", action="store_true",
                   help="instead: each claim on a planted network where it holds and one where it fails "
                        "(expected vs obtained verdict, verdict_accuracy)")
    p.add_argument("--case", action="append", default=None,
                   help="with --claims: only this planted case (repeatable; names in rsi_core.planted.resnet)")
    p.add_argument("--cache-dir", default=None, help="FZ cache (default $RSI_CACHE or ~/.cache/rsi)")
    p.add_argument("--fz-target", choices=("as-written", "as-run", "both"), default=None,
                   help="planted benchmark under this FZ reading (default both)")
    p.set_defaults(func=cmd_validate)

    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (WeightsError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"rsi: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
