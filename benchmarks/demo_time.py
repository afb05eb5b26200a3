"""How long `fvlab demo` takes on this machine, section by section (target: ≤ 10 min on 2 cores).

Run: .venv/bin/python benchmarks/demo_time.py [--out out/demo-time] [--only model,render,...]

Wall-clock time depends on what else the machine runs, so it is measured here and printed,
never asserted in a test. Prints each section's seconds (as the demo measures them), the total,
and the ratio to the 600 s target.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

TARGET_SECONDS = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo-time"))
    parser.add_argument("--only", default=None, help="comma-separated sections (default: all)")
    args = parser.parse_args()

    from fvlab.demo.run import DemoSettings, run_demo

    only = tuple(args.only.split(",")) if args.only else None
    began = time.perf_counter()
    result = run_demo(DemoSettings(only=only), args.out, show_progress=False)
    total = time.perf_counter() - began
    for name, seconds in result.context.timings.items():
        print(f"{name:10s} {seconds:8.1f} s")
    ratio = total / TARGET_SECONDS
    print(f"{'total':10s} {total:8.1f} s  (target {TARGET_SECONDS:.0f} s; ratio {ratio:.2f})")


if __name__ == "__main__":
    main()
