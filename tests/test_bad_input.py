"""Every bad input of issue 20, walked as a table: the CLI answers one line on stderr and exit 2,
``pytest claims`` one usage-error line and exit 4, both before any work, never a traceback.

The CLI runs in process (``cli.main``); ``pytest claims`` too (``pytest.main`` from the
repository root): a bad option stops in ``pytest_configure``, before collection. A corrupt
cache entry is no error (it is reported, removed and recomputed): tests/test_cache.py.
"""
import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import torch
import torchvision

from rsi_core.harness import cli
from rsi_core.harness.expectations import CLAIM_IDS

ROOT = Path(__file__).resolve().parents[1]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: --device cuda is valid here")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The bad files and folders the table names, as {placeholder: path}."""
    d = tmp_path_factory.mktemp("bad")
    (d / "badimg").mkdir()
    (d / "badimg" / "x.JPEG").write_text("not an image\n")
    (d / "empty").mkdir()
    (d / "a-file").write_text("a file, not a folder\n")
    (d / "out-dir").mkdir()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torchvision.models.resnet18()
    state = net.state_dict()
    torch.save(state, d / "r18.pth")
    (d / "empty.pth").write_bytes(b"")
    (d / "truncated.pth").write_bytes((d / "r18.pth").read_bytes()[:100_000])
    torch.save({**state, "conv1.weight": state["conv1.weight"].clone().fill_(math.nan)}, d / "nan.pth")
    torch.save(net, d / "whole.pth")
    errors = [{"id": cid, "verdict": "error", "error": "RuntimeError: boom"} for cid in CLAIM_IDS]
    (d / "all-error.json").write_text(json.dumps({"provenance": {"model": "resnet18"}, "claims": errors}))
    (d / "not-json.json").write_text("{not json")
    (d / "other-model.json").write_text(json.dumps({"provenance": {"model": "resnet50", "profile": "smoke"},
                                                   "claims": errors}))
    (d / "bad.toml").write_text("this is = = not toml")
    (d / "wrong-id.toml").write_text('[claims]\nfig9-nothing = "holds"\n')
    return {"dir": str(d), "cache": str(d / "cache"), "art": str(d / "art"),
            **{p.name.replace(".", "_").replace("-", "_"): str(p) for p in d.iterdir()}}


