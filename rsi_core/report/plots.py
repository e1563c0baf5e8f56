"""The paper's figures (2-5 and the channel grids of 1, 6, 7, 8) as PNG files.

Every function takes the data it draws, the run's provenance (``Study.describe()``) and an
output path; it writes a footer saying what made the figure (model, weights, image set,
profile, FZ settings), saves the PNG and returns the path. Figures are plain matplotlib
``Figure`` objects rendered by Agg, never registered with pyplot: no global backend switch,
nothing left open.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from rsi_core.measure import metrics
from rsi_core.model.anatomy import tap

SKIP_COLOUR, OVERWRITE_COLOUR = "tab:blue", "tab:red"
CONTROL_COLOURS = ("tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:cyan")
PANEL = 96   # pixels per FZ panel in channel grids
GAP = 4      # pixels between panels
TAPS = (("O", "Output"), ("I", "Input"), ("B", "Block"))
FOOTER_SIZE = 7


def provenance_text(provenance: dict) -> str:
    """One line naming what made a figure: model, weights, image set, profile, FZ settings."""
    p, fz = provenance, provenance.get("fz", {})
    images = p.get("image_set", "image set not loaded")
    if "image_count" in p:
        images = f"{images} ({p['image_count']} images used, id {p.get('image_set_id', '?')})"
    return (f"{p.get('model', '?')} | weights {p.get('weights', '?')} (id {p.get('weights_id', '?')}) | "
            f"images: {images} | profile {p.get('profile', '?')}, {fz.get('steps', '?')} FZ steps, "
            f"jitter table {fz.get('jitter_table', '?')}, seed {fz.get('seed', '?')}, {fz.get('precision', '?')} | "
            f"antialias {'on' if p.get('antialias') else 'off'}")


def _finish(fig, provenance: dict, path) -> Path:
    """Add the provenance footer below the axes, save; return the path."""
    width_chars = int(fig.get_figwidth() * 72 / (FOOTER_SIZE * 0.55))
    fig.text(0.01, 0, textwrap.fill(provenance_text(provenance), max(width_chars, 60)),
             fontsize=FOOTER_SIZE, color="0.3", ha="left", va="top")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15)
    return path


def _panels(n: int, ncols: int, panel_size=(3.2, 2.6)):
    """A figure with ``n`` axes (at least one) laid out ``ncols`` wide; the axes as a flat list."""
    n = max(n, 1)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes)


def _two_rows(n: int):
    """A figure with a top and a bottom panel per block (at least one column): axes [2, n]."""
    n = max(n, 1)
    fig = Figure(figsize=(3.2 * n, 5.6), layout="constrained")
    return fig, fig.subplots(2, n, squeeze=False)


def _empty(ax, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.3g}"


# --------------------------------------------------------------------------- Figure 2


def mix_histogram(m) -> np.ndarray:
    """Counts of finite M values in ``metrics.MIX_BINS`` (M = 5 falls in the last bin)."""
    m = np.asarray(m, dtype=np.float64)
    return np.histogram(m[np.isfinite(m)], bins=metrics.MIX_BINS)[0]


def _control_m(value) -> np.ndarray:
    """A control's M values for one block: a BlockResult or the M values themselves."""
    return np.asarray(getattr(value, "m", value), dtype=np.float64)


