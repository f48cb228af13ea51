"""Reference endmember methods on the accuracy benchmark's scenes: SAM to the reference and FCLS RMSE_A.

For each scene of ``bench/accuracy_scenes.py`` and seed, every method of ``deepgu:endmembers``
(core.extraction.endmembers: one VCA run, VCA best of 12 restarts, N-FINDR, and the refinement the workflow
uses) extracts P endmembers; they are matched to the reference spectra, and the script prints the
spectral angle (degrees) of each material and FCLS's RMSE_A (eq. 14) with them. Samson needs
``../shared/data/samson/`` (skipped otherwise).

    .venv/bin/python bench/bench_endmembers.py [--scenes samson DC1-usgs ...] [--seeds 0 1 2 3 4]

``--fractions 0.1 0.2 0.333 0.5`` scores the refinement alone at each share of a material's purest pixels
that it averages (core.defaults.ENDMEMBERS["FRACTION"], the workflow's: a third), from the same VCA start.

``--workflow`` runs only what decides the workflow's FCLS: the ``refined`` references at the workflow's defaults on
every scene and seed (Samson too: SEED changes its VCA starts), FCLS RMSE_A with them and with the true references,
per material the angle and brightness (norm ratio) to the true reference, the ratio of the neighbourhoods to the
pixels it owns (core.extraction.endmembers.thin_materials, in M's column order) and the pixels averaged. ``--save
M.npz`` keeps the references; ``--against M.npz`` prints the largest change from a saved run (0 means the workflow's
results on that scene and seed cannot have changed).

``--facet-oracle`` asks whether a minimum-volume-type estimate, which needs no pure pixels, could do better
than the refinement: each facet ``a_p = 0`` of the simplex is fitted (total least squares, in the
(P-1)-dimensional affine hull of the refined references; the data's own PCA subspace is bent by the
variability) to the pixels whose *true* abundance of p is below 0.01, and the vertices are the facets'
intersections (:func:`facet_vertices`). With the true facet pixels this is the best such a geometric
estimate can do; it prints its FCLS RMSE_A and angles beside the refinement's.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.accuracy_scenes import available, scene as load_scene  # noqa: E402
from bench.measure import machine_line  # noqa: E402
from core.extraction.bundles import local_purity  # noqa: E402
from core.extraction.endmembers import (best_start, image_strips, nfindr, owner_counts, refine_purest, vca_best,  # noqa: E402
                             vca_starts)
from core.solvers.fcls import fcls  # noqa: E402
from core.evaluation.metrics import match_materials  # noqa: E402
from core.extraction.vca import vca  # noqa: E402


def refined_start(Y, P, seed):
    """The VCA start the workflow refines (core.extraction.endmembers.best_start among the seeded restarts)."""
    starts = vca_starts(Y.reshape(Y.shape[0], -1), P, seed=seed)
    return starts[best_start(Y, starts)[0]]


def extract(method, Y, P, seed):
    X = Y.reshape(Y.shape[0], -1)
    if method == "vca":
        return vca(X, P, seed=seed).endmembers
    if method == "vca-best":
        return vca_best(X, P, seed=seed)[0]
    if method == "nfindr":
        return nfindr(X, P, seed=seed)[0]
    return refine_purest(image_strips(Y), refined_start(Y, P, seed))[0]


def score(M, scene):
    """(angles (P,) degrees in the reference's order, FCLS RMSE_A)."""
    X = scene.image.reshape(scene.image.shape[0], -1).astype(np.float64)
    truth = scene.abundances.reshape(scene.abundances.shape[0], -1)
    A = fcls(X, M)
    perm = match_materials(A, truth)
    M = M[:, perm]
    cos = np.sum(M * scene.reference, 0) / (np.linalg.norm(M, axis=0) * np.linalg.norm(scene.reference, axis=0))
    return np.degrees(np.arccos(np.clip(cos, -1, 1))), float(np.sqrt(np.mean((A[perm] - truth) ** 2)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", nargs="+", default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--fractions", nargs="+", type=float, default=None,
                        help="scan the refinement's share of purest pixels instead of comparing the methods")
    parser.add_argument("--workflow", action="store_true",
                        help="only the workflow's refined references and FCLS with them, every scene and seed")
    parser.add_argument("--save", metavar="NPZ", help="with --workflow: save the references")
    parser.add_argument("--against", metavar="NPZ", help="with --workflow: compare with saved references")
    parser.add_argument("--facet-oracle", action="store_true",
                        help="compare the refinement with facets fitted to the true abundances' zero sets")
    args = parser.parse_args()
    print(machine_line())
    if args.workflow:
        workflow_references(args.scenes or available(), args.seeds, args.save, args.against)
        return
    if args.facet_oracle:
        compare_facets(args.scenes or available(), args.seeds)
        return
    if args.fractions:
        scan_fractions(args.scenes or available(), args.seeds, args.fractions)
        return
    methods = ("vca", "vca-best", "nfindr", "refined")
    for name in args.scenes or available():
        seeds = [0] if name == "samson" else args.seeds
        totals = {m: [] for m in methods}
        for seed in seeds:
            scene = load_scene(name, seed)
            Y = scene.image.astype(np.float64)
            for method in methods:
                start = time.perf_counter()
                angles, rmse = score(extract(method, Y, scene.abundances.shape[0], seed), scene)
                totals[method].append(rmse)
                print("%-17s seed %d %-9s RMSE_A %.4f  SAM per material (deg) %s  (%.1f s)"
                      % (name, seed, method, rmse, " ".join("%s %.1f" % (m, a) for m, a in
                                                             zip(scene.materials, angles)),
                         time.perf_counter() - start), flush=True)
        print("%-17s mean FCLS RMSE_A over seeds %s: %s" % (name, seeds, "  ".join(
            "%s %.4f (worst %.4f)" % (m, np.mean(v), np.max(v)) for m, v in totals.items())), flush=True)


def match_columns(M, reference):
    """For each column of ``reference`` (L, P), the index of the nearest column of M (L, P) (Euclidean)."""
    return np.argmin(((M[:, :, None] - reference[:, None, :]) ** 2).sum(axis=0), axis=0)


def workflow_references(names, seeds, save=None, against=None):
    """Per scene and seed: FCLS RMSE_A with the workflow's refined references and with the true ones."""
    saved = dict(np.load(against)) if against else {}
    kept, ratios = {}, []
    for name in names:
        rows = []
        for seed in seeds:
            scene = load_scene(name, seed)
            Y = scene.image.astype(np.float64)
            start = time.perf_counter()
            M, used = refine_purest(image_strips(Y), refined_start(Y, scene.n_materials, seed))
            seconds = time.perf_counter() - start
            key = "%s/%d" % (name, seed)
            kept[key] = M
            angles, rmse = score(M, scene)
            X = Y.reshape(Y.shape[0], -1)
            truth = scene.abundances.reshape(scene.n_materials, -1)
            true_rmse = float(np.sqrt(np.mean((fcls(X, scene.reference) - truth) ** 2)))
            A = fcls(X, M)
            brightness = np.linalg.norm(M[:, match_materials(A, truth)], axis=0) / np.linalg.norm(scene.reference,
                                                                                                 axis=0)
            own = owner_counts(A)
            ratio = owner_counts(local_purity(A.reshape(scene.abundances.shape)).reshape(A.shape)) / np.maximum(own, 1)
            ratios.extend(ratio[own > 0])
            change = " max|dM| %.1e (columns matched %.1e)" % (
                np.abs(M - saved[key]).max(), np.abs(M[:, match_columns(M, saved[key])] - saved[key]).max()) \
                if key in saved else ""
            rows.append((rmse, true_rmse))
            print("%-17s seed %d  FCLS RMSE_A %.4f  true references %.4f (x%.2f)  deg / brightness to the true %s  "
                  "neighbourhoods/pixels owned %s  pixels averaged %s%s  (%.1f s)" % (
                      name, seed, rmse, true_rmse, rmse / max(true_rmse, 1e-4),
                      " ".join("%s %.1f/%.2f" % v for v in zip(scene.materials, angles, brightness)),
                      " ".join("%.2f" % r for r in ratio), "/".join(str(n) for n in used), change, seconds), flush=True)
        rows = np.array(rows)
        print("%-17s mean FCLS RMSE_A %.4f (worst %.4f, worst ratio to the true references %.2f); true references %.4f"
              % (name, rows[:, 0].mean(), rows[:, 0].max(), (rows[:, 0] / np.maximum(rows[:, 1], 1e-4)).max(),
                 rows[:, 1].mean()), flush=True)
    print("neighbourhoods/pixels owned, over every material, scene and seed: %s" % " ".join(
        "%.2f" % r for r in sorted(ratios)[:6]) + " ... " + " ".join("%.2f" % r for r in sorted(ratios)[-3:]))
    if save:
        np.savez(save, **kept)


FACET_ABSENT = 0.01     # a pixel lies on facet p where its true abundance of p is below this


def facet_vertices(x, facets):
    """Vertices (k, P) of the simplex whose facet p is the hyperplane fitted to ``x[:, facets[p]]``.

    ``x`` (k, N) points in R^k, k = P - 1; ``facets`` P boolean masks (N,). Facet p is ``w_p^T [x; 1] = 0``
    (normal: the points' direction of least variance). The barycentric coordinates are ``b_p = s_p w_p^T
    [x; 1]`` with the scales s fixed by ``sum_p b_p = 1`` for every x, i.e. ``sum_p s_p w_p = e_{k+1}``;
    then ``[V; 1^T]`` is the inverse of the matrix of rows ``s_p w_p``.
    """
    k = x.shape[0]
    W = np.zeros((len(facets), k + 1))
    for p, on_facet in enumerate(facets):
        points = x[:, on_facet]
        centre = points.mean(axis=1)
        normal = np.linalg.svd(points - centre[:, None], full_matrices=False)[0][:, -1]
        W[p] = np.append(normal, -normal @ centre)
    scales = np.linalg.lstsq(W.T, np.eye(k + 1)[-1], rcond=None)[0]
    return np.linalg.inv(scales[:, None] * W)[:k]


def facet_oracle(scene, M):
    """Endmembers (L, P) from the facets of the true abundances, in the affine hull and column order of ``M``."""
    X = scene.image.reshape(scene.image.shape[0], -1).astype(np.float64)
    truth = scene.abundances.reshape(scene.n_materials, -1)
    mean = M.mean(axis=1, keepdims=True)
    U = np.linalg.qr(M[:, 1:] - M[:, :1])[0]                # (L, P-1) orthonormal basis of the hull's directions
    order = match_materials(fcls(X, M), truth)             # M's column order[j] is true material j
    facets = [None] * scene.n_materials
    for j, p in enumerate(order):
        facets[p] = truth[j] < FACET_ABSENT
    return mean + U @ facet_vertices(U.T @ (X - mean), facets)


def compare_facets(names, seeds):
    """Per scene and seed: the refinement against :func:`facet_oracle` (FCLS RMSE_A, angles)."""
    for name in names:
        rows = []
        for seed in [0] if name == "samson" else seeds:
            scene = load_scene(name, seed)
            Y = scene.image.astype(np.float64)
            refined = refine_purest(image_strips(Y), refined_start(Y, scene.n_materials, seed))[0]
            (a_ref, r_ref), (a_fac, r_fac) = score(refined, scene), score(facet_oracle(scene, refined), scene)
            rows.append((r_ref, r_fac))
            print("%-17s seed %d  refined RMSE_A %.4f (deg %s)  facet oracle RMSE_A %.4f (deg %s)" % (
                name, seed, r_ref, " ".join("%.1f" % a for a in a_ref), r_fac, " ".join("%.1f" % a for a in a_fac)),
                flush=True)
        rows = np.array(rows)
        print("%-17s mean FCLS RMSE_A: refined %.4f  facet oracle %.4f" % (name, rows[:, 0].mean(), rows[:, 1].mean()),
              flush=True)


def scan_fractions(names, seeds, fractions):
    """Per scene: FCLS RMSE_A and the largest angle to the reference of the refinement at each fraction."""
    for name in names:
        results = {f: [] for f in fractions}
        for seed in [0] if name == "samson" else seeds:
            scene = load_scene(name, seed)
            Y = scene.image.astype(np.float64)
            start = refined_start(Y, scene.n_materials, seed)
            for fraction in fractions:
                angles, rmse = score(refine_purest(image_strips(Y), start, fraction=fraction)[0], scene)
                results[fraction].append((rmse, angles.max()))
        for fraction, rows in results.items():
            rows = np.array(rows)
            print("%-17s fraction %.3f  mean FCLS RMSE_A %.4f  per seed %s  largest angle (deg) %s" % (
                name, fraction, rows[:, 0].mean(), " ".join("%.4f" % r for r in rows[:, 0]),
                " ".join("%.1f" % a for a in rows[:, 1])), flush=True)


if __name__ == "__main__":
    main()
