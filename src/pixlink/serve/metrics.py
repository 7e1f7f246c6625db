"""Prometheus text metrics of a worker (``GET /metrics``), kept without a client library.

Counters of requests by route and status, a latency histogram per route, and gauges read when
scraped (requests in progress, refusals, cache sizes and hits, resident memory). Each worker
process has its own numbers (as with any multi-process Python server without a shared store).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Callable

BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Latency histogram buckets (seconds): dense around the page's 0.3 s and 1.5 s targets."""


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(d: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(d.items())) + "}" if d else ""


class Metrics:
    """Thread-safe request counters and latency histograms, plus gauges read at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.hist: dict[str, list[int]] = {}
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.gauges: list[Callable[[], list[tuple[str, str, dict[str, str], float]]]] = []

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, method, status)] += 1
            h = self.hist.setdefault(route, [0] * (len(BUCKETS) + 1))
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    h[i] += 1
                    break
            else:
                h[-1] += 1
            self.sums[route] += seconds
            self.counts[route] += 1

    def add_gauges(self, fn: Callable[[], list[tuple[str, str, dict[str, str], float]]]) -> None:
        """``fn()`` -> ``[(name, type, labels, value)]``, called at each scrape."""
        self.gauges.append(fn)

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            reqs = dict(self.requests)
            hist = {k: list(v) for k, v in self.hist.items()}
            sums, counts = dict(self.sums), dict(self.counts)
        out += ["# HELP pixlink_requests_total HTTP requests by route, method and status.",
                "# TYPE pixlink_requests_total counter"]
        for (route, method, status), n in sorted(reqs.items()):
            out.append(f"pixlink_requests_total{_labels({'route': route, 'method': method, 'status': str(status)})} {n}")
        out += ["# HELP pixlink_request_seconds Request latency by route.", "# TYPE pixlink_request_seconds histogram"]
        for route, h in sorted(hist.items()):
            acc = 0
            for b, n in zip(BUCKETS, h):
                acc += n
                out.append(f"pixlink_request_seconds_bucket{_labels({'route': route, 'le': repr(b)})} {acc}")
            acc += h[-1]
            out.append(f"pixlink_request_seconds_bucket{_labels({'route': route, 'le': '+Inf'})} {acc}")
            out.append(f"pixlink_request_seconds_sum{_labels({'route': route})} {sums[route]:.6f}")
            out.append(f"pixlink_request_seconds_count{_labels({'route': route})} {counts[route]}")
        seen: set[str] = set()
        for fn in self.gauges:
            for name, kind, labels, value in fn():
                if name not in seen:
                    out.append(f"# TYPE {name} {kind}")
                    seen.add(name)
                out.append(f"{name}{_labels(labels)} {float(value):g}")
        return "\n".join(out) + "\n"


def rss_bytes() -> int:
    """Resident memory of this process in bytes (Linux ``/proc/self/statm``; 0 where it is absent)."""
    import os

    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
