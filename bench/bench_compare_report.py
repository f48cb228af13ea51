"""Cost of deepgu:compare's report at its pixel cap: building the HTML page (core/evaluation/report.py) for 5 methods
x 5 materials of 1000 x 1000 pixels (core.defaults.COMPARE_MAX_PIXELS), the methods' own runs left out.

Run:  .venv/bin/python bench/bench_compare_report.py [--side 1000 --materials 5]
The page is built in a fresh process (bench/measure.py): its seconds, that process's peak resident memory
(interpreter and libraries included; the maps as the job holds them: abundances and RMSE in float32) and the page's
size; beside them the fixed reference workload's seconds, so that the ratio can be compared across loads.
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.measure import machine_line, measure, reference_seconds

METHODS = ("fcls", "plmm", "elmm", "glmm", "deepgu")


def build(side, materials):
    """Build the page from smooth synthetic maps (each method: the truth plus its own noise); returns its bytes."""
    import numpy as np

    from core.evaluation.report import MethodReport, build_html
    from core.evaluation.synthetic import abundance_maps

    rng = np.random.default_rng(0)
    truth = abundance_maps(materials, side, side, rng).astype(np.float32)
    reports = []
    for method in METHODS:
        A = np.clip(truth + rng.normal(0, 0.05, truth.shape).astype(np.float32), 0, 1)
        rmse = np.abs(rng.normal(0, 0.01, (side, side))).astype(np.float32)
        reports.append(MethodReport(method, method.upper(), A, rmse, 1.0, "none", {"RMSE_A": 0.05}))
    page = build_html("bench", [("Pixels", "%d x %d" % (side, side))], ["m%d" % p for p in range(materials)],
                      reports, truth)
    return len(page.encode("utf-8"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1000)
    parser.add_argument("--materials", type=int, default=5)
    args = parser.parse_args()
    print(machine_line())
    reference = reference_seconds()
    seconds, peak, size = measure(build, side=args.side, materials=args.materials)
    print("report of %d methods x %d materials, %d x %d pixels: %.1f s (%.1f x the reference workload's %.2f s), "
          "peak %.0f MiB, page %.1f MB" % (len(METHODS), args.materials, args.side, args.side, seconds,
                                           seconds / reference, reference, peak, size / 1e6))


if __name__ == "__main__":
    main()
