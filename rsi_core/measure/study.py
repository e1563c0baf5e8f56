"""The paper's per-block analysis: FZ-based mix ratios and scale criteria, natural-image probes.

``Study`` ties a model, its FZ bank and an image set together and computes each block's
numbers once (lazily), for the claims, ``rsi run`` and the figures.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import torch

from rsi_core.cache import Cache
from rsi_core.fz.bank import FZBank
from rsi_core.fz.render import FZSettings, canonical_tap, dequantize, element_streams, image_parameter, quantize
from rsi_core.measure import metrics
from rsi_core.measure.profiles import Profile, channels_for, is_census, sample_channels, second_seed_channels
from rsi_core.model.activations import natural_activations, natural_key, top_k
from rsi_core.model.anatomy import TapCapture, anatomy_of, block_of, find_block, preprocess_of, taps_of
from rsi_core.model.anatomy import tap as tap_name
from rsi_core.model.images import ImageSet
from rsi_core.model.load import describe


@dataclass
class BlockResult:
    """Numbers for the studied channels of one block; activations are each channel's own."""
    block: str
    kind: str
    channels: np.ndarray            # channel ids studied
    i_xi: np.ndarray                # I_c(X_I)
    b_xi: np.ndarray                # B_c(X_I)
    o_xi: np.ndarray                # O_c(X_I)
    i_xb: np.ndarray                # I_c(X_B)
    b_xb: np.ndarray                # B_c(X_B)
    o_xb: np.ndarray                # O_c(X_B)
    b_s_xi: np.ndarray              # B_c(S(X_I))
    i_sinv_xb: np.ndarray           # I_c(S_inv(X_B))
    reading: str = "as-written"     # the criteria and skip group as the text states them, or "as-run"
    extra: dict = field(default_factory=dict)

    @property
    def m(self) -> np.ndarray:
        return metrics.mix_ratio(self.o_xi, self.o_xb)

    @property
    def failed(self) -> np.ndarray:
        return metrics.failed_fzs(self.o_xi, self.o_xb)

    @property
    def skip(self) -> np.ndarray:
        """Figure 4's skip group: M > 1 as written, M >= 1 as the authors' plotting code ran."""
        return metrics.is_skip(self.m, self.reading)

    def scale_invariant(self, use_mix: bool = True) -> np.ndarray:
        """The three criteria; "as-run" tests 2 and 3 on clipped deltas (ReLU(variant) -
        ReLU(base)) divided by B_c(X_B) and I_c(X_I), as the authors' ``stream_inspect.py`` does."""
        return metrics.scale_criteria_read(self.m, self.b_xi, self.b_s_xi, self.i_xb, self.i_sinv_xb,
                                           self.reading, b_xb=self.b_xb, i_xi=self.i_xi, use_mix=use_mix)

    @property
    def sm(self) -> np.ndarray:
        """SM on the reading's deltas (as run: the clipped ones, SPEC)."""
        return metrics.scale_metric(self.b_xi, self.b_s_xi, self.b_xb, self.i_xb, self.i_sinv_xb, self.i_xi,
                                    self.reading)

    def take(self, index) -> BlockResult:
        """The same numbers for the channels at ``index`` only."""
        arrays = {k: getattr(self, k)[index] for k in MEASURED}
        return BlockResult(block=self.block, kind=self.kind, reading=self.reading, **arrays)

    def with_rows(self, index, other: BlockResult) -> BlockResult:
        """These numbers with the channels at ``index`` replaced by ``other``'s (the same channels)."""
        arrays = {k: getattr(self, k).copy() for k in MEASURED}
        for k in MEASURED:
            arrays[k][index] = getattr(other, k)
        return BlockResult(block=self.block, kind=self.kind, reading=self.reading, extra=dict(self.extra), **arrays)

    def table(self) -> dict:
        """JSON-ready per-channel numbers."""
        out = {k: getattr(self, k).tolist() for k in
               ("channels", "i_xi", "b_xi", "o_xi", "i_xb", "b_xb", "o_xb", "b_s_xi", "i_sinv_xb")}
        out.update(m=self.m.tolist(), sm=self.sm.tolist(), failed=self.failed.tolist(),
                   scale_invariant=self.scale_invariant().tolist(),
                   scale_invariant_without_mix=self.scale_invariant(False).tolist())
        return out


