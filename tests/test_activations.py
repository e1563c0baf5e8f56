"""Centre activations: copied out of the maps (bounded memory), streamed in place, saved by rsi activations."""
import ctypes
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rsi_core.harness import cli
from rsi_core.model.activations import block_taps, load_tables, stream_centre
from rsi_core.model.anatomy import TapCapture, read_taps
from rsi_core.model.load import load_model


@pytest.fixture(scope="module")
def r18():
    torch.set_num_threads(1)
    return load_model("resnet18", "random:0")


class Noise(torch.utils.data.Dataset):
    def __len__(self):
        return 7

    def __getitem__(self, i):
        return torch.randn(3, 96, 96, generator=torch.Generator().manual_seed(i))


def test_centre_values_own_their_memory(r18):
    """A view of the centre would keep the whole [N, C, H, W] map alive: the kept tensor's
    storage must hold only its own N x C values."""
    x = torch.stack([Noise()[i] for i in range(2)])
    with TapCapture(r18, ["1.1.B", "3.0.I"], centre=True) as cap:
        acts = cap(x)
    for t, a in acts.items():
        assert a.untyped_storage().nbytes() == a.numel() * a.element_size(), t


def test_streamed_tables_equal_the_maps_centres_across_batches(r18):
    taps = block_taps(["1.1", "2.0"])
    tables = stream_centre(r18, Noise(), taps, batch_size=3, progress=False)
    full = read_taps(r18, torch.stack([Noise()[i] for i in range(7)]), taps)
    for t in taps:
        m = full[t]
        assert tables[t].shape == (7, m.shape[1]) and tables[t].dtype == np.float32
        np.testing.assert_allclose(tables[t], m[:, :, m.shape[2] // 2, m.shape[3] // 2].numpy(), rtol=1e-4, atol=1e-5)


def test_rsi_activations_writes_tables_files_and_provenance(tmp_path, r18):
    out = tmp_path / "acts.npz"
    assert cli.main(["activations", "--weights", "random:0", "--device", "cpu", "--limit", "6",
                     "--blocks", "1.1,4.1", "--taps", "B,O", "--batch-size", "4", "--out", str(out)]) == 0
    z = np.load(out)
    assert sorted(k for k in z.files if k[0].isdigit()) == ["1.1.B", "1.1.O", "4.1.B", "4.1.O"]
    assert z["1.1.B"].shape == (6, 64) and z["4.1.O"].shape == (6, 512)
    assert len(z["files"]) == 6 and str(z["files"][0]).endswith(".JPEG")
    assert str(z["provenance/weights"]) == "random:0" and "provenance" not in z.files   # no 0-d JSON string
    tables, files, prov = load_tables(out)
    assert sorted(tables) == ["1.1.B", "1.1.O", "4.1.B", "4.1.O"] and files == [str(f) for f in z["files"]]
    assert prov["weights"] == "random:0" and prov["image_count"] == 6 and prov["taps"] == sorted(tables)
    assert prov["image_set"].startswith("bundled sample")
    pre = prov["preprocess"]   # as the images were read: a plain mapping, not a string
    assert (pre["resize"], pre["crop"], pre["interpolation"]) == (256, 224, "bilinear")
    assert pre["mean"] == [0.485, 0.456, 0.406] and pre["std"] == [0.229, 0.224, 0.225]
    assert "downsample" in prov["tap_semantics"]["I"] and "centre neuron" in prov["tap_semantics"]["centre"]
    assert prov["rsi_version"]
    assert not list(tmp_path.glob("*.tmp.npz"))


def test_files_with_the_provenance_as_one_json_string_still_load(tmp_path):
    out = tmp_path / "old.npz"
    np.savez(out, files=np.array(["a/x.JPEG"]), provenance=np.array(json.dumps({"weights": "random:0"})),
             **{"1.1.B": np.zeros((1, 64), np.float32)})
    tables, files, prov = load_tables(out)
    assert files == ["a/x.JPEG"] and prov == {"weights": "random:0"} and tables["1.1.B"].shape == (1, 64)


MALLOC_PROBE = """
import ctypes, ctypes.util, sys
from rsi_core.model import activations
libc = ctypes.CDLL(ctypes.util.find_library("c"))
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype, libc.malloc.restype = Info, ctypes.c_void_p
libc.malloc.argtypes, libc.free.argtypes = [ctypes.c_size_t], [ctypes.c_void_p]
if sys.argv[1] == "flat":
    assert activations._flat_malloc()
libc.free(libc.malloc(8 << 20))  # a big block freed: glibc's own threshold rises to 8 MiB
before = libc.mallinfo2().hblkhd
p = libc.malloc(2 << 20)  # a batch's map
print(libc.mallinfo2().hblkhd - before >= 2 << 20)  # its own mapping: returned to the system when freed
libc.free(p)
"""


@pytest.mark.parametrize("mode, mapped", [("flat", "True"), ("glibc", "False")])
def test_the_natural_pass_keeps_batch_buffers_out_of_mallocs_heap(mode, mapped):
    """Why the 50,000-image pass stays flat (benchmarks/memory.py --slope measures it): after
    _flat_malloc a 2 MiB block is mapped on its own even after a bigger one was freed; with
    glibc's dynamic threshold it comes from the heap, which keeps it."""
    if not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("no glibc mallinfo2 (glibc < 2.33 or another C library)")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", MALLOC_PROBE, mode], cwd=root, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == mapped, out.stderr[-2000:]
