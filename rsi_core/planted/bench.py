"""The planted benchmark: the paper's metrics, and the strict scale test, where every answer is
known. Each planted network (``rsi_core.planted.networks``) goes through the real FZ engine and analysis;
one row per planted channel holds its truth (role, gains, patterns) and every measured number;
``summarize`` gives precision and recall of the scale criteria (the paper's, a margin variant,
and the strict test), flag rates per role and Spearman between M and the planted branch gain.
``rsi validate`` (``rsi_core.planted.validate``) runs it and prints the table.
"""
from __future__ import annotations

import os

import numpy as np

from rsi_core.measure import metrics
from rsi_core.model.anatomy import block_of, tap, taps_of
from rsi_core.planted import networks as P

#: FZ steps on planted networks. Their detectors are linear, so 32 steps of the paper's recipe
#: reach about 90% of each detector's best response (``fz_convergence`` in the output).
PLANTED_STEPS = int(os.environ.get("RSI_VALIDATE_STEPS", 32))
#: Planted benchmark networks (each: 2 blocks x 14 channels, 3 positives per block).
PLANTED_NETS = int(os.environ.get("RSI_VALIDATE_NETS", 6))
#: The margin variant: each criterion's normalized margin (a term of SM) must exceed this.
MARGIN = 0.25
#: jitter table: "paper". It gives jitter 0 to every tap of 1.1 and 2.0 (the planted networks'
#: studied blocks), which is what the paper used for those blocks; so "none" would be the same.
JITTER_TABLE = "paper"


def analyse(spec: P.PlantedSpec, cache, steps: int = PLANTED_STEPS, device="cpu",
            progress: bool = False, images=None, strict: bool = True, target: str = "as-written") -> list[dict]:
    """Build ``spec``, make its FZs with the FZ bank, run the paper's analysis and (``strict``)
    the strict scale test on ``images`` (default: the default natural image set); one row per
    planted channel with its truth and every measured number."""
    from rsi_core.fz.bank import FZBank
    from rsi_core.fz.render import FZSettings
    from rsi_core.measure import scale_test
    from rsi_core.measure.study import block_from_fzs, never_moved
    from rsi_core.model.images import ImageSet

    if strict and images is None:
        images = ImageSet.from_dir(None)

    model = P.build(spec)
    # FZ target (SPEC, "What the authors' code optimized"): M and the criteria always read the true taps
    settings = FZSettings(steps=steps, jitter_table=JITTER_TABLE, **({"target": target} if target != "as-written" else {}))
    bank = FZBank(model, cache, settings, device=device, progress=progress)
    blocks = [b for b in P.STUDIED_BLOCKS if spec.roles(b)]
    bank.ensure({t: spec.channels(block_of(t)) for t in taps_of(blocks, "IB")})
    rows = []
    for b in blocks:
        chans = spec.channels(b)
        fz = {t: bank.get(tap(b, t), chans) for t in "IB"}
        r = block_from_fzs(model, b, chans, fz["I"], fz["B"], device=device, reading=target)  # the target's analysis
        still = {t: never_moved(model, tap(b, t), chans, settings, fz[t]["image"]) for t in "IB"}
        m, sm = r.m, r.sm
        paper, nomix = r.scale_invariant(True), r.scale_invariant(False)
        if strict:
            tr = scale_test.strict_scale(model, images, b, chans, cache, device, progress=progress)
        c1, c2, c3 = metrics.scale_criteria_parts(m, r.b_xi, r.b_s_xi, r.i_xb, r.i_sinv_xb, reading=target,
                                                  b_xb=r.b_xb, i_xi=r.i_xi)
        t2, t3 = metrics.scale_metric_terms(r.b_xi, r.b_s_xi, r.b_xb, r.i_xb, r.i_sinv_xb, r.i_xi, target)
        for n, ch in enumerate(spec.roles(b)):
            rows.append({
                "net": spec.name, "block": b, "channel": int(chans[n]), "role": ch.role, "kind": ch.kind,
                "i": ch.i.short(), "b": ch.b.short(), "i_family": ch.i.family, "b_family": ch.b.family,
                "gain_i": ch.gain_i, "gain_b": ch.gain_b,
                "inhibit": ch.inhibit, "truth": ch.scale_invariant,
                "m": float(m[n]), "failed": bool(r.failed[n]), "sm": float(sm[n]),
                "i_never_moved": bool(still["I"][n]), "b_never_moved": bool(still["B"][n]),
                "crit1": bool(c1[n]), "crit2": bool(c2[n]), "crit3": bool(c3[n]),
                "flag": bool(paper[n]), "flag_without_mix": bool(nomix[n]),
                "margin2": float(t2[n]), "margin3": float(t3[n]),
                "flag_margin": bool(paper[n] and t2[n] > MARGIN and t3[n] > MARGIN),
                **{k: float(getattr(r, k)[n]) for k in
                   ("i_xi", "b_xi", "o_xi", "i_xb", "b_xb", "o_xb", "b_s_xi", "i_sinv_xb")},
            })
            if strict:
                rows[-1].update(
                    strict=bool(tr["passes"][n]), tracks=bool(tr["tracks"][n]),
                    strict_with_m=bool(tr["tracks"][n] and c1[n]),
                    **{k: float(tr[k][n]) for k in ("r_zoom", "r_shrink", "r_same", "balance")},
                    d_zoom=[float(v) for v in tr["d_zoom"][n]], d_shrink=[float(v) for v in tr["d_shrink"][n]])
    return rows


