"""Not a paper claim: the strict scale test (rsi_core.measure.scale_test) beside the paper's criteria,
written as the report section ``sections/strict-scale.md`` (+ .json, .png)."""
import pytest

from rsi_core.report.strict import NAME, write_section


def test_strict_scale_section(rsi_study, rsi_config):
    """Per block: channels passing the paper's criteria, how many of those pass the strict test;
    for resnet18, which Figure 7 channels survive."""
    if not rsi_study.profile.strict_section:
        pytest.skip(f"profile {rsi_study.profile.name} leaves out the strict scale section (not a claim); "
                    "quick and paper write it")
    data = write_section(rsi_study, rsi_config.artifacts)
    folder = rsi_config.artifacts / "sections"
    for ext in ("md", "json", "png"):
        assert (folder / f"{NAME}.{ext}").stat().st_size > 0
    for block, c in data["blocks"].items():
        assert c["paper_and_strict"] <= min(c["paper"], c["strict"]) <= c["studied"], (block, c)
        assert set(c["survivors"]) <= set(c["paper_channels"])