def fig2_mix_histograms(results: dict, provenance: dict, path, controls: dict | None = None) -> Path:
    """Figure 2: one histogram of M per block, a line at M = 1. ``controls`` ({label: {block:
    BlockResult or M values}}) draws each control model's histogram as an outline over the
    tested model's bars."""
    fig, axes = _panels(len(results), ncols=4)
    width = np.diff(metrics.MIX_BINS)
    controls = controls or {}
    for ax, (block, r) in zip(axes, results.items()):
        m = np.asarray(r.m, dtype=np.float64)
        counts = mix_histogram(m)
        ax.bar(metrics.MIX_BINS[:-1], counts, width=width, align="edge", color="0.55", edgecolor="white",
               label="tested" if controls else None)
        for i, (label, per_block) in enumerate(controls.items()):
            if block in per_block:
                ax.stairs(mix_histogram(_control_m(per_block[block])), metrics.MIX_BINS, linewidth=1.4,
                          color=CONTROL_COLOURS[i % len(CONTROL_COLOURS)], label=label)
        ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
        notes = [f"n={len(m)}"]
        if (~np.isfinite(m)).any():
            notes.append(f"{int((~np.isfinite(m)).sum())} NaN")
        if np.asarray(r.failed).any():
            notes.append(f"{int(np.asarray(r.failed).sum())} failed FZs")
        ax.set_title(f"{block} ({r.kind}), {', '.join(notes)}", fontsize=9)
        ax.set_xlim(metrics.MIX_BINS[0], metrics.MIX_BINS[-1])
        ax.set_xlabel("mix ratio M")
        ax.set_ylabel("channels")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if not results:
        _empty(axes[0])
    elif controls:
        axes[0].legend(fontsize=7, title="outlines: controls", title_fontsize=7)
    fig.suptitle("Mix ratios (M < 1 overwrite, M > 1 skip)")
    return _finish(fig, provenance, path)


# --------------------------------------------------------------------------- Figure 3


def fig3_weight_scatter(points: dict, provenance: dict, path) -> Path:
    """Figure 3: per block, |BN2 weight| (top) and mean |conv2 weight| (bottom) against M."""
    fig, axes = _two_rows(len(points))
    for col, (block, p) in enumerate(points.items()):
        for ax, key, name in ((axes[0, col], "bn", "|BN2 weight|"), (axes[1, col], "conv", "mean |conv2 weight|")):
            ax.scatter(p["m"], p[key], s=10, color="0.3")
            ax.set_title(f"{block}: rho={_fmt(p[f'rho_{key}'])}, p={_fmt(p[f'p_{key}'])}", fontsize=9)
            ax.set_xlabel("mix ratio M")
            ax.set_ylabel(name)
    if not points:
        _empty(axes[0, 0])
    fig.suptitle("Weight magnitude against mix ratio (Spearman)")
    return _finish(fig, provenance, path)


# --------------------------------------------------------------------------- Figure 4


