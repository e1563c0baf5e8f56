"""Peak memory of the natural-image pass: flat in the number of images, beyond the tables.

    python benchmarks/memory.py --images DIR                 # 100 and 1,000 images of DIR, 50,000 synthetic
    python benchmarks/memory.py --sizes 100 --synthetic 0    # quick look, bundled sample
    python benchmarks/memory.py --slope 10000                # growth per 1,000 images over a long stream

Each measurement runs in its own process (a fresh peak): it loads resnet18 (random:0; the
weights do not change memory), streams the centre activations of the I, B and O taps of the
seven studied blocks (rsi_core.model.activations.stream_centre, as ``rsi activations`` and the claims
do), and reports its peak resident memory (ru_maxrss) before and after the stream. The
synthetic stream is a FakeData-like dataset of 50,000 seeded random 224x224 images generated on
the fly; ``--time-limit`` stops it after that many seconds (on a CPU it cannot finish quickly)
and the images done so far are reported. ``growth - tables`` is what the pass costs beyond its
output: it must not grow with the number of images. The last line printed is JSON.

``--slope N`` streams the first N images of the synthetic pass (its tables sized for all of it,
as a user's) and samples the anonymous resident memory beyond the tables filled so far every
1,000 images (printed as it goes; no time limit unless given):
``slope_mb_per_1000`` is its least-squares growth per 1,000 images after the first 2,000, printed
with the load average (``--glibc-default`` leaves malloc's dynamic mmap threshold on, as before
issue 31: the same run without the fix).
"""
import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time

MB = 2 ** 20


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class TimeUp(Exception):
    pass


