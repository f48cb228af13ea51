"""The units check's margins on the accuracy benchmark's scenes (core/checks/magnitude.py).

For each scene of ``bench/accuracy_scenes.py`` and seed: the median pixel norm ``s`` of its central 64 x 64
pixels (as :func:`core.checks.magnitude.scene_norm` reads it), the norms of its reference library's spectra (median
``n``, range), ``s / n`` and how far that is from either limit of the check (``FACTOR / (s / n)`` and
``(s / n) * FACTOR``), and the largest negative share of a reference spectrum. Samson needs
``../shared/data/samson/`` (skipped otherwise).

    .venv/bin/python bench/bench_magnitudes.py [--seeds 0 1]
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.accuracy_scenes import scenes  # noqa: E402
from bench.measure import machine_line  # noqa: E402
from core.checks.magnitude import FACTOR, WINDOW  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    print(machine_line())
    print("seed scene s n (min-max) s/n up-margin down-margin negative-share")
    for seed in args.seeds:
        for scene in scenes(seed):
            bands, rows, cols = scene.image.shape
            r, c = min(rows, WINDOW), min(cols, WINDOW)
            window = scene.image[:, (rows - r) // 2:(rows - r) // 2 + r, (cols - c) // 2:(cols - c) // 2 + c]
            s = float(np.median(np.linalg.norm(window.reshape(bands, -1).astype(np.float64), axis=0)))
            norms = np.linalg.norm(scene.reference, axis=0)
            n = float(np.median(norms))
            negative = float(np.max(np.linalg.norm(np.minimum(scene.reference, 0), axis=0) / norms))
            print("%d %s %.3g %.3g (%.3g-%.3g) %.2f %.1fx %.1fx %.3f" % (
                seed, scene.name, s, n, norms.min(), norms.max(), s / n, FACTOR / (s / n), (s / n) * FACTOR,
                negative))


if __name__ == "__main__":
    main()
