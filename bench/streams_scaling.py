"""Processing that scales with the stream: a sinusoidal load, segments and workers over time, lag.

One stream server (in this process, over an embedded store in a temporary directory) and a load
generator writing events at a rate that rises from ``--low`` to ``--peak`` events/s and back
along one sine period of ``--duration`` seconds. A :class:`StreamProcessor` turns each event
into one output (after ``--work`` seconds of simulated processing, a sleep as for I/O); its
workers are processes of the local executor (``--backend ray``: Ray tasks). Two cells, one
after the other, on the same load:

  * baseline: a fixed input stream (1 segment) and 1 worker;
  * ours: the input auto-scales at ``--target`` events/s per segment, one worker per segment,
    workers retired ``--scale-down-delay`` seconds after the segments ask for fewer.

Printed per cell: lag (output visible - input written) p50/p95/max, the time to drain the
backlog once the load stops, peak segments and workers, and the exactly-once check of the
outputs (every input once). A PNG (``--png``) plots load, segments, workers and lag over time.

Usage:
    .venv/bin/python bench/streams_scaling.py            # 120 s per cell
    .venv/bin/python bench/streams_scaling.py --quick    # 40 s per cell
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xtremehub.streams import ScalingPolicy, StreamManager
from xtremehub.streams.client.reader import EventRead
from xtremehub.streams.processing import StreamProcessor
from xtremehub.streams.server import ServerConfig, serve_background

KEYS = 64


def make_work(seconds: float) -> Callable[[EventRead], list[bytes]]:
    """The processing function: ``seconds`` of simulated work, one output (the input payload)."""

    def work(event: EventRead) -> list[bytes]:
        time.sleep(seconds)
        return [event.data]

    return work


@dataclass
class Cell:
    """What one cell measured."""

    name: str
    written: int = 0
    outputs: dict[int, float] = field(default_factory=dict)  # input number -> lag (s)
    duplicates: int = 0
    samples: list[tuple[float, float, int, int, float]] = field(default_factory=list)  # t, rate, segs, workers, lag
    drain: float = math.nan

    def lags(self) -> list[float]:
        return sorted(self.outputs.values())


def rate_at(t: float, low: float, peak: float, period: float) -> float:
    """Events/s at ``t``: one sine period from ``low`` up to ``peak`` and back."""
    return low + (peak - low) * (1 - math.cos(2 * math.pi * t / period)) / 2


def produce(url: str, stream: str, args: argparse.Namespace, cell: Cell, t0: float) -> None:
    """Write events at the sinusoidal rate for ``args.duration`` seconds (payload: number and time)."""
    with StreamManager(url) as manager, manager.create_writer("bench", stream, max_in_flight=256) as writer:
        due = 0.0
        last = t0
        while (now := time.monotonic()) - t0 < args.duration:
            due += rate_at(now - t0, args.low, args.peak, args.duration) * (now - last)
            last = now
            while cell.written < int(due):
                n = cell.written
                writer.write_event(f"{n}:{time.time():.6f}".encode(), routing_key=f"key-{n % KEYS}")
                cell.written += 1
            time.sleep(0.005)
        writer.flush()


def consume(url: str, stream: str, cell: Cell, stop: threading.Event, window: list[float]) -> None:
    """Read the outputs; lag = now - the input's write time."""
    with StreamManager(url) as manager:
        reader = manager.create_reader_group(f"lag-{stream}", "bench", [stream]).create_reader("lag")
        while not stop.is_set():
            event = reader.read_next(timeout=0.2)
            if event is None or event.is_checkpoint:
                continue
            number, written = event.data.decode().split(":")
            lag = time.time() - float(written)
            if int(number) in cell.outputs:
                cell.duplicates += 1
            cell.outputs[int(number)] = lag
            window.append(lag)
        reader.reader_offline()


def run_cell(url: str, name: str, scaled: bool, args: argparse.Namespace) -> Cell:
    cell = Cell(name)
    with StreamManager(url) as manager:
        manager.create_scope("bench")
        source, sink = f"{name}-in", f"{name}-out"
        manager.create_stream("bench", source)
        manager.create_stream("bench", sink, scaling_policy=ScalingPolicy.fixed(2))
        options: dict[str, Any] = {
            "backend": args.backend,
            "max_workers": args.max_workers,
            "checkpoint_interval": args.checkpoint_interval,
            "scale_down_delay": args.scale_down_delay,
            "scaling_window": 2.0,
            "scaling_cooldown": 2.0,
        }
        if scaled:
            options["events_per_second_per_segment"] = args.target
        else:  # never splits (a huge target); scaling_cooldown keeps it from merging below 1 anyway
            options.update(events_per_second_per_segment=1e9, max_workers=1)
        job = StreamProcessor(url, "bench", source, sink, make_work(args.work), **options)
        stop, window = threading.Event(), []
        consumer = threading.Thread(target=consume, args=(url, sink, cell, stop, window), daemon=True)
        with job:
            consumer.start()
            t0 = time.monotonic()
            producer = threading.Thread(target=produce, args=(url, source, args, cell, t0), daemon=True)
            producer.start()
            last_written, last_t = 0, t0
            end = args.duration + (args.tail if scaled else 0.0)  # then watch the workers retire
            while producer.is_alive() or len(cell.outputs) < cell.written or time.monotonic() - t0 < end:
                time.sleep(1.0)
                now = time.monotonic()
                status = job.status()
                lag = max(window) if window else math.nan
                window.clear()
                rate = (cell.written - last_written) / (now - last_t)
                last_written, last_t = cell.written, now
                cell.samples.append((now - t0, rate, status.segments, len(status.workers), lag))
                if not producer.is_alive() and math.isnan(cell.drain):
                    cell.drain = -(now - t0)  # load over: time the backlog takes from here
                if cell.drain < 0 and len(cell.outputs) >= cell.written:
                    cell.drain += now - t0
                if now - t0 > args.duration + 300:
                    print(f"  {name}: gave up waiting for the backlog ({len(cell.outputs)}/{cell.written})")
                    break
        stop.set()
        consumer.join(10)
    return cell