def rss_now_mb() -> float:
    """Anonymous resident memory (malloc's and the tables'), without the libraries' file pages,
    which the kernel drops and reloads under memory pressure."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:")) / 1024


def child(source: str, count: int, time_limit: float, batch_size: int, slope: int = 0,
          glibc_default: bool = False) -> dict:
    import numpy as np
    import torch

    from rsi_core.model import activations
    from rsi_core.model.activations import block_taps, stream_centre
    if glibc_default:
        activations._flat_malloc = lambda: False
    from rsi_core.model.images import ImageSet
    from rsi_core.model.load import load_model
    from rsi_core.paper import PAPER_BLOCKS

    class FakeStream(torch.utils.data.Dataset):
        """FakeData-like: image i is seeded noise, made when asked for, never stored."""
        def __len__(self):
            return count

        def __getitem__(self, i):
            return torch.randn(3, 224, 224, generator=torch.Generator().manual_seed(i))

    if source == "synthetic":
        images, kind = FakeStream(), "synthetic (FakeData-like, generated on the fly)"
    else:
        found = ImageSet.from_dir(source)
        files = [found.files[i % len(found)] for i in range(count)]  # repeats if the folder is smaller
        images, kind = ImageSet(found.root, files), found.kind
    model = load_model("resnet18", "random:0")
    taps = block_taps(PAPER_BLOCKS)
    stream_centre(model, torch.utils.data.Subset(images, range(batch_size)), taps,
                  batch_size=batch_size, progress=False)  # warm-up: one batch's working set
    before = rss_peak_mb()
    done, samples = [0], []
    per_image = sum(find_channels(model, t) for t in taps) * 4 / MB

    def counted(_m, args):
        if slope and done[0] // 1000 != (done[0] + len(args[0])) // 1000:
            samples.append((done[0], rss_now_mb() - done[0] * per_image))  # beyond the tables filled so far
            print(f"{done[0]} images: {samples[-1][1]:.1f} MB beyond the tables", file=sys.stderr, flush=True)
        if slope and done[0] >= slope:
            raise TimeUp  # N images of the whole pass: its tables sized as a user's
        done[0] += len(args[0])
    model.register_forward_pre_hook(counted)

    def stop(*_):
        raise TimeUp

    signal.signal(signal.SIGALRM, stop)
    if time_limit:
        signal.setitimer(signal.ITIMER_REAL, time_limit)
    t0 = time.perf_counter()
    try:
        tables = stream_centre(model, images, taps, batch_size=batch_size, progress=False)
        table_mb = sum(t.nbytes for t in tables.values()) / MB
    except TimeUp:
        table_mb = None
    seconds = time.perf_counter() - t0
    signal.setitimer(signal.ITIMER_REAL, 0)
    filled = done[0] * per_image if table_mb is None else table_mb
    after = rss_peak_mb()
    return {"source": kind, "images_asked": count, "images_done": done[0], "stopped_by_time_limit": table_mb is None,
            "seconds": round(seconds, 1), "images_per_second": round(done[0] / seconds, 1),
            "peak_rss_before_mb": round(before, 1), "peak_rss_after_mb": round(after, 1),
            "growth_mb": round(after - before, 1), "tables_mb": round(filled, 1),
            "growth_minus_tables_mb": round(after - before - filled, 1),
            **({"samples": [(n, round(m, 1)) for n, m in samples], "glibc_default": glibc_default,
                "slope_mb_per_1000": _slope([(n, m) for n, m in samples if n >= 2000], np)} if slope else {})}


def _slope(points, np) -> float | None:
    if len(points) < 3:
        return None
    n, m = np.array(points, dtype=float).T
    return round(float(np.polyfit(n / 1000, m, 1)[0]), 2)


def find_channels(model, tap: str) -> int:
    from rsi_core.model.anatomy import find_block
    return find_block(model, tap.rsplit(".", 1)[0]).channels


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", default=None, help="image folder (default: the bundled sample, repeated as needed)")
    p.add_argument("--sizes", default="100,1000", help="numbers of real images, comma list")
    p.add_argument("--synthetic", type=int, default=50000, help="synthetic stream length (0: skip)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds before a run is stopped (0: none; default 300, none with --slope)")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--slope", type=int, default=0,
                   help="instead: the first N images of the --synthetic pass, memory growth per 1,000")
    p.add_argument("--glibc-default", action="store_true", help="with --slope: malloc's own mmap threshold")
    p.add_argument("--child", nargs=2, metavar=("SOURCE", "COUNT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.time_limit is None:
        args.time_limit = 0 if args.slope else 300
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.time_limit, args.batch_size, args.slope,
                               args.glibc_default)))
        return 0
    if args.slope:
        cmd = [sys.executable, __file__, "--child", "synthetic", str(args.synthetic), "--slope", str(args.slope),
               "--time-limit", str(args.time_limit), "--batch-size", str(args.batch_size)]
        out = subprocess.run(cmd + (["--glibc-default"] if args.glibc_default else []), stdout=subprocess.PIPE,
                             text=True, check=True)  # its samples on stderr as they come
        r = json.loads(out.stdout.strip().splitlines()[-1])
        load = [round(x, 2) for x in os.getloadavg()]
        print(f"{r['images_done']} synthetic images: beyond the tables {r['samples']} (images, MB); "
              f"slope {r['slope_mb_per_1000']} MB per 1,000 images; load average {load}", file=sys.stderr)
        print(json.dumps({"batch_size": args.batch_size, "load_average": load, "slope": r}))
        return 0
    runs = [(args.images or "", int(n)) for n in args.sizes.split(",") if n]
    if args.synthetic:
        runs.append(("synthetic", args.synthetic))
    results = []
    for source, count in runs:
        cmd = [sys.executable, __file__, "--child", source, str(count), "--time-limit", str(args.time_limit),
               "--batch-size", str(args.batch_size)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{r['images_done']:>6} of {r['images_asked']:>6} images ({r['source'][:40]}): "
              f"peak {r['peak_rss_before_mb']:.0f} -> {r['peak_rss_after_mb']:.0f} MB, tables {r['tables_mb']:.1f} MB, "
              f"beyond tables {r['growth_minus_tables_mb']:+.1f} MB, {r['images_per_second']:.1f} images/s",
              file=sys.stderr)
    print(json.dumps({"batch_size": args.batch_size, "runs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
