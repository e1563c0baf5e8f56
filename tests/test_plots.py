"""The figures: each writes a PNG that says what made it, and draws what it is given."""
import matplotlib.figure
import numpy as np
import pytest
from PIL import Image

from rsi_core.measure import metrics
from rsi_core.measure.study import BlockResult
from rsi_core.report import plots

PROVENANCE = {"model": "resnet18", "weights": "random:0", "weights_id": "210d4c243f092183",
              "profile": "smoke", "fz": {"steps": 24, "jitter_table": "paper", "seed": 0},
              "antialias": False, "image_set": "stand-in", "image_count": 500, "image_set_id": "2b25"}


@pytest.fixture
def drawn(monkeypatch):
    """Every figure saved during the test: its texts and its axes, captured at save time."""
    saved = []
    original = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        saved.append({"texts": [t.get_text() for t in fig.texts], "axes": fig.axes})
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    return saved


def check_png(path, drawn):
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 0 and im.height > 0
    footer = " ".join(drawn[-1]["texts"]).replace("\n", " ")
    assert "210d4c243f092183" in footer and "profile smoke" in footer


def block_result(name, m_pairs, kind="simple"):
    """A BlockResult whose O activations give the mix ratios of ``m_pairs`` [(o_xi, o_xb)]."""
    o_xi, o_xb = (np.array(v, dtype=float) for v in zip(*m_pairs))
    n = len(o_xi)
    z = np.linspace(-1, 1, n)
    return BlockResult(block=name, kind=kind, channels=np.arange(n), i_xi=z + 2, b_xi=z, o_xi=o_xi,
                       i_xb=z, b_xb=z + 2, o_xb=o_xb, b_s_xi=z + 0.5, i_sinv_xb=z + 0.5)


def test_provenance_text_names_what_made_the_figure():
    text = plots.provenance_text(PROVENANCE)
    for part in ("resnet18", "random:0", "210d4c243f092183", "profile smoke", "24 FZ steps",
                 "jitter table paper", "antialias off", "500 images"):
        assert part in text
    assert "?" in plots.provenance_text({})  # missing fields are shown as unknown, not an error


def test_mix_histogram_counts_match_numpy():
    rng = np.random.default_rng(0)
    m = np.concatenate([rng.uniform(0, 5, 200), [0.0, 1.0, 5.0, 5.0, np.nan]])
    counts = plots.mix_histogram(m)
    assert counts.tolist() == np.histogram(m[np.isfinite(m)], bins=metrics.MIX_BINS)[0].tolist()
    assert len(counts) == 20 and counts.sum() == 204 and counts[-1] >= 2  # M = 5 in the last bin


def test_fig2_draws_the_histogram_of_each_block(tmp_path, drawn):
    results = {"1.1": block_result("1.1", [(1, 2), (3, 1), (1, 1), (-1, 1), (1, -1), (-1, -1)]),
               "2.0": block_result("2.0", [(0.1, 1), (0.2, 1), (0.3, 1)], kind="downsample")}
    path = plots.fig2_mix_histograms(results, PROVENANCE, tmp_path / "fig2.png")
    check_png(path, drawn)
    axes = drawn[-1]["axes"]
    for ax, r in zip(axes, results.values()):
        heights = [p.get_height() for p in ax.patches]
        assert heights == plots.mix_histogram(r.m).tolist()
        assert any(list(line.get_xdata()) == [1.0, 1.0] for line in ax.lines)
    assert "2.0 (downsample), n=3" in axes[1].get_title()
    assert "1 failed FZs" in axes[0].get_title()


def test_fig3_titles_carry_spearman(tmp_path, drawn):
    m = np.array([0.2, 1.0, 2.0, 4.0])
    points = {"1.1": {"m": m, "bn": -m, "conv": m, "rho_bn": -1.0, "p_bn": 0.0, "rho_conv": 1.0, "p_conv": 0.0},
              "2.1": {"m": m[:1], "bn": m[:1], "conv": m[:1], "rho_bn": np.nan, "p_bn": np.nan,
                      "rho_conv": np.nan, "p_conv": np.nan}}
    check_png(plots.fig3_weight_scatter(points, PROVENANCE, tmp_path / "fig3.png"), drawn)
    titles = [ax.get_title() for ax in drawn[-1]["axes"]]
    assert "1.1: rho=-1, p=0" in titles and "2.1: rho=nan, p=nan" in titles


def test_fig4_group_means_and_nan_safety(tmp_path, drawn):
    points = {"2.1": {"m": np.array([0.5, 0.2, 2.0, 3.0, np.nan]), "b_xi": np.array([-1.0, -3.0, 1.0, 3.0, 5.0]),
                      "corr": np.array([-0.5, np.nan, 0.1, 0.3, 0.0]), "top_F": 4.2, "top_p": 0.03,
                      "bottom_F": np.nan, "bottom_p": np.nan},
              # no overwrite channels at all, and a block with no finite values
              "3.1": {"m": np.array([2.0, 5.0]), "b_xi": np.array([1.0, 2.0]), "corr": np.array([np.nan, np.nan]),
                      "top_F": np.nan, "top_p": np.nan, "bottom_F": np.nan, "bottom_p": np.nan}}
    check_png(plots.fig4_inhibition(points, PROVENANCE, tmp_path / "fig4.png"), drawn)
    top_21 = drawn[-1]["axes"][0]
    means = {line.get_color(): line.get_ydata()[0] for line in top_21.lines if line.get_linestyle() == "-"}
    assert means == {plots.SKIP_COLOUR: 2.0, plots.OVERWRITE_COLOUR: -2.0}
    assert top_21.get_title() == "2.1: F=4.2, p=0.03\nskip n=2, overwrite n=2"


