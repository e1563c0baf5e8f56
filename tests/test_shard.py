"""rsi fz --shard K/N: disjoint shards whose union is the whole bank, filled by separate processes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rsi_core.fz.shard import parse_shard, shard_requests

ROOT = Path(__file__).resolve().parents[1]


@given(st.dictionaries(st.sampled_from(["1.1.I", "1.1.B", "2.0.I", "4.1.B"]),
                       st.lists(st.integers(0, 511), max_size=40), min_size=1),
       st.integers(1, 9))
def test_shards_partition_the_request(requests, n):
    shards = [shard_requests(requests, k, n) for k in range(n)]
    dealt = [(t, c) for s in shards for t, chans in s.items() for c in chans]
    assert len(dealt) == len(set(dealt))  # nothing twice
    assert set(dealt) == {(t, c) for t, chans in requests.items() for c in chans}  # nothing left out
    sizes = [sum(map(len, s.values())) for s in shards]
    assert max(sizes) - min(sizes) <= 1  # balanced
    # the same request in another order gives the same shards (processes agree)
    reordered = {t: list(reversed(requests[t])) for t in reversed(list(requests))}
    assert [shard_requests(reordered, k, n) for k in range(n)] == shards


@pytest.mark.parametrize("spec", ["2/2", "-1/3", "1", "a/b", "0/0"])
def test_bad_shard_specs_say_how(spec):
    with pytest.raises(ValueError, match="K/N|0..N-1"):
        parse_shard(spec)


RUN_SHARD = """
import json, sys
from rsi_core.harness import cli
from rsi_core.fz.bank import FZBank
log, argv = sys.argv[1], sys.argv[2:]
original = FZBank._compute
def logged(self, tap, channels, bar):
    with open(log, "a") as f:
        f.write(json.dumps([tap, list(channels)]) + "\\n")
    return original(self, tap, channels, bar)
FZBank._compute = logged
sys.exit(cli.main(argv))
"""


@pytest.mark.slow
def test_two_processes_fill_one_bank_without_overlap(tmp_path):
    cache = tmp_path / "cache"
    # 1.1.I is the same tensor as 1.0.O: one FZ, in one shard only
    args = ["fz", "--weights", "random:0", "--device", "cpu", "--blocks", "1.0,1.1", "--taps", "I,B,O",
            "--channels", "0-2", "--steps", "2", "--cache-dir", str(cache)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", RUN_SHARD, str(tmp_path / f"log{k}"), *args,
                               "--shard", f"{k}/2"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for k in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    computed = [[(tap, c) for line in (tmp_path / f"log{k}").read_text().splitlines()
                 for tap, chans in [json.loads(line)] for c in chans] for k in range(2)]
    from rsi_core.model.anatomy import canonical_tap  # the bank keys 1.1.I as 1.0.O (the same tensor)
    from rsi_core.model.load import load_model
    model = load_model("resnet18", "random:0")
    everything = {(canonical_tap(model, f"{b}.{t}"), c) for b in ("1.0", "1.1") for t in "IBO" for c in range(3)}
    assert len(everything) == 15 and sorted(map(len, computed)) == [7, 8]
    assert not set(computed[0]) & set(computed[1])  # no FZ twice
    assert set(computed[0]) | set(computed[1]) == everything  # the union is the bank
    assert len(list((cache / "fz").glob("*.npz"))) == 15
    # a later unsharded run finds the bank complete and computes nothing
    rerun = subprocess.run([sys.executable, "-c", RUN_SHARD, str(tmp_path / "log-all"), *args],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert not (tmp_path / "log-all").exists()