# (case id, argv with {placeholders}, text the one line must hold[, mark])
CLI_CASES = [
    ("model-unknown", "blocks --model resnet9000 --weights random:0", "unknown model"),
    ("block-unknown", "fz --weights random:0 --blocks 9.9", "unknown block"),
    ("weights-source-unknown", "fz --weights bogus:3", "unknown weights source"),
    ("weights-name-unknown", "fz --weights IMAGENET9", "unknown weights"),
    ("weights-file-missing", "fz --weights {dir}/nofile.pth", "does not exist"),
    ("weights-file-empty", "fz --weights {empty_pth}", "not a readable PyTorch state dict"),
    ("weights-file-truncated", "fz --weights {truncated_pth}", "not a readable PyTorch state dict"),
    ("weights-wrong-architecture", "fz --model resnet34 --weights {r18_pth}", "do not fit resnet34"),
    ("weights-nan", "fz --weights {nan_pth}", "NaN or infinite values in conv1.weight"),
    ("weights-pickled-model", "fz --weights {whole_pth}", "pickled torchvision.models.resnet.ResNet"),
    ("images-missing", "activations --weights random:0 --images {dir}/nowhere --out {dir}/a.npz", "does not exist"),
    ("images-empty", "activations --weights random:0 --images {empty} --out {dir}/a.npz", "holds no images"),
    ("image-unreadable", "activations --weights random:0 --images {badimg} --out {dir}/a.npz", "x.JPEG"),
    ("fz-steps-0", "fz --weights random:0 --steps 0", "--steps: must be 1 or more"),
    ("fz-steps-negative", "fz --weights random:0 --steps -5", "--steps: must be 1 or more"),
    ("fz-batch-size-0", "fz --weights random:0 --batch-size 0", "--batch-size: must be 1 or more"),
    ("activations-batch-size-0", "activations --weights random:0 --batch-size 0 --out {dir}/a.npz", "--batch-size"),
    ("channels-reversed", "fz --weights random:0 --channels 5-2", "runs backwards"),
    ("channels-not-numbers", "fz --weights random:0 --channels a-b", "cannot read 'a-b'"),
    ("channels-out-of-range", "fz --weights random:0 --blocks 1.1 --channels 0-999", "channel 999 out of range"),
    ("fz-taps-unknown", "fz --weights random:0 --taps I,Q", "unknown tap kind Q"),
    ("activations-taps-unknown", "activations --weights random:0 --taps I,Q --out {dir}/a.npz", "unknown tap kind Q"),
    ("limit-0", "activations --weights random:0 --limit 0 --out {dir}/a.npz", "--limit: must be 1 or more"),
    ("limit-negative", "activations --weights random:0 --limit -3 --out {dir}/a.npz", "--limit: must be 1 or more"),
    ("cache-dir-is-a-file", "fz --weights random:0 --cache-dir {a_file}", "is a file, not a folder"),
    ("export-is-a-file", "fz --weights random:0 --blocks 1.1 --channels 0 --export {a_file}", "is a file, not a folder"),
    ("out-is-a-folder", "activations --weights random:0 --out {out_dir}", "is a folder"),
    ("device-tpu", "fz --weights random:0 --device tpu", "unknown device"),
    ("device-cuda-without-gpu", "fz --weights random:0 --device cuda", "no CUDA device", NO_GPU),
    ("profile-internal", "fz --weights random:0 --profile census-planted", "use one of paper, quick, smoke"),
    ("jitter-table-unknown", "fz --weights random:0 --jitter-table bogus", "use one of paper"),
    ("shard-out-of-range", "fz --weights random:0 --shard 5/2", "K must be 0..N-1"),
    ("expectations-from-all-errors", "expectations --from {all_error_json}", "every claim of this report errored"),
    ("expectations-from-missing", "expectations --from {dir}/none.json", "not a readable claims-report.json"),
    ("expectations-from-not-json", "expectations --from {not_json_json}", "not a readable claims-report.json"),
    ("compare-out-is-a-file", "compare {all_error_json} --out {a_file}", "is a file, not a folder"),
    ("compare-report-missing", "compare {dir}/none.json --out {dir}/cmp", "none.json"),
    ("run-model-unknown", "run --model resnet9000 --weights random:0", "unknown model"),
    ("run-baseline-missing", "run --weights random:0 --baseline {dir}/missing.json", "no such file"),
    ("run-fz-seeds-0", "run --weights random:0 --fz-seeds 0", "--fz-seeds: must be 1 or more"),
    ("run-antialias-is-a-switch", "run --weights random:0 --antialias yes", "unrecognized arguments"),
    ("validate-seeds-0", "validate --seeds 0", "--seeds: must be 1 or more"),
    ("bench-steps-0", "bench fz --steps 0", "--steps: must be 1 or more"),
]

PYTEST_CASES = [
    ("model-unknown", "--model resnet9000", "unknown model"),
    ("weights-source-unknown", "--weights bogus:3", "unknown weights source"),
    ("weights-nan", "--weights {nan_pth}", "NaN or infinite"),
    ("weights-wrong-architecture", "--model resnet34 --weights {r18_pth}", "do not fit resnet34"),
    ("weights-truncated", "--weights {truncated_pth}", "not a readable PyTorch state dict"),
    ("jitter-table-unknown", "--jitter-table bogus", "use one of paper"),
    ("profile-internal", "--profile census-planted", "use one of paper, quick, smoke"),
    ("device-tpu", "--device tpu", "unknown device"),
    ("device-cuda-without-gpu", "--device cuda", "no CUDA device", NO_GPU),
    ("baseline-missing", "--baseline {dir}/missing.json", "no such file"),
    ("baseline-not-json", "--baseline {not_json_json}", "not a readable claims-report.json"),
    ("baseline-other-model", "--profile smoke --baseline {other_model_json}", "not comparable"),
    ("expectations-missing", "--expectations {dir}/missing.toml", "no such file: pass a TOML expectations file"),
    ("expectations-not-toml", "--expectations {bad_toml}", "expectations file"),
    ("expectations-unknown-claim", "--expectations {wrong_id_toml}", "unknown claim ids"),
    ("images-missing", "--images {dir}/nowhere", "does not exist"),
    ("image-unreadable", "--images {badimg}", "x.JPEG"),
    ("artifacts-dir-is-a-file", "--artifacts-dir {a_file}", "is a file, not a folder"),
    ("cache-dir-is-a-file", "--cache-dir {a_file}", "is a file, not a folder"),
    ("fz-seeds-0", "--fz-seeds 0", "must be 1 or more"),
    ("controls-negative", "--controls -1", "must be 0 or more"),
]


def _params(rows) -> list:
    return [pytest.param(*row[1:3], id=row[0], marks=row[3:]) for row in rows]


def _argv(template: str, files: dict) -> list[str]:
    return template.format(**files).split()