def test_fig5_percentages(tmp_path, drawn):
    counts = {"1.1": {"n": 4, "with_mix": 1, "without_mix": 2}, "4.0": {"n": 0, "with_mix": 0, "without_mix": 0}}
    check_png(plots.fig5_scale_counts(counts, PROVENANCE, tmp_path / "fig5.png"), drawn)
    heights = [p.get_height() for p in drawn[-1]["axes"][0].patches]
    assert heights == [25.0, 0.0, 50.0, 0.0]


def test_empty_inputs_still_make_a_figure(tmp_path, drawn):
    for name, fn in (("2", plots.fig2_mix_histograms), ("3", plots.fig3_weight_scatter),
                     ("4", plots.fig4_inhibition), ("5", plots.fig5_scale_counts)):
        check_png(fn({}, PROVENANCE, tmp_path / f"fig{name}.png"), drawn)
    check_png(plots.channel_grids([], PROVENANCE, tmp_path / "grid.png", "nothing"), drawn)


def test_channel_grids_blank_panels_and_size(tmp_path, drawn):
    rng = np.random.default_rng(0)

    def img(size=224):
        return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)

    rows = [{"block": "3.1", "channel": c, "label": "M=0.98 SM=1.2",
             "taps": {t: {"fz": img(), "channel_fz": None if t == "O" else img(),
                          "top9": [Image.fromarray(img(64)) for _ in range(9)] if t != "B" else []}
                      for t in "OIB"}}
            for c in range(21)]
    path = plots.channel_grids(rows, PROVENANCE, tmp_path / "grid.png", "21 channels")
    check_png(path, drawn)
    assert path.stat().st_size < 6e6  # random noise is the worst case for PNG compression
    ax = drawn[-1]["axes"][0]
    assert ax.get_title() == "3.1 ch 0  M=0.98 SM=1.2"
    assert sorted(t.get_text() for t in ax.texts) == ["no images", "not computed"]


def test_channel_grid_rows_from_a_study(tmp_path):
    """Centre FZs from the study's bank (a stand-in), channel FZs from Study.channel_fzs (a real 2-step bank),
    top-9 images from the row of each requested channel among the studied ones."""
    from types import SimpleNamespace

    from rsi_core.cache import Cache
    from rsi_core.fz.bank import FZBank
    from rsi_core.fz.render import FZSettings
    from rsi_core.model.load import load_model

    model, cache, settings = load_model("resnet18", "random:0"), Cache(tmp_path), FZSettings(steps=2)
    studied = [3, 10, 20]
    tops = np.array([[100 + 10 * n + k for k in range(9)] for n in range(len(studied))])
    study = SimpleNamespace(
        model=model, cache=cache, settings=settings, device="cpu", profile=SimpleNamespace(name="test"),
        bank=SimpleNamespace(progress=False, get=lambda tap, chans, figure=False: {"image": np.stack(
            [np.full((224, 224, 3), c, np.uint8) for c in chans])}),
        channels=lambda block: studied,
        top_images=lambda tap: tops, image_set=SimpleNamespace(pil=lambda i: Image.new("RGB", (8, 8), (i, 0, 0))),
        block=lambda name: SimpleNamespace(m=np.array([0.5, 1.0, 2.0]), sm=np.array([0.1, 0.2, 0.3])))
    from rsi_core.measure.study import Study  # the analysis renders channel FZs; the figure only draws them
    study.channel_fzs = lambda block, chans: Study.channel_fzs(study, block, chans)
    rows = plots.channel_grid_rows(study, "1.1", [20, 3])
    assert [(r["block"], r["channel"], r["label"]) for r in rows] == [("1.1", 20, "M=2.00 SM=0.3"),
                                                                     ("1.1", 3, "M=0.50 SM=0.1")]
    for r, n in zip(rows, (2, 0)):
        for t in "OIB":
            tap = r["taps"][t]
            assert tap["fz"].shape == tap["channel_fz"].shape == (224, 224, 3)
            assert (tap["fz"] == r["channel"]).all()
            assert [im.getpixel((0, 0))[0] for im in tap["top9"]] == tops[n].tolist()
    channel_bank = FZBank(model, cache, FZSettings(steps=2, objective="channel"), progress=False)
    assert np.array_equal(rows[0]["taps"]["B"]["channel_fz"], channel_bank.get("1.1.B", [20])["image"][0])
    with pytest.raises(ValueError, match="not studied"):
        plots.channel_grid_rows(study, "1.1", [4], channel_fzs=False)
