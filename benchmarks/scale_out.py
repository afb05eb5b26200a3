"""Local engine vs Ray engine on the same jobs, same machine, same shard plan (issue 17).

Jobs (fmnist-cnn, the embedded weights):

* **render** — 64 relu3 units, ``--steps`` updates (default 512), the standard transforms, in
  shards of 32 units (two shards);
* **sweep** — the 10,000 Fashion-MNIST test images through EVERY layer (spatial means, moments
  and the exact top-16 per unit), in shards of 2,500 images (four shards).

Like with like: the local engine runs the shards one after another in this process with
``--threads`` torch threads (default 2, the whole machine); the Ray engine runs them as tasks on
a local Ray of ``--workers`` workers × 1 thread (default 2 × 1, the whole machine). Ray's start
is timed separately and not charged to the jobs (a cluster is started once per session). Both
engines' outputs are compared: PNG levels of every image and every sweep statistic must be
identical. Also measured: Ray's per-task overhead (``--overhead-tasks`` empty tasks) and the
cost of one shard — the inputs of the projection in docs/scale.md.

Prints one JSON object: seconds per job and engine (median of ``--repeats``), throughput
ratios ray / local (≥ 0.9 is the target), identity checks, overhead per task.

Usage: .venv/bin/python benchmarks/scale_out.py [--repeats 3] [--steps 512]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def _render_job(model, steps):
    from fvlab.optvis.job import RenderJobSettings
    from fvlab.optvis.settings import RenderSettings

    how = RenderSettings(steps=steps, seed=0)
    return RenderJobSettings(layer="relu3", units=tuple(range(64)), batch_size=32, render=how)


def _time(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2, help="torch threads, local engine")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (1 thread each)")
    parser.add_argument("--overhead-tasks", type=int, default=200)
    args = parser.parse_args()

    import ray
    import torch

    import fvlab
    from fvlab.activations.sharded import sharded_sweep
    from fvlab.data.fashion_mnist import FashionMNIST
    from fvlab.engine.local import LocalEngine
    from fvlab.engine.ray_engine import RayEngine
    from fvlab.models.probe import forward_order
    from fvlab.optvis.job import run_render

    torch.set_num_threads(args.threads)
    model = fvlab.load("fmnist-cnn")
    layers = forward_order(model)
    data = FashionMNIST("test")
    ray_start, _ = _time(
        lambda: ray.init(
            num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
            logging_level="ERROR",
        )
    )  # fmt: skip
    engines = {"local": LocalEngine(), "ray": RayEngine(threads=1)}
    render_settings = _render_job(model, args.steps)
    jobs = {
        "render": lambda engine: run_render(
            model, render_settings, show_progress=False, engine=engine
        ),
        "sweep": lambda engine: sharded_sweep(
            model,
            data,
            layers,
            top_k=16,
            batch_size=256,
            shard_images=2500,
            engine=engine,
            show_progress=False,
        ),  # fmt: skip
    }
    seconds: dict[str, dict[str, list[float]]] = {j: {e: [] for e in engines} for j in jobs}
    outputs: dict[str, dict[str, object]] = {j: {} for j in jobs}
    for _ in range(args.repeats):
        for job, run in jobs.items():
            for name, engine in engines.items():  # interleaved: load drifts hit both alike
                elapsed, outputs[job][name] = _time(lambda run=run, engine=engine: run(engine))
                seconds[job][name].append(elapsed)

    local_r, ray_r = outputs["render"]["local"], outputs["render"]["ray"]
    render_identical = torch.equal((local_r.images * 255).round(), (ray_r.images * 255).round())
    local_s, ray_s = outputs["sweep"]["local"], outputs["sweep"]["ray"]
    sweep_identical = all(
        (a.moments.mean == b.moments.mean).all()
        and (a.moments.m2 == b.moments.m2).all()
        and (a.top.indices == b.top.indices).all()
        for a, b in ((local_s.stats[k], ray_s.stats[k]) for k in local_s.stats)
    )

    @ray.remote(num_cpus=1)
    def nothing(x):
        return x

    ray.get([nothing.remote(i) for i in range(10)])  # warm the workers
    overhead, _ = _time(lambda: ray.get([nothing.remote(i) for i in range(args.overhead_tasks)]))
    ray.shutdown()

    median = {j: {e: statistics.median(v) for e, v in per.items()} for j, per in seconds.items()}
    report = {
        "machine": {"torch_threads_local": args.threads, "ray_workers": args.workers},
        "ray_start_s": round(ray_start, 2),
        "ray_overhead_per_task_ms": round(1000 * overhead * args.workers / args.overhead_tasks, 2),
        "seconds_median": {j: {e: round(v, 2) for e, v in m.items()} for j, m in median.items()},
        "seconds_all": {
            j: {e: [round(x, 2) for x in v] for e, v in m.items()} for j, m in seconds.items()
        },  # fmt: skip
        "throughput_ratio_ray_over_local": {
            j: round(m["local"] / m["ray"], 3) for j, m in median.items()
        },
        "per_shard_s": {
            "render_32_units": round(median["render"]["ray"] * args.workers / 2, 2),
            "sweep_2500_images": round(median["sweep"]["ray"] * args.workers / 4, 2),
        },
        "identical": {"render_png_levels": bool(render_identical), "sweep": bool(sweep_identical)},
        "render_steps": args.steps,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