def summary(cell: Cell) -> dict[str, Any]:
    lags = cell.lags()
    q = statistics.quantiles(lags, n=100) if len(lags) >= 2 else [math.nan] * 99
    return {
        "written": cell.written,
        "exactly_once": len(cell.outputs) == cell.written and cell.duplicates == 0,
        "lag_p50": q[49],
        "lag_p95": q[94],
        "lag_max": lags[-1] if lags else math.nan,
        "drain": cell.drain,
        "peak_segments": max(s[2] for s in cell.samples),
        "peak_workers": max(s[3] for s in cell.samples),
    }


def plot(cells: list[Cell], path: Path, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    for cell in cells:
        t = [s[0] for s in cell.samples]
        base = cell.name == "baseline"
        style = {"color": "0.55", "linestyle": "--"} if base else {}
        axes[0].plot(t, [s[1] for s in cell.samples], label=f"{cell.name}: written ev/s", **style)
        if base:
            axes[1].step(t, [s[3] for s in cell.samples], where="post", label="baseline: 1 segment, 1 worker", **style)
        else:
            axes[1].step(t, [s[2] for s in cell.samples], where="post", color="tab:green", label="segments")
            axes[1].step(t, [s[3] for s in cell.samples], where="post", color="tab:red", label="workers")
        axes[2].plot(t, [s[4] for s in cell.samples], label=f"{cell.name}: max lag in each second", **style)
    axes[0].set_ylabel("events/s")
    axes[1].set_ylabel("count")
    axes[2].set_ylabel("lag (s)")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("seconds since the load started")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(
        f"load {args.low:g}-{args.peak:g} ev/s over {args.duration:g} s, {args.work * 1000:g} ms work per event\n"
        f"target {args.target:g} ev/s per segment, scale-down delay {args.scale_down_delay:g} s",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 s per cell")
    parser.add_argument("--duration", type=float, help="seconds of load per cell (default 120, quick 40)")
    parser.add_argument("--low", type=float, default=20.0)
    parser.add_argument("--peak", type=float, default=400.0)
    parser.add_argument("--target", type=float, default=100.0, help="events/s per segment (auto-scaling)")
    parser.add_argument("--work", type=float, default=0.004, help="seconds of work per event (a sleep)")
    parser.add_argument("--scale-down-delay", type=float, default=5.0)
    parser.add_argument("--checkpoint-interval", type=float, default=0.5)
    parser.add_argument("--tail", type=float, default=15.0, help="seconds watched after the load (scale-down)")
    parser.add_argument("--max-workers", type=int, default=8)
    parser.add_argument("--backend", default="local")
    parser.add_argument("--cells", default="baseline,ours", help="which cells to run, in order")
    parser.add_argument("--png", type=Path, default=Path("bench/results/streams_scaling.png"))
    args = parser.parse_args()
    args.duration = args.duration or (40.0 if args.quick else 120.0)
    logging.basicConfig(level=logging.WARNING)
    with (
        tempfile.TemporaryDirectory() as data,
        StreamManager.embedded(data, maintenance_interval=0.5) as local,
        serve_background(local.store, local.controller, ServerConfig(port=0)) as server,
    ):
        cells = []
        for name in args.cells.split(","):
            print(f"cell {name}: {args.duration:g} s of load ...", flush=True)
            cells.append(run_cell(server.url, name, name != "baseline", args))
    results = {cell.name: summary(cell) for cell in cells}
    print(f"\nload {args.low:g}-{args.peak:g} ev/s over {args.duration:g} s, {args.work * 1000:g} ms work per event")
    print(
        "| cell | events | exactly once | lag p50 | lag p95 | lag max | drain after load | peak segments "
        "| peak workers |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['written']:,} | {'yes' if r['exactly_once'] else 'NO'} | {r['lag_p50']:.2f} s | "
            f"{r['lag_p95']:.2f} s | {r['lag_max']:.2f} s | {r['drain']:.1f} s | {r['peak_segments']} | "
            f"{r['peak_workers']} |"
        )
    if "baseline" in results and "ours" in results:
        base, ours = results["baseline"], results["ours"]
        print(
            f"ratios baseline/ours: lag p50 {base['lag_p50'] / ours['lag_p50']:.1f}x, "
            f"p95 {base['lag_p95'] / ours['lag_p95']:.1f}x, max {base['lag_max'] / ours['lag_max']:.1f}x"
        )
    plot(cells, args.png, args)


if __name__ == "__main__":
    main()
