"""The paper's facts about resnet18, as data: "Interpreting the Residual Stream of ResNet18"
(its method in docs/method.md). Everything that is resnet18's or the paper's own choice lives
here, so other models can tell what they inherit and what they must state. Imports nothing
beyond the standard library.
"""
from dataclasses import dataclass

# Blocks L.K (layerL[K]) whose I, B and O the paper studies (1.0 reads the max-pool: skipped).
PAPER_BLOCKS = ("1.1", "2.0", "2.1", "3.0", "3.1", "4.0", "4.1")
IMAGE_SIZE = 224      # FZs and natural images, pixels
PAPER_MODEL, PAPER_WEIGHTS = "resnet18", "IMAGENET1K_V1"  # the model the paper studies: rsi's defaults
PAPER_STEPS = 2560    # optimization steps per FZ, as the authors ran them

# How the paper is read: "as-written" (its text) or "as-run" (its authors' code; docs/method.md).
READINGS = ("as-written", "as-run")
# Where both readings are decided (``--fz-target both``, the paper profile's default), the reading
# whose verdict is a claim's test outcome: the paper's own, "as-run", where the claim is a number
# or a list the authors' code produced (Figure 2's shares and its 4.1 histogram, Figure 5's counts,
# Figures 6-8's channel lists); "as-written" where it is a mechanism the text states in terms of
# the taps it defines (Figure 3's correlations, Figure 4's B(X_I) and input-block correlation).
PAPER_READING = {
    "fig2-downsample-overwrite": "as-run", "fig2-simple-less-skewed": "as-run", "fig2-final-block": "as-run",
    "fig3-weight-magnitude": "as-written", "fig4-inhibition": "as-written",
    "fig4-input-block-correlation": "as-written", "fig5-scale-counts": "as-run", "fig6-top-scale": "as-run",
    "fig7-robust": "as-run", "fig8-top-mixes": "as-run",
}
#: the values of ``--fz-target``: one reading, or both
FZ_TARGETS = READINGS + ("both",)


@dataclass(frozen=True)
class Readings:
    """``--fz-target`` interpreted, here only: the readings a run decides (``asked``), the primary
    one (its controls', figures' and rendered bank's; as-written when both are asked) and per claim
    the decisive one (with both: the paper's own, ``PAPER_READING``)."""
    target: str

    def __post_init__(self):
        if self.target not in FZ_TARGETS:
            raise ValueError(f"--fz-target {self.target!r}: use as-written, as-run or both")

    @property
    def both(self) -> bool:
        return self.target == "both"

    @property
    def asked(self) -> tuple[str, ...]:
        return READINGS if self.both else (self.target,)

    @property
    def primary(self) -> str:
        return "as-written" if self.both else self.target

    def decisive(self, claim_id: str) -> str:
        return PAPER_READING.get(claim_id, "as-written") if self.both else self.target

# Criterion 1 of scale invariance: 2/3 < M < 3/2 ("mix").
MIX_BAND = (2 / 3, 3 / 2)

# FZ jitter per canonical tap (a simple block's I is the previous block's O); taps not listed
# use DEFAULT_JITTER. The simple blocks' I entries repeat the O they stand for.
DEFAULT_JITTER = 16
_JITTER_A2 = {"1.1.I": 0, "1.1.B": 0, "1.1.O": 0, "2.0.I": 0, "2.0.B": 0, "2.0.O": 0, "1.0.O": 0, "2.1.I": 0,
              "2.1.B": 4, "3.0.I": 4, "3.0.B": 4, "3.0.O": 4, "3.1.I": 4}
JITTER_TABLES = {
    # appendix A.2: none for 1.1 and 2.0, 4 for 2.1's B and all of 3.0, 16 elsewhere
    "paper": _JITTER_A2,
    # the authors' batch script (commit 4995852): the paper's table except 2.1.O at 4
    "authors-script": {**_JITTER_A2, "2.1.O": 4},
    "none": {},
}

# The jitter of every other model's taps, the paper's table read as a rule of receptive field
# (224-pixel images): up to 67 pixels (resnet18's 2.0.O) none, up to 147 (its 3.0.O) 4, else 16.
# On resnet18 the rule gives the authors' script's table (the paper's except 2.1.O at 4).
JITTER_BY_RF = ((67, 0), (147, 4))
TABLE_MODELS = ("resnet18", "planted", "planted-resnet18")  # the models whose taps the tables name

# Channels the paper names per block, zero-indexed: Figure 1 (examples), Figure 6 (top scale
# metric examples), Figure 7 (robust scale invariance), Figure 8 (top mixes).
PAPER_FIG7 = {"1.1": [19], "2.0": [7, 15, 53, 3], "2.1": [108, 36, 13, 21, 60, 52, 93, 5, 58],
              "3.1": [113, 178, 22, 215, 204, 25, 29, 154, 200], "3.0": [], "4.0": [], "4.1": []}
PAPER_FIG8 = {"1.1": [44, 27, 55], "2.0": [42, 9, 78], "2.1": [22, 116, 72], "3.0": [105, 250, 204],
              "3.1": [128, 246, 41], "4.0": [163, 3, 51], "4.1": [154, 68, 496]}
PAPER_FIG1 = {"1.1": [38, 19, 25], "3.1": [178, 215, 25]}  # 1.1: overwrite, mix, skip; 3.1: scale invariant
PAPER_FIG6 = {"1.1": [19, 46], "2.0": [15], "2.1": [108], "3.1": [113, 178]}
PAPER_LISTS = {"fig1": PAPER_FIG1, "fig6": PAPER_FIG6, "fig7": PAPER_FIG7, "fig8": PAPER_FIG8}
