"""Split a set of FZ requests into N disjoint shards, the same way in every process.

``rsi fz --shard K/N`` (K = 0..N-1, e.g. a SLURM array index or a torchrun rank) renders shard
K into a cache folder the shards share; together the N shards are the whole request. Every
(tap, channel) goes to exactly one shard: (tap, channel) pairs are sorted and dealt round-robin,
so each shard gets about 1/N of every tap (balanced work, full batches) and the split depends
only on the request, never on the process, host or hash seed.
"""
from __future__ import annotations


def parse_shard(spec: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N."""
    try:
        k, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ValueError(f"bad --shard {spec!r}: write K/N, e.g. 0/4 (K counts from 0)") from None
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"bad --shard {spec!r}: K must be 0..N-1 (e.g. $SLURM_ARRAY_TASK_ID/N with --array=0-{max(n, 1) - 1})")
    return k, n


def shard_requests(requests: dict[str, list[int]], k: int, n: int) -> dict[str, list[int]]:
    """Shard ``k`` of ``n`` of ``{tap: channels}``; taps with nothing in this shard are left out."""
    pairs = sorted({(tap, int(c)) for tap, chans in requests.items() for c in chans})
    out: dict[str, list[int]] = {}
    for i, (tap, c) in enumerate(pairs):
        if i % n == k:
            out.setdefault(tap, []).append(c)
    return out