def _group_scatter(ax, m, y, F, p, ylabel: str, block: str) -> None:
    """Scatter y against M; skip (M > 1) and overwrite (M < 1) group means as lines."""
    m, y = np.asarray(m, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(m) & np.isfinite(y)
    sizes = []
    for mask, colour in ((m > 1, SKIP_COLOUR), (m < 1, OVERWRITE_COLOUR)):
        sel = mask & ok
        ax.scatter(m[sel], y[sel], s=10, color=colour, alpha=0.6)
        if sel.any():
            ax.axhline(y[sel].mean(), color=colour, linewidth=1.5)
        sizes.append(int(sel.sum()))
    ax.scatter(m[ok & (m == 1)], y[ok & (m == 1)], s=10, color="0.4")
    ax.axvline(1.0, color="0.6", linestyle=":", linewidth=1)
    ax.set_title(f"{block}: F={_fmt(F)}, p={_fmt(p)}\nskip n={sizes[0]}, overwrite n={sizes[1]}", fontsize=9)
    ax.set_xlabel("mix ratio M")
    ax.set_ylabel(ylabel)
    if not ok.any():
        _empty(ax)


def fig4_inhibition(points: dict, provenance: dict, path) -> Path:
    """Figure 4: B_c(X_I) (top) and the input-block Spearman correlation (bottom) against M."""
    fig, axes = _two_rows(len(points))
    for col, (block, p) in enumerate(points.items()):
        _group_scatter(axes[0, col], p["m"], p["b_xi"], p["top_F"], p["top_p"], "B_c(X_I)", block)
        _group_scatter(axes[1, col], p["m"], p["corr"], p["bottom_F"], p["bottom_p"],
                       "Spearman(B_c, I_c), I_c > 0", block)
    if not points:
        _empty(axes[0, 0])
    fig.suptitle("Block activation on the input FZ (top) and input-block correlation (bottom) against M;\n"
                 "lines: means of skip (M > 1, blue) and overwrite (M < 1, red) channels; ANOVA F, p between them",
                 fontsize=10)
    return _finish(fig, provenance, path)


# --------------------------------------------------------------------------- Figure 5


def _percent(counts: dict, blocks, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = np.array([counts.get(b, {}).get(key, np.nan) for b in blocks], dtype=float)
    n = np.array([counts.get(b, {}).get("n", np.nan) for b in blocks], dtype=float)
    return np.divide(100 * k, n, out=np.full_like(k, np.nan), where=n > 0), k, n


def fig5_scale_counts(counts: dict, provenance: dict, path, controls: dict | None = None) -> Path:
    """Figure 5: percent of studied channels meeting all three scale criteria (purple) and
    the criteria without the mix ratio (yellow), per block. ``controls`` ({label: counts of
    the same form}) marks each control model's percentages on the bars."""
    blocks = list(counts)
    x = np.arange(len(blocks))
    fig = Figure(figsize=(max(4.0, 1.1 * len(blocks) + 1.5), 3.4), layout="constrained")
    ax = fig.subplots()
    for offset, key, colour, name in ((-0.2, "with_mix", "tab:purple", "all three criteria"),
                                      (0.2, "without_mix", "gold", "without the mix criterion")):
        pct, k, n = _percent(counts, blocks, key)
        bars = ax.bar(x + offset, np.nan_to_num(pct), width=0.4, color=colour, label=name)
        ax.bar_label(bars, labels=[f"{int(a)}/{int(b)}" for a, b in zip(k, n)], fontsize=7)
        for i, (label, c) in enumerate((controls or {}).items()):
            ax.scatter(x + offset, _percent(c, blocks, key)[0], marker="D", s=18, zorder=3, edgecolor="black",
                       linewidth=0.5, color=CONTROL_COLOURS[i % len(CONTROL_COLOURS)],
                       label=f"control {label}" if key == "with_mix" else None)
    ax.set_xticks(x, blocks)
    ax.set_xlabel("block")
    ax.set_ylabel("% of studied channels")
    ax.set_ylim(0, max(ax.get_ylim()[1] * 1.1, 5))
    ax.legend(fontsize=8)
    if not blocks:
        _empty(ax)
    ax.set_title("Scale-invariant channels")
    return _finish(fig, provenance, path)


# --------------------------------------------------------------------------- channel grids


def _small(image, size: int) -> np.ndarray:
    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    return np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))