MEASURED = ("channels", "i_xi", "b_xi", "o_xi", "i_xb", "b_xb", "o_xb", "b_s_xi", "i_sinv_xb")
#: as run, a failed FZ (both O <= 0) is rendered again with a new seed (SPEC), up to this many times
RERENDERS = 3
RERENDER_SEED = 1000     # the k-th re-render's FZ seed: the study's + k * RERENDER_SEED


@torch.no_grad()
def never_moved(model, tap: str, channels, settings: FZSettings, images: np.ndarray) -> np.ndarray:
    """Per channel: its FZ ``images[n]`` is the very image its optimization started from (no
    step ever moved it: the objective's gradient was zero throughout, as for a post-ReLU centre
    neuron at 0 as run). The start is the channel's own seeded spectrum (``element_streams``)."""
    init, _ = element_streams(settings.seed, canonical_tap(model, tap), [int(c) for c in channels])
    start = quantize(torch.cat([image_parameter(torch.device("cpu"), init[k:k + 1])[1]() for k in range(len(init))]))
    return np.all(start.reshape(len(start), -1) == np.asarray(images).reshape(len(images), -1), axis=1)


def own(acts: np.ndarray, channels) -> np.ndarray:
    """Row n's activation of its own channel ``channels[n]``."""
    return acts[np.arange(len(channels)), np.asarray(channels)].astype(np.float64)


@torch.no_grad()
def centre_on(model, x: torch.Tensor, tap: str, channels, device, batch: int = 64) -> np.ndarray:
    """Centre activation of ``channels[n]`` at ``tap`` for normalized image ``x[n]``."""
    out = []
    with TapCapture(model, [tap], centre=True) as cap:
        for s in range(0, len(x), batch):
            out.append(cap(x[s:s + batch].to(device))[tap].float().cpu().numpy())
    return own(np.concatenate(out), channels) if out else np.zeros(0)


def block_from_fzs(model, block: str, channels, fz_i: dict, fz_b: dict, antialias: bool = False,
                   device="cpu", reading: str = "as-written") -> BlockResult:
    """Mix ratio and scale-criteria inputs from the I and B FZs of ``channels``."""
    x_i, x_b = (dequantize(fz["image"], preprocess=preprocess_of(model)) for fz in (fz_i, fz_b))
    return BlockResult(
        block=block, kind=find_block(model, block).kind, channels=np.asarray(channels),
        i_xi=own(fz_i["I"], channels), b_xi=own(fz_i["B"], channels), o_xi=own(fz_i["O"], channels),
        i_xb=own(fz_b["I"], channels), b_xb=own(fz_b["B"], channels), o_xb=own(fz_b["O"], channels),
        b_s_xi=centre_on(model, metrics.scale_up(x_i), tap_name(block, "B"), channels, device),
        i_sinv_xb=centre_on(model, metrics.scale_down(x_b, antialias=antialias), tap_name(block, "I"), channels,
                            device),
        reading=reading)