def precision_recall(truth, flagged) -> dict:
    truth, flagged = np.asarray(truth, bool), np.asarray(flagged, bool)
    tp, fp = int((truth & flagged).sum()), int((~truth & flagged).sum())
    fn, tn = int((truth & ~flagged).sum()), int((~truth & ~flagged).sum())
    prec = tp / (tp + fp) if tp + fp else float("nan")
    rec = tp / (tp + fn) if tp + fn else float("nan")
    return {"precision": prec, "recall": rec, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def role_key(row: dict) -> str:
    """``role``, ``role:kind``; family decoys also name their direction (dot->bar, bar->dot)."""
    if row["kind"] == "family" and "i_family" in row:
        return f"{row['role']}:family {row['i_family']}->{row['b_family']}"
    return f"{row['role']}:{row['kind']}" if row["kind"] else row["role"]


#: Channels whose M the gain should order: M ~ g_I / g_B needs I and B tuned to features that
#: do not drive each other; the same-scale decoy (same feature: M = 1 at any gain) and the
#: inhibiting channel (M = 0 by design) are left out.
GAIN_ORDERED = ("skip", "overwrite", "mix", "scale", "decoy-unrelated")
#: ... and those whose B is I's pattern at 2s: only the gain differs between them.
SAME_RELATION = ("skip", "scale", "overwrite")


def _nanmedian(values) -> float:
    v = np.array([np.nan if x is None else x for x in values], dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else float("nan")


def summarize(rows: list[dict]) -> dict:
    truth = [r["truth"] for r in rows]
    out = {"channels": len(rows), "positives": int(sum(truth)),
           "paper": precision_recall(truth, [r["flag"] for r in rows]),
           "margin": precision_recall(truth, [r["flag_margin"] for r in rows])}
    if rows and all("strict" in r for r in rows):
        out["strict"] = precision_recall(truth, [r["strict"] for r in rows])
        out["strict_with_m"] = precision_recall(truth, [r["strict_with_m"] for r in rows])
    # which criterion misses the positives, and which roles pass as positives
    pos = [r for r in rows if r["truth"]]
    out["missed_by"] = {f"crit{k}": int(sum(not r[f"crit{k}"] for r in pos)) for k in (1, 2, 3)}
    roles = {}
    for r in rows:
        roles.setdefault(role_key(r), []).append(r)
    out["roles"] = {
        k: {"n": len(v), "flagged": float(np.mean([r["flag"] for r in v])),
            "flagged_without_mix": float(np.mean([r["flag_without_mix"] for r in v])),
            "flagged_margin": float(np.mean([r["flag_margin"] for r in v])),
            "strict": float(np.mean([r.get("strict", np.nan) for r in v])),
            "tracks": float(np.mean([r.get("tracks", np.nan) for r in v])),
            "r_zoom_median": _nanmedian([r.get("r_zoom") for r in v]),
            "m_median": float(np.median([r["m"] for r in v])),
            "m_range": [float(min(r["m"] for r in v)), float(max(r["m"] for r in v))],
            "crit": [float(np.mean([r[f"crit{c}"] for r in v])) for c in (1, 2, 3)],
            "margins_median": [_nanmedian([r["margin2"] for r in v]), _nanmedian([r["margin3"] for r in v])]}
        for k, v in sorted(roles.items())}
    ordered = [r for r in rows if r["role"] in GAIN_ORDERED and not r["failed"]]
    gain = [r["gain_b"] / r["gain_i"] for r in ordered]
    rho, p = metrics.spearman([r["m"] for r in ordered], gain)
    out["spearman_m_gain"] = {"rho": rho, "p": p, "n": len(ordered),
                              "channels": "roles " + ", ".join(GAIN_ORDERED)}
    same = [r for r in ordered if r["role"] in SAME_RELATION]
    rho, p = metrics.spearman([r["m"] for r in same], [r["gain_b"] / r["gain_i"] for r in same])
    out["spearman_m_gain_same_relation"] = {"rho": rho, "p": p, "n": len(same),
                                            "channels": "roles " + ", ".join(SAME_RELATION) + " (B = I's pattern at 2s)"}
    best = [r["i_xi"] / P.BEST_RESPONSE for r in rows] + \
           [r["b_xb"] / (P.BEST_RESPONSE * r["gain_b"]) for r in rows if r["gain_b"] > 0 and not r["inhibit"]]
    out["fz_convergence"] = float(np.median(best))
    # M > 1 needs O(X_B) < O(X_I): a B FZ that maximized O would not allow it, one that never moved would
    out["b_never_moved_among_m_over_1"] = {
        b: {"m_over_1": len(v), "b_never_moved": sum(r.get("b_never_moved", False) for r in v),
            "share": sum(r.get("b_never_moved", False) for r in v) / len(v) if v else None}
        for b in sorted({r["block"] for r in rows}) for v in [[r for r in rows if r["block"] == b and r["m"] > 1]]}
    return out


def planted_net(seed: int, cache_root: str | None, steps: int = PLANTED_STEPS, target: str = "as-written") -> list[dict]:
    """Rows of benchmark network ``seed`` (a pool task); the strict test only once (it reads no FZ)."""
    from rsi_core.cache import Cache
    return analyse(P.benchmark_spec(seed), Cache(cache_root), steps, target=target, strict=target == "as-written")



#: fresh networks on which the frozen strict test is scored (``P.fresh_spec``): never used for tuning
FRESH_NETS = int(os.environ.get("RSI_VALIDATE_FRESH_NETS", 6))


def strict_rows(spec: P.PlantedSpec, cache, images=None, device="cpu") -> list[dict]:
    """The strict scale test alone (natural images, no FZs) on every planted channel of ``spec``."""
    from rsi_core.measure import scale_test
    from rsi_core.model.images import ImageSet
    images = images if images is not None else ImageSet.from_dir(None)
    model = P.build(spec)
    rows = []
    for b in (b for b in P.STUDIED_BLOCKS if spec.roles(b)):
        tr = scale_test.strict_scale(model, images, b, spec.channels(b), cache, device, progress=False)
        rows += [{"net": spec.name, "block": b, "role": ch.role, "kind": ch.kind, "truth": ch.scale_invariant,
                  "strict": bool(tr["passes"][n])} for n, ch in enumerate(spec.roles(b))]
    return rows


def fresh_net(k: int, cache_root: str | None) -> list[dict]:
    """Strict-test rows of fresh network ``k`` (a pool task)."""
    from rsi_core.cache import Cache
    return strict_rows(P.fresh_spec(k), Cache(cache_root))


def strict_summary(rows: list[dict]) -> dict:
    """Precision and recall of the strict test on ``rows``, and its pass rate per role."""
    roles = {}
    for r in rows:
        roles.setdefault(role_key(r), []).append(r["strict"])
    return {**precision_recall([r["truth"] for r in rows], [r["strict"] for r in rows]), "channels": len(rows),
            "nets": len({r["net"] for r in rows}), "pass_rate": {k: float(np.mean(v)) for k, v in sorted(roles.items())}}