def _mosaic(images) -> np.ndarray | None:
    """Up to 9 images as one 3x3 mosaic of PANEL pixels (None when there are none)."""
    if not len(images):
        return None
    cell = PANEL // 3
    out = np.full((PANEL, PANEL, 3), 255, np.uint8)
    for i, im in enumerate(list(images)[:9]):
        r, c = divmod(i, 3)
        out[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = _small(im, cell)
    return out


def _grid_image(taps: dict) -> tuple[np.ndarray, list]:
    """One channel's 3x3 panel image (rows O/I/B; columns neuron FZ, channel FZ, top 9) and the
    (row, column, message) of each blank panel."""
    step = PANEL + GAP
    out = np.full((3 * step - GAP, 3 * step - GAP, 3), 255, np.uint8)
    blanks = []
    for r, (t, _) in enumerate(TAPS):
        tap = taps.get(t, {})
        panels = [(tap.get("fz"), "not computed"), (tap.get("channel_fz"), "not computed"),
                  (_mosaic(tap.get("top9", [])), "no images")]
        for c, (im, message) in enumerate(panels):
            if im is None:
                out[r * step:r * step + PANEL, c * step:c * step + PANEL] = 235
                blanks.append((r, c, message))
            else:
                out[r * step:r * step + PANEL, c * step:c * step + PANEL] = _small(im, PANEL)
    return out, blanks


def channel_grids(rows: list, provenance: dict, path, title: str, columns: int = 3) -> Path:
    """Figures 1, 6, 7, 8: per channel a grid of Output/Input/Block rows showing the
    centre-neuron FZ, the channel FZ and the top-9 natural images."""
    step = PANEL + GAP
    fig, axes = _panels(len(rows), ncols=columns, panel_size=(3.6, 3.7))
    for ax, row in zip(axes, rows):
        image, blanks = _grid_image(row["taps"])
        ax.imshow(image, interpolation="antialiased")
        for r, c, message in blanks:
            ax.text(c * step + PANEL / 2, r * step + PANEL / 2, message, ha="center", va="center",
                    fontsize=7, color="0.4")
        ax.set_xticks([c * step + PANEL / 2 for c in range(3)], ["neuron FZ", "channel FZ", "top 9"], fontsize=7)
        ax.set_yticks([r * step + PANEL / 2 for r in range(3)], [name for _, name in TAPS], fontsize=7)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(f"{row['block']} ch {row['channel']}  {row.get('label', '')}".strip(), fontsize=9)
    if not rows:
        axes[0].set_axis_off()
        _empty(axes[0], "no channels")
    fig.suptitle(title)
    return _finish(fig, provenance, path)


def channel_grid_rows(study, block: str, channels, label_fn=None, channel_fzs: bool = True) -> list:
    """Row dicts for :func:`channel_grids` from a ``Study``: centre-neuron FZs of O, I, B (O
    FZs are computed on demand), channel FZs (when ``channel_fzs``), and each tap's top-9
    natural images. ``label_fn(channel) -> str`` defaults to the channel's M and SM; every
    channel must be one the study studies."""
    channels = [int(c) for c in channels]
    studied = study.channels(block)
    missing = [c for c in channels if c not in studied]
    if missing:
        raise ValueError(f"channels {missing} of block {block} are not studied by profile {study.profile.name}")
    if label_fn is None:
        result = study.block(block)

        def label_fn(c):
            n = studied.index(c)
            return f"M={result.m[n]:.2f} SM={result.sm[n]:.2g}"

    fzs = {t: study.bank.get(tap(block, t), channels, figure=True)["image"] for t, _ in TAPS}
    if channel_fzs:
        chan = study.channel_fzs(block, channels)
    tops = {t: study.top_images(tap(block, t)) for t, _ in TAPS}
    return [{"block": block, "channel": c, "label": label_fn(c),
             "taps": {t: {"fz": fzs[t][n], "channel_fz": chan[t][n] if channel_fzs else None,
                          "top9": [study.image_set.pil(int(i)) for i in tops[t][studied.index(c)]]}
                      for t, _ in TAPS}}
            for n, c in enumerate(channels)]


def strict_scale_counts(counts: dict, provenance: dict, path, floor: dict | None = None) -> Path:
    """Per block: channels passing the paper's scale criteria, and how many of those pass the
    strict scale test (``rsi_core.measure.scale_test``); ``counts[block]`` = {"studied", "paper",
    "paper_and_strict", "strict"}. ``floor`` {label: pass rate} marks the strict test's pass rate on
    controls (its false-positive floor), as a share of the studied channels."""
    blocks = list(counts)
    fig = Figure(figsize=(max(4.0, 1.0 + 0.9 * len(blocks)), 3.4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(blocks))
    paper = [counts[b]["paper"] for b in blocks]
    both = [counts[b]["paper_and_strict"] for b in blocks]
    ax.bar(x - 0.2, paper, 0.4, color="0.6", label="paper's criteria")
    ax.bar(x + 0.2, both, 0.4, color="tab:green", label="... and the strict test")
    for i, b in enumerate(blocks):
        ax.annotate(f"of {counts[b]['studied']}", (x[i], max(paper[i], both[i])), ha="center", va="bottom",
                    fontsize=7, xytext=(0, 2), textcoords="offset points")
    for j, (label, rate) in enumerate((floor or {}).items()):
        ax.scatter(x, [rate * counts[b]["studied"] for b in blocks], marker="_", s=200,
                   color=CONTROL_COLOURS[j % len(CONTROL_COLOURS)], label=f"strict on {label}")
    ax.set_xticks(x, blocks)
    ax.set_xlabel("block")
    ax.set_ylabel("channels")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Scale-invariant channels: the paper's criteria and the strict test", fontsize=9)
    ax.legend(fontsize=7)
    return _finish(fig, provenance, path)
