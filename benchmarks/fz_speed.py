"""FZ speed: the paper's lucent loop against the engine (same as ``rsi bench fz``).

    python benchmarks/fz_speed.py                       # CPU defaults: 16 steps, batch 16
    python benchmarks/fz_speed.py --device cuda --json   # 128 steps, batch 256

The last line printed is a JSON object with ``speedup`` (total lucent time / total engine time,
per FZ, summed over the I and B taps of the seven studied blocks).
"""
import argparse
import sys

from rsi_core.fz.bench import main


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=None, help="steps per FZ (default 16 on CPU, 128 on CUDA)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=None, help="engine batch (default 16 on CPU, 256 on CUDA)")
    p.add_argument("--blocks", default=None, help="comma list, e.g. 1.1,4.1 (default: the seven studied)")
    p.add_argument("--taps", default=None, help="tap kinds, e.g. IB (default) or B")
    p.add_argument("--repeats", type=int, default=1, help="time each side N times, keep the best (default 1)")
    p.add_argument("--json", action="store_true", help="table to stderr, only the JSON line to stdout")
    args = p.parse_args(argv)
    if args.blocks:
        args.blocks = args.blocks.split(",")
    return args


if __name__ == "__main__":
    sys.exit(main(parse()))
