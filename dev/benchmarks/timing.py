"""Timing helpers shared by every benchmark section: paired, interleaved samples and their ratios.

Contenders run in turn inside one process (A B B A ...), so a slow drift of a shared
machine hits each alike; a ratio is the median of per-round ratios. The micro-benchmarks
(sections linear and gpu's matmul) use ``torch.utils.benchmark.Timer`` for the calls
themselves (it synchronises CUDA and picks the number of calls).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch.utils import benchmark


def sync(device: torch.device | str) -> None:
    """Wait for queued device work (CUDA kernels run asynchronously)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def steady_allocator() -> bool:
    """Fix glibc's malloc thresholds for the rest of the process (Linux; False elsewhere).

    glibc serves a block above its mmap threshold with a fresh mmap, whose pages the kernel
    faults in and zeroes on first touch, and the threshold moves as blocks are freed: the same
    eager torch forward then takes 37 or 65 ms (the fp32 mixer at batch 256, 2 threads) depending
    on what the process did before. With blocks of up to 32 MB (glibc's largest threshold) served
    from the heap and no trimming, torch stays at its fast end on every call: the float32
    reference of a speed-up is then its best, not its luck. ONNX Runtime has its own arena.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if sys.platform != "linux" or not name:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20)) and bool(libc.mallopt(m_trim_threshold, 2**30))


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def seconds(fn: Callable[[], Any], device: str) -> float:
    """Wall seconds of one call of ``fn``, device work included."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleaved(
    contenders: dict[str, Callable[[], Any]],
    *,
    repeats: int,
    warmup: int = 1,
    device: str = "cpu",
    settle_s: float = 0.0,
) -> dict[str, list[float]]:
    """Seconds per call of each contender, called in turn ``repeats`` times.

    The order is reversed every other round (ABBA...), so a slow drift of the machine
    hits every contender alike. ``warmup`` untimed rounds come first. ``settle_s``: an idle
    pause before each timed call, so that the thread pools of the contender before (ONNX
    Runtime's workers spin for over 10 ms after a run) are asleep and take no core from it.
    """
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + repeats):
        for name in names if round_index % 2 == 0 else names[::-1]:
            if settle_s:
                time.sleep(settle_s)
            elapsed = seconds(contenders[name], device)
            if round_index >= warmup:
                times[name].append(elapsed)
    return times


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of per-round ratios: each pair ran back to back, so noise mostly cancels."""
    return median(a / b for a, b in zip(numerator, denominator, strict=True))


def calls_for(fn: Callable[[], Any], *, target_s: float) -> int:
    """How many calls of ``fn`` take about ``target_s`` seconds (``torch.utils.benchmark``'s estimate)."""
    measurement = benchmark.Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=target_s / 4)
    return max(1, int(target_s / measurement.median))


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 1e5:
            return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)


# Every table printed in this process, as Markdown (``--markdown`` writes them to a file).
TABLES: list[str] = []


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """Print a Markdown table (docs/benchmarks.md's tables are these, from ``--markdown``)."""
    cells = [header, *[[fmt(cell) for cell in row] for row in rows]]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    lines = [f"## {title}", ""]
    lines.append("| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    for row in cells[1:]:
        lines.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    TABLES.append("\n".join(lines))
    print("\n" + TABLES[-1])
    sys.stdout.flush()


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def environment(device: str, argv: list[str]) -> dict[str, Any]:
    """Versions, machine, load and the command: stored with every result."""
    import lightning

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "command": " ".join(["python", "scripts/benchmark.py", *argv]),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    if hasattr(os, "getloadavg"):
        info["load_average"] = os.getloadavg()
    return info
