"""Smooth variability for DeepGU (issue 25 item 4): a spatial prior on the codes, and an ELMM start, on the suite.

Run:  .venv/bin/python bench/bench_smooth_variability.py [--scenes samson DC2-usgs ...] [--seeds 0 1 2 3 4]
                                                       [--variants default smooth elmm] [--json OUT]

For each scene of bench/accuracy_scenes.py and seed, the workflow's steps run in process at their defaults
(bench/bench_lambda_z.py's ``scene_pipelines``: refined references, FCLS, spatial bundles, VAEs), then DeepGU
(core.solvers.unmix.deepgu_unmix, from the workflow's FCLS abundances) once per variant, every other setting at its
default:

- ``default``: today's workflow DeepGU (CODE_SMOOTHING 0, START fcls);
- ``smooth``: CODE_SMOOTHING auto, the spatial prior on the whitened codes (core/solvers/smooth_zstep.py);
- ``elmm``: START elmm, abundances and codes started from ELMM's solution (ELMM at its auto weights);
- ``smooth+elmm``: both.

Each is scored by RMSE_A (eq. 14, materials matched). Prints one line per run, then per scene and variant the
mean over seeds, the ratio to FCLS, the worst seed's RMSE_A and its ratio to that seed's FCLS (the issue's goals
are per seed), and the mean seconds of the DeepGU solve (the pipeline's steps are shared and not counted).
``--json`` is rewritten after every run.

``--span`` prints instead, for the synthetic scenes, how much of the true per-pixel endmembers' departure from the
references the model's decoders can reproduce at all: the relative distance ``||m_pn - m0_p|| / ||m_pn||`` over
all pixels and materials, and ``||m_pn - G~_p(u_pn)|| / ||m_pn||`` with u_pn the codes fitted to the true m_pn
(core.solvers.unmix.encode_endmembers) at ``auto`` lambda_Z and at 1e-6 of it (free codes): no prior on the codes,
spatial or not, can bring DeepGU's endmembers closer to the truth than the free fit.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.accuracy_scenes import NAMES  # noqa: E402
from bench.bench_lambda_z import rmse_a, scene_pipelines  # noqa: E402
from bench.measure import machine_line  # noqa: E402
from core.evaluation.metrics import match_materials  # noqa: E402
from core.files.atomic import atomic_output  # noqa: E402
from core.solvers.latent import WhitenedModel  # noqa: E402
from core.solvers.regularisation import measure_levels  # noqa: E402
from core.solvers.unmix import deepgu_unmix, encode_endmembers  # noqa: E402
from core.solvers.unmix_settings import UnmixSettings  # noqa: E402
from core.solvers.zstep import decode  # noqa: E402

VARIANTS = {"default": {}, "smooth": {"code_smoothing": "auto"}, "elmm": {"start": "elmm"},
            "smooth+elmm": {"code_smoothing": "auto", "start": "elmm"}}


def table(runs, variants):
    """Markdown: per scene, FCLS and each variant (mean over seeds, ratio, worst seed and its ratio)."""
    lines = ["| scene | FCLS | " + " | ".join("%s: mean (ratio), worst seed (its ratio)" % v for v in variants)
             + " |", "|---|---|" + "---|" * len(variants)]
    for name, scene_runs in runs.items():
        if not scene_runs:
            continue
        fcls = np.mean([r["fcls"] for r in scene_runs])
        cells = []
        for v in variants:
            worst = max(scene_runs, key=lambda r: r[v] / r["fcls"])
            mean = np.mean([r[v] for r in scene_runs])
            cells.append("%.4f (%.2f), %d: %.4f (%.2f)" % (mean, mean / fcls, worst["seed"], worst[v],
                                                            worst[v] / worst["fcls"]))
        lines.append("| %s | %.4f | %s |" % (name, fcls, " | ".join(cells)))
    lines.append("")
    lines.append("seeds %s; seconds of the DeepGU solve per run (mean): %s" % (
        " ".join(str(r["seed"]) for r in next(iter(runs.values()))),
        ", ".join("%s %.1f" % (v, np.mean([r[v + "_seconds"] for rs in runs.values() for r in rs])) for v in variants)))
    return "\n".join(lines)


def span(bench_scene, Y, mask, pipeline):
    """(relative distance of the true per-pixel endmembers to the references, to the decoders' best fit at auto
    lambda_Z, to their best fit with free codes); see the module docstring."""
    P = bench_scene.n_materials
    A0 = np.nan_to_num(pipeline.fcls_abundances)
    order = np.argsort(match_materials(A0.reshape(P, -1), bench_scene.abundances.reshape(P, -1)))
    truth = np.moveaxis(bench_scene.endmembers[:, order][..., mask].astype(np.float64), -1, 0)     # (N, L, P)
    unit = float(np.sqrt(np.mean(Y[:, mask] ** 2)))
    model = WhitenedModel(pipeline.model, unit)
    M = torch.as_tensor(truth) / unit
    rho2 = measure_levels(Y, pipeline.reference, pipeline.fcls_abundances, mask).rho2 / unit ** 2
    distances = [float((torch.as_tensor(model.m0)[None] - M).norm() / M.norm())]
    for factor in (1.0, 1e-6):
        fitted = decode(model, encode_endmembers(model, M, factor * rho2, max_iter=50))
        distances.append(float((fitted - M).norm() / M.norm()))
    return distances


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", choices=NAMES, help="default: all available here")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["default", "smooth", "elmm"])
    parser.add_argument("--json", metavar="OUT", help="save every run (as it finishes) as JSON")
    parser.add_argument("--span", action="store_true", help="print what the decoders can reproduce (no DeepGU runs)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(machine_line(), flush=True)
    print("# load average %.1f (other processes share the cores: seconds grow with it)" % os.getloadavg()[0],
          flush=True)
    runs = {}
    record = {"machine": machine_line(), "variants": args.variants, "runs": runs}
    for name, seed, bench_scene, Y, mask, pipeline in scene_pipelines(args.scenes, args.seeds):
        if args.span:
            if bench_scene.endmembers is not None:
                print("%-16s seed %d: true m_pn from the references %.4f, from the decoders' fit at auto lambda_Z "
                      "%.4f, with free codes %.4f (relative)" % ((name, seed) + tuple(span(bench_scene, Y, mask,
                                                                                          pipeline))), flush=True)
            continue
        A0 = np.nan_to_num(pipeline.fcls_abundances)
        result = {"seed": seed, "fcls": rmse_a(pipeline.fcls_abundances, bench_scene.abundances)}
        for variant in args.variants:
            start = time.perf_counter()
            unmixed = deepgu_unmix(Y, pipeline.model, UnmixSettings(**VARIANTS[variant]), mask=mask, A_init=A0,
                                   endmembers=False)
            result[variant + "_seconds"] = time.perf_counter() - start
            result[variant] = rmse_a(unmixed.abundances, bench_scene.abundances)
        runs.setdefault(name, []).append(result)
        print("%-16s seed %d: FCLS %.4f | %s" % (name, seed, result["fcls"], " | ".join(
            "%s %.4f (%.2f) %.1f s" % (v, result[v], result[v] / result["fcls"], result[v + "_seconds"])
            for v in args.variants)), flush=True)
        if args.json:
            with atomic_output(args.json, "w") as f:
                json.dump(record, f, indent=1, default=float)
    print("# load average at the end: %.1f" % os.getloadavg()[0])
    if args.span:
        return
    print()
    print(table(runs, args.variants))


if __name__ == "__main__":
    main()
