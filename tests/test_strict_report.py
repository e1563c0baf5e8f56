"""The report section of the strict scale test, on a planted network read through a real Study
(FZ bank, criteria, natural images): counts agree with the per-channel verdicts and the planted
truth, the files are written, and Figure-7-style lists are read for channels outside the sample."""
import json

import numpy as np

from rsi_core.cache import Cache
from rsi_core.measure.profiles import Profile
from rsi_core.measure.study import Study
from rsi_core.model.images import ImageSet
from rsi_core.planted import networks as P
from rsi_core.report.strict import NAME, write_section


def test_section_counts_and_survivors_on_a_planted_network(tmp_path):
    spec = P.benchmark_spec(0)
    model = P.build(spec)
    study = Study(model, Profile("t", 16, None, False, None), Cache(tmp_path / "cache"),
                  images=ImageSet.from_dir(None), blocks=["1.1"], progress=False,
                  lists={"fig7": {"1.1": [spec.channels("1.1")[0]]}})
    data = write_section(study, tmp_path / "art", floor={"random:1": 0.01})
    for ext in ("md", "json", "png"):
        assert (tmp_path / "art" / "sections" / f"{NAME}.{ext}").stat().st_size > 0
    c = data["blocks"]["1.1"]
    truth = {ch: role.scale_invariant for ch, role in zip(spec.channels("1.1"), spec.roles("1.1"))}
    strict = {ch: v["strict"] for ch, v in c["channels"].items() if ch in truth}
    assert strict == truth  # the strict test finds exactly the planted positives here
    assert c["paper_and_strict"] == len(set(c["paper_channels"]) & {ch for ch, s in strict.items() if s})
    assert set(c["survivors"]) <= set(c["paper_channels"])
    assert list(data["fig7"]["1.1"]) == [spec.channels("1.1")[0]]
    md = (tmp_path / "art" / "sections" / f"{NAME}.md").read_text()
    assert "| 1.1 |" in md and "False-positive floor" in md
    assert json.loads((tmp_path / "art" / "sections" / f"{NAME}.json").read_text())["r_min"] == 0.8
    assert np.isfinite(c["channels"][spec.channels("1.1")[0]]["r_zoom"])
