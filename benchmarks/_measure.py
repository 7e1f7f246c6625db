"""Measuring helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``,
so this folder is on ``sys.path``)."""

from __future__ import annotations

import os
import resource
import statistics
import time
from typing import Any, Callable


def rss_mb() -> float:
    """Resident memory of this process now, in MiB (from /proc/self/statm)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux ``ru_maxrss``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_s(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def plot(path: Any, draw: Callable[[Any], Any], figsize: tuple[float, float] = (6, 3.2)) -> bool:
    """One matplotlib axes drawn by ``draw(ax)`` (then legend, layout) saved as the PNG ``path``
    (Agg backend); False, with a message, when matplotlib is absent."""
    import sys

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is absent: no plot", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=figsize)
    draw(ax)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
