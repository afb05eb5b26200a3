"""Activation sweep vs a plain forward pass: throughput and peak memory (issue 6).

Throughput: in ONE process, interleaved repeats of (a) a plain forward pass of fmnist-cnn over
the 10,000 Fashion-MNIST test images, streamed from the IDX files in batches, and (b) the sweep
of the same stream with EVERY layer captured (all 19 leaf modules in forward order), each
reduced to its channel spatial mean and accumulated (count/mean/variance/min/max/active count
and the exact top-16 images per unit, plus a 256-image uniform sample). Ratio = sweep
throughput / forward throughput (median over repeats; target >= 0.7).

Peak memory: resource.getrusage(RUSAGE_SELF).ru_maxrss (peak resident set size of the whole
process, which includes torch's own allocator — tracemalloc does not see tensor memory) in a
fresh subprocess per measurement, since the peak never goes down within a process: sweeps of
2,000 and 10,000 images, and a baseline process that only imports, loads the model and runs
one batch. Growth = peak(10,000) − peak(2,000); bounded memory means it is ~0.

Usage: .venv/bin/python benchmarks/activation_sweep.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

BATCH = 256


def _setup(threads: int):
    import torch

    torch.set_num_threads(threads)
    import fvlab
    from fvlab.models.probe import forward_order

    model = fvlab.load("fmnist-cnn")
    return torch, model, forward_order(model)


def forward_pass(torch, model, dataset) -> None:
    with torch.no_grad():
        for images, _ in dataset.batches(BATCH):
            model(images)


def full_sweep(model, layers, dataset):
    from fvlab.activations.sweep import sweep

    return sweep(model, dataset, layers, top_k=16, sample=256, batch_size=BATCH,
                 show_progress=False)  # fmt: skip


def child(mode: str, n_images: int, threads: int) -> None:
    torch, model, layers = _setup(threads)
    from fvlab.data.fashion_mnist import FashionMNIST

    dataset = FashionMNIST("test", stop=n_images)
    start = time.perf_counter()
    if mode == "sweep":
        full_sweep(model, layers, dataset)
    elif mode == "forward":
        forward_pass(torch, model, dataset)
    else:  # baseline: one batch
        forward_pass(torch, model, FashionMNIST("test", stop=BATCH))
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    record = {"mode": mode, "n": n_images, "seconds": seconds, "peak_mib": peak_kib / 1024}
    print(json.dumps(record))


def measure_in_child(mode: str, n_images: int, threads: int) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(n_images), "--threads", str(threads)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.threads)
        return

    torch, model, layers = _setup(args.threads)
    from fvlab.data.fashion_mnist import FashionMNIST

    dataset = FashionMNIST("test")
    n = len(dataset)
    print(f"fmnist-cnn, {n} test images, batch {BATCH}, {args.threads} threads, "
          f"{len(layers)} layers captured: {', '.join(layers)}")  # fmt: skip
    forward_pass(torch, model, FashionMNIST("test", stop=1000))  # warm-up
    ratios, forward_times, sweep_times = [], [], []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        forward_pass(torch, model, dataset)
        t_forward = time.perf_counter() - start
        start = time.perf_counter()
        result = full_sweep(model, layers, dataset)
        t_sweep = time.perf_counter() - start
        assert result.n_images == n
        forward_times.append(t_forward)
        sweep_times.append(t_sweep)
        ratios.append(t_forward / t_sweep)
        print(f"repeat {repeat + 1}: forward {n / t_forward:7.0f} img/s, sweep "
              f"{n / t_sweep:7.0f} img/s, ratio {t_forward / t_sweep:.2f}")  # fmt: skip
    ratio = statistics.median(ratios)
    print(f"throughput ratio sweep/forward (median of {args.repeats}): {ratio:.2f} "
          f"(target >= 0.70) -> {'PASS' if ratio >= 0.7 else 'FAIL'}")  # fmt: skip

    base = measure_in_child("baseline", BATCH, args.threads)
    peaks = {m: {k: measure_in_child(m, k, args.threads) for k in (2000, 10000)}
             for m in ("forward", "sweep")}  # fmt: skip
    print(f"peak RSS (ru_maxrss, fresh process each): baseline {base['peak_mib']:.0f} MiB")
    for mode, by_n in peaks.items():
        small, large = by_n[2000]["peak_mib"], by_n[10000]["peak_mib"]
        print(f"  {mode:7s}: 2,000 images {small:.0f} MiB, 10,000 images {large:.0f} MiB, "
              f"growth {large - small:+.0f} MiB, ratio {large / small:.3f}")  # fmt: skip
    growth = peaks["sweep"][10000]["peak_mib"] - peaks["sweep"][2000]["peak_mib"]
    print(f"sweep peak-memory growth 2,000 -> 10,000 images: {growth:+.1f} MiB")


if __name__ == "__main__":
    main()