class SampleReaders:
    """What claim functions read from a study: the VALID channels of the UNBIASED sample
    (``profiles.sample_channels``; the paper's named channels that ``quick`` renders in addition
    never enter a statistic), whether each block is a census, and a census block's second-seed
    pairs. Needs ``profile``, ``model``, ``block(name)`` and ``pairs(name)``."""

    def missing(self, premise: str) -> str | None:
        """Why this model lacks ``premise`` (a role the claims read, a premise of its family, or
        the scale claims' premise of receptive fields: ``Anatomy.missing``), or None: a claim
        that needs it is "n/a" (``verdicts.verdict.applies_if``)."""
        return anatomy_of(self.model).missing(premise)

    def is_census(self, block: str) -> bool:
        return is_census(self.profile, block, find_block(self.model, block).channels)

    def census_map(self, blocks) -> dict:
        return {b: self.is_census(b) for b in blocks}

    def kept(self, block: str, r=None) -> np.ndarray:
        """Mask over ``block(block).channels`` (or ``r.channels``): in the sample and FZs valid."""
        r = r if r is not None else self.block(block)
        sample = sample_channels(self.profile, block, find_block(self.model, block).channels)
        return np.isin(r.channels, sample) & ~r.failed

    def sample_m(self, block: str) -> np.ndarray:
        """M of the kept channels (``kept``)."""
        r = self.block(block)
        return r.m[self.kept(block, r)]

    def sample_groups(self, block: str, values) -> tuple[np.ndarray, np.ndarray]:
        """``values`` (one per studied channel) of the kept overwrite (M < 1) and skip (``r.skip``:
        M > 1, or M >= 1 as run) channels."""
        r = self.block(block)
        values = np.asarray(values, dtype=float)
        ok = self.kept(block, r) & np.isfinite(values)
        return values[ok & (r.m < 1)], values[ok & r.skip]

    def pair_values(self, block: str, values, among=None) -> tuple[np.ndarray, np.ndarray] | None:
        """``values(result)`` (one per channel) of the block's paired channels under the run's FZ
        seed and under the second seed, for the channels valid under both (and ``among(result)``
        under both, if given); None where the block has no second seed (``pairs``)."""
        pairs = self.pairs(block)
        if pairs is None:
            return None
        ok = ~pairs[0].failed & ~pairs[1].failed
        if among is not None:
            ok &= among(pairs[0]) & among(pairs[1])
        return np.asarray(values(pairs[0]))[ok], np.asarray(values(pairs[1]))[ok]


