"""``rsi run``: the claims analysis and report without pytest (scripts, notebooks)."""
from __future__ import annotations

from .analysis import Study
from .cache import Cache
from .claims import CLAIMS, check
from .device import resolve_device
from .images import ImageSet
from .models import load_model
from .profiles import default_profile, get_profile
from .report import load_baseline, write_report


def main(args) -> int:
    """Evaluate every claim, write the report; exit 1 when an expected claim fails or regressed."""
    device = resolve_device(args.device)
    profile = get_profile(args.profile or default_profile(device))
    print(f"rsi run: {args.model} weights {args.weights}, profile {profile.name} on {device}")
    study = Study(load_model(args.model, args.weights, device), profile, Cache(args.cache_dir),
                  images=ImageSet.from_dir(args.images), device=device)
    study.prepare()
    baseline = load_baseline(args.baseline) if args.baseline else None
    entries = [check(cid, study, args.artifacts_dir, baseline) for cid in CLAIMS]
    md, _ = write_report(entries, args.artifacts_dir)
    for e in entries:
        flag = "  REGRESSED: " + "; ".join(e["regressions"]) if e["regressions"] else ""
        print(f"{e['id']:30} {e['verdict']:13} {e['outcome']:20} {e['reason'][:90]}{flag}")
    print(f"report: {md}")
    bad = [e for e in entries if e["outcome"].startswith("fail (") or e["outcome"] == "fail" or e["regressions"]]
    return 1 if bad else 0