def _one_line(err: str, out: str, expected: str) -> None:
    assert "Traceback" not in err + out, err + out
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err, err
    assert len(err) < 600, err  # a short line (paths included), never a list of 936 channel numbers


def _nothing_computed(files: dict) -> None:
    assert not Path(files["cache"]).exists(), "the cache was opened before the error"
    assert not Path(files["art"]).exists(), "the artifacts folder was made before the error"


@pytest.mark.parametrize("template, expected", _params(CLI_CASES))
def test_cli_bad_input(template, expected, files, capsys, monkeypatch):
    monkeypatch.chdir(files["dir"])
    argv = _argv(template, files)
    if argv[0] in ("fz", "activations", "blocks") and "--cache-dir" not in argv:
        argv += ["--cache-dir", files["cache"]]
    if argv[0] == "run":
        argv += ["--cache-dir", files["cache"], "--artifacts-dir", files["art"]]
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2, captured
    _one_line(captured.err, captured.out, expected)
    _nothing_computed(files)
    assert not (Path(files["dir"]) / "a.npz").exists()


@pytest.mark.parametrize("template, expected", _params(PYTEST_CASES))
def test_pytest_claims_bad_option(template, expected, files, monkeypatch):
    monkeypatch.chdir(ROOT)
    argv = _argv(template, files)
    if "--weights" not in argv:
        argv += ["--weights", "random:0"]
    if "--cache-dir" not in argv:
        argv += ["--cache-dir", files["cache"]]
    if "--artifacts-dir" not in argv:
        argv += ["--artifacts-dir", files["art"]]
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = pytest.main(["claims", "-p", "no:cacheprovider", *argv])
    assert code == pytest.ExitCode.USAGE_ERROR, (err.getvalue(), out.getvalue())
    _one_line(err.getvalue(), out.getvalue(), expected)
    _nothing_computed(files)


def _collect(monkeypatch, *args) -> list[str]:
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = pytest.main(["claims", "-p", "no:cacheprovider", "--collect-only", "-q", "--weights", "random:0", *args])
    assert code == 0, out.getvalue()
    return [line for line in out.getvalue().splitlines() if "::" in line]


def test_claim_ids_select_their_tests_with_k(monkeypatch):
    """``pytest claims -k fig7`` runs fig7-robust: every SPEC id is in its test's id, and in no other."""
    assert _collect(monkeypatch, "-k", "fig7") == ["claims/test_fig5_to_8_scale.py::test_robust[fig7-robust]"]
    ids = _collect(monkeypatch, "-k", " or ".join(CLAIM_IDS))
    assert sorted(i.rsplit("[", 1)[1].rstrip("]") for i in ids) == sorted(CLAIM_IDS)
    for cid in CLAIM_IDS:  # -k matches names by substring: each full id selects one test
        assert [i for i in ids if cid in i] == [i for i in ids if i.endswith(f"[{cid}]")], cid


def test_image_damaged_past_its_header_stops_the_pass_naming_it(tmp_path, capsys):
    """A JPEG cut short passes the header check; the pass that reads it stops with one line (the
    DataLoader worker's traceback is not shown), and no table is written."""
    from rsi_core.model.images import bundled_dir
    src = sorted(bundled_dir().rglob("*.JPEG"))[:2]
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.JPEG").write_bytes(src[0].read_bytes())
    (tmp_path / "img" / "b.JPEG").write_bytes(src[1].read_bytes()[:3000])
    code = cli.main(["activations", "--weights", "random:0", "--images", str(tmp_path / "img"),
                     "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "a.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rsi: error: cannot read image") and "b.JPEG" in last and "truncated" in last, err
    assert not (tmp_path / "a.npz").exists()


@pytest.mark.parametrize("field, value", [("steps", 0), ("steps", -5), ("objective", "pixel"), ("precision", "fp8"),
                                          ("jitter_table", "bogus"), ("target", "as-read")])
def test_fz_settings_refuse_what_the_cli_refuses(field, value):
    """The library says no too: FZSettings(steps=0) would cache unoptimized images as FZs."""
    from rsi_core.fz.render import FZSettings
    with pytest.raises(ValueError, match="use "):
        FZSettings(**{field: value})


def test_a_folder_option_accepts_an_existing_folder_and_a_file_option_a_new_file(files):
    """rsi compare --out is a folder, rsi activations --out a file: each checked as what it is."""
    for argv in (["compare", files["all_error_json"], "--out", files["out_dir"]],
                 ["activations", "--out", str(Path(files["dir"]) / "new" / "acts.npz")]):
        args = cli.build_parser().parse_args(argv)
        args.load = False
        cli.check(args)
    assert not (Path(files["dir"]) / "new").exists()