class Study(SampleReaders):
    """One model + weights + image set + profile: everything a claim asks for, computed once."""

    def __init__(self, model, profile: Profile, cache: Cache, images: ImageSet | None = None,
                 device="cpu", blocks=None, antialias: bool = False, jitter_table: str = "paper",
                 progress: bool = True, fz_target: str = "as-written", fz_seed: int = 0, lists=None):
        self.model, self.profile, self.cache, self.device = model, profile, cache, device
        record = anatomy_of(model)
        self.roles = record.roles
        names = {x.name for x in record.blocks}
        self.blocks = [b for b in (blocks or self.roles["studied"]) if b in names]
        self.antialias = antialias
        self.settings = FZSettings(steps=profile.steps, jitter_table=jitter_table, target=fz_target, seed=fz_seed)
        # the channel lists the paper names are resnet18's; other models have none, planted ones their own
        self.lists = lists if lists is not None else record.origin.lists
        self.bank = FZBank(model, cache, self.settings, device=device, progress=progress)
        self._images = images
        self._results: dict[str, BlockResult] = {}

    def variant(self, model=None, **fz) -> Study:
        """This study on another model (a control: same architecture) or under other FZ settings
        (``target``, ``seed``): the same profile, image set, cache, device and blocks; its own FZ
        bank and block results, and for another model its own natural activations."""
        other = copy.copy(self)
        other.__dict__.pop("second_seed", None)
        if model is not None:
            other.model = model
            other.__dict__.pop("natural", None)
        other.settings = replace(self.settings, **fz) if fz else self.settings
        other._results = {}
        other.bank = FZBank(other.model, self.cache, other.settings, device=self.device,
                            batch_size=self.bank.batch_size, progress=self.bank.progress)
        return other

    def channel_fzs(self, block: str, channels) -> dict[str, np.ndarray]:
        """Channel-objective FZ images (whole-map mean) of ``channels`` per tap, for the grids."""
        bank = FZBank(self.model, self.cache, replace(self.settings, objective="channel"), device=self.device,
                      progress=self.bank.progress)
        return {t: bank.get(tap_name(block, t), list(channels), figure=True)["image"] for t in "OIB"}

    @property
    def reading(self) -> str:
        """The FZ target is also how the analysis reads the paper: "as-run" follows the authors'
        code where SPEC lists a difference (criteria on normalized deltas, skip as M >= 1, the
        robustness version averaging ReLU of each image's activation)."""
        return self.settings.target

    def channels(self, block: str) -> list[int]:
        return channels_for(self.profile, block, find_block(self.model, block).channels, self.lists)

    def describe(self) -> dict:
        d = {**describe(self.model), "profile": self.profile.name, "sample": self.profile.definition(),
             "fz": self.settings.describe(),
             "antialias": self.antialias, "device": str(self.device)}
        if self._images is not None:
            d.update(self.image_set.describe())
        return d

    def fz_requests(self) -> list[tuple[FZBank, dict[str, list[int]]]]:
        """(bank, {tap: channels}) that ``prepare`` fills: every studied block's I and B FZs, and
        the second seed's of the paired channels."""
        out = [(self.bank, {t: self.channels(block_of(t)) for t in taps_of(self.blocks, "IB")})]
        paired = {t: self.paired_channels(block_of(t)) for t in taps_of(self.blocks, "IB")}
        if any(paired.values()):
            out.append((self.second_seed.bank, {t: c for t, c in paired.items() if c}))
        return out

    def prepare(self) -> None:
        """Fill the FZ bank for every studied block, and the second seed's for its paired
        channels (taps in any order across workers)."""
        for bank, requests in self.fz_requests():
            bank.ensure(requests)

    def natural_cached(self) -> bool:
        """Whether the natural-image tables of this model and image set are in the cache."""
        return self.cache.path(natural_key(self.model, self.image_set, self.blocks)).exists()

    def _result(self, name: str, chans, rerender: bool = True) -> BlockResult:
        """The block's numbers for ``chans``; ``extra`` counts the FZs that never moved (per tap)
        and, as run, the failed FZs rendered again (``RERENDERS``) and those still failed."""
        self.bank.ensure({t: chans for t in taps_of([name], "IB")})
        fz = {t: self.bank.get(tap_name(name, t), chans) for t in "IB"}
        r = block_from_fzs(self.model, name, chans, fz["I"], fz["B"], antialias=self.antialias, device=self.device,
                           reading=self.reading)
        r.extra["never_moved"] = {t: int(never_moved(self.model, tap_name(name, t), chans, self.settings,
                                                     fz[t]["image"]).sum()) for t in "IB"}
        if rerender and self.reading == "as-run":
            r.extra["failed_first"] = int(r.failed.sum())
            for k in range(1, RERENDERS + 1):
                idx = np.flatnonzero(r.failed)
                if not len(idx):
                    break
                again = self.variant(seed=self.settings.seed + k * RERENDER_SEED)._result(
                    name, r.channels[idx].tolist(), rerender=False)
                r = r.with_rows(idx, again)
            r.extra["still_failed"] = int(r.failed.sum())
        return r

    def block(self, name: str) -> BlockResult:
        if name not in self._results:
            self._results[name] = self._result(name, self.channels(name))
        return self._results[name]

    def fz_health(self, name: str) -> dict:
        """Per block: FZs that never moved (I, B), failed FZs (as run: before and after their
        re-renders), for the report beside every spectrum."""
        r = self.block(name)
        return {"channels": len(r.channels), "never_moved": r.extra["never_moved"], "failed": int(r.failed.sum()),
                **{k: r.extra[k] for k in ("failed_first", "still_failed") if k in r.extra}}

    def paired_channels(self, block: str) -> list[int]:
        """Channels of ``block`` also rendered under the second FZ seed (``profiles.second_seed_channels``)."""
        return second_seed_channels(self.profile, block, find_block(self.model, block).channels)

    @cached_property
    def second_seed(self) -> Study:
        """This study under the next FZ seed (for the paired channels only)."""
        return self.variant(seed=self.settings.seed + 1)

    def pairs(self, name: str) -> tuple[BlockResult, BlockResult] | None:
        """The paired channels' results under this study's FZ seed and under the second seed;
        None where the block has no second seed (a sample, or a profile without it)."""
        chans = self.paired_channels(name)
        if not chans:
            return None
        key = f"pairs:{name}"
        if key not in self._results:
            first = self.block(name)
            self._results[key] = (first.take(np.searchsorted(first.channels, chans)),
                                  self.second_seed._result(name, chans))
        return self._results[key]

    # natural images -------------------------------------------------------------------------
    @cached_property
    def image_set(self) -> ImageSet:
        images = self._images if self._images is not None else ImageSet.from_dir(None)
        if self.profile.natural_images and len(images) > self.profile.natural_images:
            step = len(images) / self.profile.natural_images
            images = ImageSet(images.root, [images.files[int(i * step)] for i in range(self.profile.natural_images)])
        return images.with_preprocess(preprocess_of(self.model))  # the weights' own resizing and normalization

    @cached_property
    def natural(self) -> dict[str, np.ndarray]:
        return natural_activations(self.model, self.image_set, self.blocks, cache=self.cache, device=self.device,
                                   progress=self.bank.progress)

    def input_block_correlation(self, name: str) -> np.ndarray:
        """Figure 4 bottom: per studied channel, Spearman(B_c, I_c) over images with I_c > 0."""
        chans = self.channels(name)
        b, i = taps_of([name], "BI")
        return metrics.rowwise_spearman(self.natural[b][:, chans], self.natural[i][:, chans])

    def top_images(self, tap: str, k: int = 9) -> np.ndarray:
        """[studied channels, k] indices into ``image_set``."""
        return top_k(self.natural[tap][:, self.channels(block_of(tap))], k)

    def robust(self, name: str) -> BlockResult:
        """Appendix A.3: the criteria with each FZ replaced by its tap's top-9 natural images,
        activations averaged over the nine."""
        key = f"robust:{name}"
        if key not in self._results:
            chans = self.channels(name)
            nat = self.natural
            ti, tb, to = taps_of([name], "IBO")
            top_i, top_b = self.top_images(ti), self.top_images(tb)

            def mean_over(tap, tops):
                a = nat[tap]
                return np.array([a[tops[n], c].mean() for n, c in enumerate(chans)], dtype=np.float64)

            def relu_term(tap, tops):  # the criteria's ReLU'd term: "as-run" averages ReLU(a)
                a = nat[tap]
                return np.array([metrics.robust_relu_term(a[tops[n], c], self.reading) for n, c in enumerate(chans)])

            def scaled_mean(transform, tap, tops):  # "as-run" clips the scaled response too (SPEC)
                k = tops.shape[1]
                x = torch.stack([self.image_set[int(i)] for i in tops.reshape(-1)])
                acts = centre_on(self.model, transform(x), tap, np.repeat(chans, k), self.device)
                return metrics.robust_relu_term(acts.reshape(len(chans), k), self.reading, axis=1)

            self._results[key] = BlockResult(
                block=name, kind=find_block(self.model, name).kind, channels=np.asarray(chans),
                i_xi=mean_over(ti, top_i), b_xi=relu_term(tb, top_i),
                o_xi=mean_over(to, top_i), i_xb=relu_term(ti, top_b),
                b_xb=mean_over(tb, top_b), o_xb=mean_over(to, top_b),
                b_s_xi=scaled_mean(metrics.scale_up, tb, top_i),
                i_sinv_xb=scaled_mean(lambda x: metrics.scale_down(x, antialias=self.antialias),
                                      ti, top_b), reading=self.reading)
        return self._results[key]

