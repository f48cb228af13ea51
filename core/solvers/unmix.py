"""DeepGU unmixing: alternate the Z-step and the A-step (Algorithm 1, steps 6-13).

The cost (paper eq. 7) over abundances A and per-pixel latent codes Z_n is

    J(A, Z) = 1/2 sum_n ||y_n - G(Z_n) a_n||^2 + lambda_Z/2 sum_n ||Z_n - Z0||_F^2
              + lambda_A TV(A),   a_n on the unit simplex,

with G(Z_n) = [G_1(z_1n) ... G_P(z_Pn)] the decoders of the generative model.
Starting from A = FCLS(Y, M0) (or ``A_init``) and Z_n = Z0, each iteration runs
the Z-step (:mod:`.zstep`, Levenberg-Marquardt per pixel, warm-started) and the
A-step (:mod:`.astep`, ADMM with tolerance 1e-3), until both relative changes
||A_k - A_{k-1}||_F / ||A_{k-1}||_F and ||Z_k - Z_{k-1}||_F / ||Z_{k-1}||_F are
below ``tol`` (the paper's test), or J decreased by less than ``tol`` J in an iteration, or
``max_iter`` iterations ran; then the last A-step is resumed, without its iteration cap, until
it meets its tolerance. (The J test
stops the slow tail in which A and Z still drift by a few 1e-3 while J and the abundances no
longer change; ``bench/bench_accuracy.py`` gives the same or slightly lower RMSE_A with it.)
Each A-step resumes ADMM from the previous one's split variables and duals
(:class:`.astep.AdmmState`), also after a rejected one. An A-step whose result does not
lower the A-objective (with the new endmembers) is rejected and A kept, so, the Z-step being a descent
step too, J never increases from one iteration to the next. (The authors'
ADMM tolerance of 1e-2 stops ADMM, restarted with zero duals at every
A-step, so early that J rose by up to 30x between iterations on a
2000 x 2000 scene's tiles; 1e-3 with the guard is both monotone and faster,
because the Z-step then starts close to its solution.) Only valid pixels take part; nodata pixels
are NaN in every output.

Latent codes are whitened by each material's code spread (:mod:`.latent`): the solver's
variables are ``u`` with ``z_p = z0_p + C_p u_p``, so ``lambda_Z/2 ||u||^2`` penalises the
Mahalanobis distance from the reference code in units of the spread of the codes the
VAE was trained on (the identity for models without a spread: the paper's prior).

Regularisation that needs no tuning (``lambda_z`` / ``lambda_a`` = ``"auto"``): both weights are
set from levels measured on the initial fit (:mod:`.regularisation`).

Two options that the workflow does not use (``docs/smooth_variability.md``: neither won on the suite):
``settings.code_smoothing`` > 0 adds the spatial prior ``lambda_S/2 sum_{n~m} ||u_n - u_m||^2`` on the codes of
neighbouring pixels to J, and the Z-step becomes one coupled solve (:mod:`.smooth_zstep`; 0 runs the per-pixel
Z-step above, unchanged); ``settings.start = "elmm"`` starts A from ELMM's abundances and the codes from ELMM's
per-pixel endmembers (:func:`encode_endmembers`).
"""

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .astep import PixelGrid, fcls_batched, guarded_astep, project_simplex
from ..errors import DeepGUError
from ..feedback import SubFeedback, ensure
from .latent import TRUST_RADIUS, WhitenedModel, trust_distances
from .regularisation import is_auto, measure_levels, resolve, resolve_smoothness, weights_line
from .smooth_zstep import neighbour_counts, smooth_zstep, smoothness
from .unmix_settings import UnmixSettings
from ..validation import check_value_range
from .zstep import PixelStats, decode, zstep

ADMM_TOL = 1e-3
#: dtype of the A-step's Laplacian solves (:func:`.astep.astep`'s ``solve_dtype``): float32 halves their cost
ADMM_SOLVE_DTYPE = torch.float32
#: pixels (evenly spaced) on which the log's per-material summary of the variability is computed
REPORT_SAMPLE = 2048


@dataclass
class UnmixResult:
    """DeepGU output on the (rows, cols) grid; NaN at invalid pixels.

    abundances (P, rows, cols); latent (P, K, rows, cols); endmembers
    (L, P, rows, cols) = G(Z_n) per pixel (None when not asked for); rmse (rows, cols) per-pixel
    reconstruction RMSE sqrt(mean_l (y - G(Z_n) a_n)^2); history: one dict per
    outer iteration (iteration, objective = data + z_reg + lambda_A tv, data, z_reg,
    tv, change_a, change_z, z_converged, z_iterations, admm_iterations, a_accepted,
    z_seconds, seconds); n_iter; converged: the relative-change test stopped the loop;
    lambda_z, lambda_a: the weights used; report: :func:`variability_report`; work: the solver's counts,
    summed over the pixels (``evaluations`` of the decoder with its Jacobian and statistics, Levenberg-Marquardt
    ``solves``), ``admm_iterations`` (all A-steps, the final one included) and ``flops`` (:func:`product_flops`,
    None for a model without VAE decoders). Not counted: the codes' own solve of a START's encoding, and the
    conjugate-gradient iterations of a Z-step with a spatial prior on the codes (``code_smoothing``).
    """

    abundances: np.ndarray
    latent: np.ndarray
    endmembers: np.ndarray
    rmse: np.ndarray
    history: list = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    lambda_z: float = 0.0
    lambda_a: float = 0.0
    report: list = field(default_factory=list)
    work: dict = field(default_factory=dict)


def product_flops(sizes, n_materials, box_shape, evaluations, solves, admm_iterations, n_pixels):
    """Floating-point operations (a multiply and an add count two) of DeepGU's matrix products on a tile of
    ``n_pixels`` valid pixels in a ``box_shape`` (rows, cols) box, from the solver's counts (:attr:`UnmixResult.work`).

    With the decoder ``K -> h3 -> h2 -> h1 -> L`` of each of the P materials (``sizes = (L, h1, h2, h3, K)``,
    widths n_0 = K, ..., n_4 = L) and q = P (1 + K) columns of E = [G, D]:

    - per decoder evaluation (one pixel): the codes and their K tangents through the layers (the first
      layer's tangents are shared by all pixels), then ``E^T E``, ``E^T y`` (and ``y^T y``) as one product of
      ``[E, y]^T [E, y]``: ``P (2 sum_i n_i n_(i+1) + 2 K sum_(i>0) n_i n_(i+1)) + 2 (q + 1)^2 L``;
    - per Levenberg-Marquardt system of PK unknowns: ``2/3 (PK)^3 + 2 (PK)^2``;
    - per ADMM iteration and pixel: the data copy's update ``2 P^2`` (element-wise multiply-adds) and the
      Laplacian solve's four discrete cosine transforms, ``4 P (rows + cols)`` (on a box with invalid pixels the
      conjugate-gradient iterations around it are not counted).

    Element-wise passes (activations, the simplex projection, the shrinkage, norms) are not counted.
    """
    L, h1, h2, h3, K = sizes
    P = n_materials
    widths = (K, h3, h2, h1, L)
    layers = [a * b for a, b in zip(widths[:-1], widths[1:])]
    q = P * (1 + K)
    decoder = P * (2 * sum(layers) + 2 * K * sum(layers[1:])) + 2 * (q + 1) ** 2 * L
    system = 2.0 / 3.0 * (P * K) ** 3 + 2 * (P * K) ** 2
    admm = 2 * P * P + 4 * P * (box_shape[0] + box_shape[1])
    return decoder * evaluations + system * solves + admm * admm_iterations * n_pixels


def resolve_device(device):
    """"auto" -> cuda if available else cpu; a cuda device without a GPU -> DeepGUError."""
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeepGUError("unknown device %r; use auto, cpu or cuda" % (device,)) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeepGUError("device %r asked for but no CUDA GPU is available; use cpu or auto" % (device,))
    return dev


def _valid_mask(Y, mask):
    finite = np.all(np.isfinite(Y), axis=0)
    if mask is None:
        mask = finite
    else:
        mask = np.asarray(mask)
        if mask.shape != Y.shape[1:]:
            raise DeepGUError("the mask is %s but the image is %s pixels" % (mask.shape, Y.shape[1:]))
        mask = mask.astype(bool) & finite
    if not mask.any():
        raise DeepGUError("the image has no valid pixel")
    return mask


def _check_inputs(Y, model, A_init):
    if Y.ndim != 3:
        raise DeepGUError("the image must be (bands, rows, cols), got shape %s" % (Y.shape,))
    if Y.shape[0] != model.n_bands:
        raise DeepGUError("the image has %d bands but the model has %d" % (Y.shape[0], model.n_bands))
    if A_init is not None and A_init.shape != (model.n_materials,) + Y.shape[1:]:
        raise DeepGUError("A_init must be %s, got %s" % ((model.n_materials,) + Y.shape[1:], A_init.shape))
    check_value_range("the image", Y[np.isfinite(Y)])


def _guarded_astep(stats, yy, grid, lambda_a, A, tv, tol, max_iter, state=None):
    """:func:`.astep.guarded_astep` with the Z-step's statistics ``stats`` (M_n^T M_n and M_n^T y_n)."""
    return guarded_astep(stats.gram, stats.mty, yy, grid, lambda_a, A, tv, tol, max_iter, state, ADMM_SOLVE_DTYPE)


def _rel_change(new, old):
    return float((new - old).norm() / old.norm().clamp(min=torch.finfo(old.dtype).tiny))


def _to_grid(values, mask):
    """(N, ...) valid-pixel values -> (..., rows, cols) with NaN at invalid pixels."""
    values = values.cpu().numpy()
    out = np.full(values.shape[1:] + mask.shape, np.nan, dtype=values.dtype)
    out[..., mask] = np.moveaxis(values, 0, -1)
    return out


def deepgu_unmix(Y, model, settings=None, mask=None, A_init=None, feedback=None, dtype=torch.float64,
                 z_max_iter=20, admm_max_iter=100, final_admm_max_iter=1000, chunk_size=8192, levels=None,
                 endmembers=True):
    """DeepGU (module docstring) on an image.

    Parameters
    ----------
    Y : (L, rows, cols) image in the model's (scene) units.
    model : generative model with ``decode`` (N, P, K) -> (N, L, P), ``z0`` (P, K) torch,
        ``m0`` (L, P) numpy, ``n_materials``, ``latent_dim``, ``n_bands``, ``to(device)``.
    mask : (rows, cols) bool, True at valid pixels (default: pixels finite in every band;
        non-finite pixels are always invalid).
    A_init : (P, rows, cols) initial abundances (projected onto the simplex); default FCLS with m0.
    settings : :class:`.unmix_settings.UnmixSettings` (default: the defaults): lambda_z, lambda_a (weights, or
        None for "auto", module docstring), max_iter, tol (outer loop limits), tv ("anisotropic", "isotropic" or
        "group", see :mod:`.astep`) and device ("auto", "cpu" or "cuda"); its memory_mb and cluster are the
        file job's. dtype : precision of the solver algebra (the decoder runs in the model's own dtype).
    levels : :class:`.regularisation.Levels` that "auto" uses (default: measured on this image with the
        initial abundances; pass the same levels to every tile of a scene).
    z_max_iter : Levenberg-Marquardt iterations per pixel and Z-step at most.
    admm_max_iter, final_admm_max_iter : ADMM iterations at most, in the loop and at the end.
    chunk_size : pixels decoded together in the Z-step (bounds memory).
    endmembers : return the per-pixel endmembers (False: ``endmembers`` is None, saving their L x P values per
        pixel when they are not wanted).

    Returns
    -------
    UnmixResult
    """
    feedback = ensure(feedback)
    Y = np.asarray(Y)
    _check_inputs(Y, model, A_init)
    settings = settings or UnmixSettings()
    lambda_z, lambda_a, max_iter, tol, tv = (settings.lambda_z, settings.lambda_a, settings.max_iter, settings.tol,
                                             settings.tv)
    dev = resolve_device(settings.device)
    mask = _valid_mask(Y, mask)
    grid = PixelGrid(mask, dev)
    Yv = torch.as_tensor(Y[:, mask].T, dtype=dtype, device=dev).contiguous()
    # the solver works on Y / unit (unit = the data's RMS), so every tolerance is independent of the units
    unit = max(float(Yv.pow(2).mean().sqrt()), float(torch.finfo(dtype).tiny))
    Yv = Yv / unit
    model = WhitenedModel(model.to(dev), unit, hold_brightness=settings.brightness == "abundances")
    yy = (Yv * Yv).sum(1)
    if A_init is None:
        A = fcls_batched(torch.as_tensor(model.m0, dtype=dtype, device=dev), Yv)
    else:
        A_valid = np.asarray(A_init)[:, mask].T
        if not np.all(np.isfinite(A_valid)):
            raise DeepGUError("A_init has non-finite values at valid pixels")
        A = project_simplex(torch.as_tensor(A_valid, dtype=dtype, device=dev))
    auto = is_auto(lambda_z) or is_auto(lambda_a) or is_auto(settings.code_smoothing)
    if (auto or settings.start == "elmm") and levels is None:
        levels = measure_levels(Y, model.model.m0, _to_grid(A, mask), mask)
    start = None
    if settings.start == "elmm":
        from .variability_models import unmix_variability      # it imports this module
        start = unmix_variability("elmm", Y, model.model.m0, mask=mask, A_init=_to_grid(A, mask), levels=levels,
                                  dtype=dtype, feedback=SubFeedback(feedback, 0, 30))
        A = project_simplex(torch.as_tensor(start.abundances[:, mask].T, dtype=dtype, device=dev))
    lambda_z, lambda_a = resolve(lambda_z, lambda_a, levels)
    feedback.info(weights_line(lambda_z, lambda_a, levels if auto else None))
    if model.hold_brightness:
        feedback.info("brightness held at the references': the codes change each spectrum's shape, the abundances "
                      "carry the pixels' brightness (BRIGHTNESS abundances)")
    scene_lambdas = lambda_z, lambda_a
    lambda_s = resolve_smoothness(settings.code_smoothing, levels)
    if lambda_s > 0:
        feedback.info("spatial prior on the latent codes: lambda_S %.4g (correlation length %.2g pixels)"
                      % (lambda_s, (lambda_s / lambda_z) ** 0.5 if lambda_z > 0 else float("inf")))
    lambda_z, lambda_a, lambda_s = lambda_z / unit ** 2, lambda_a / unit ** 2, lambda_s / unit ** 2  # cost / unit^2
    z0 = model.z0.to(device=dev, dtype=dtype)
    if start is None:
        Z = z0.expand(grid.n_pixels, -1, -1).clone()
        stats = PixelStats.shared(model, z0, Yv)
        work = {"evaluations": 1, "solves": 0, "admm_iterations": 0}
    else:
        M_valid = torch.as_tensor(np.moveaxis(start.endmembers[..., mask], -1, 0), dtype=dtype, device=dev) / unit
        Z = encode_endmembers(model, M_valid, lambda_z, tol=tol, max_iter=z_max_iter, chunk_size=chunk_size,
                              feedback=feedback)
        stats = PixelStats.evaluate(model, Z, Yv)
        work = {"evaluations": grid.n_pixels, "solves": 0, "admm_iterations": 0}
    degrees = torch.as_tensor(neighbour_counts(mask), dtype=dtype, device=dev)
    history = []
    admm_state = None
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        feedback.check_canceled()
        start = time.perf_counter()
        if lambda_s > 0:
            zres = smooth_zstep(model, Yv, A, Z, lambda_z, lambda_s, grid, degrees, stats=stats, tol=tol,
                                max_iter=z_max_iter, feedback=feedback)
        else:
            zres = zstep(model, Yv, A, Z, lambda_z, stats=stats, tol=tol, max_iter=z_max_iter,
                         chunk_size=chunk_size, feedback=feedback)
        stats = zres.stats
        work["evaluations"] += zres.evaluations
        work["solves"] += zres.solves
        z_seconds = time.perf_counter() - start
        A_new, ainfo, (total, data, tv_val) = _guarded_astep(stats, yy, grid, lambda_a, A, tv, ADMM_TOL,
                                                             admm_max_iter, admm_state)
        admm_state = ainfo["state"]
        work["admm_iterations"] += ainfo["iterations"]
        change_a, change_z = _rel_change(A_new, A), _rel_change(zres.Z, Z)
        A, Z = A_new, zres.Z
        z_reg = 0.5 * lambda_z * float(((Z - z0) ** 2).sum())
        if lambda_s > 0:
            z_reg += smoothness(grid, (Z - z0).reshape(grid.n_pixels, -1), lambda_s)
        total, data, z_reg = total * unit ** 2, data * unit ** 2, z_reg * unit ** 2      # in scene units
        history.append({
            "iteration": it, "objective": total + z_reg, "data": data, "z_reg": z_reg, "tv": tv_val,
            "change_a": change_a, "change_z": change_z,
            "z_converged": zres.n_converged, "z_iterations": float(zres.iterations.float().mean()),
            "admm_iterations": ainfo["iterations"], "a_accepted": ainfo["accepted"], "z_seconds": z_seconds,
            "seconds": time.perf_counter() - start,
        })
        feedback.info("DeepGU iteration %d/%d: objective %.6g (data %.6g, Z %.6g, TV %.6g), "
                      "change A %.2e, Z %.2e; Z-step %d/%d pixels converged, %.1f LM iterations "
                      "on average; %d ADMM iterations%s"
                      % (it, max_iter, total + z_reg, data, z_reg, tv_val, change_a, change_z,
                         zres.n_converged, grid.n_pixels, history[-1]["z_iterations"],
                         ainfo["iterations"], "" if ainfo["accepted"] else " (no decrease: A kept)"))
        feedback.set_progress(100.0 * it / (max_iter + 1))
        previous = history[-2]["objective"] if len(history) > 1 else None
        if (change_a < tol and change_z < tol) or (
                previous is not None and previous - history[-1]["objective"] < tol * abs(previous)):
            converged = True
            break
    feedback.check_canceled()
    A, ainfo, _ = _guarded_astep(stats, yy, grid, lambda_a, A, tv, ADMM_TOL, final_admm_max_iter, admm_state)
    work["admm_iterations"] += ainfo["iterations"]
    vaes = getattr(model.model, "vaes", None)
    work["flops"] = None if not vaes else product_flops(vaes[0].sizes, model.n_materials, grid.box_shape,
                                                        work["evaluations"], work["solves"],
                                                        work["admm_iterations"], grid.n_pixels)
    feedback.info("DeepGU work on %d pixels: per pixel %.2f decoder evaluations and %.2f Levenberg-Marquardt solves; "
                  "%d ADMM iterations%s" % (grid.n_pixels, work["evaluations"] / grid.n_pixels,
                                            work["solves"] / grid.n_pixels, work["admm_iterations"],
                                            "" if work["flops"] is None else "; %.4g MFLOP per pixel in matrix products"
                                            % (work["flops"] / grid.n_pixels / 1e6)))
    squares = stats.residual_squares(yy, A) * unit ** 2          # from the final codes' statistics, in scene units
    sample = torch.arange(0, grid.n_pixels, -(-grid.n_pixels // REPORT_SAMPLE), device=dev)
    report = variability_report(model, Z, decode(model, Z[sample]))
    for line in report_lines(report):
        feedback.info(line)
    feedback.set_progress(100.0)
    return UnmixResult(
        abundances=_to_grid(A, mask),
        latent=_to_grid(model.codes(Z), mask),
        endmembers=_to_grid(decode(model, Z) * unit, mask) if endmembers else None,
        rmse=_to_grid((squares.clamp(min=0.0) / Yv.shape[1]).sqrt(), mask),
        history=history, n_iter=it, converged=converged,
        lambda_z=scene_lambdas[0], lambda_a=scene_lambdas[1], report=report, work=work,
    )


def encode_endmembers(model, M, lambda_z, tol=1e-3, max_iter=20, chunk_size=8192, feedback=None):
    """Whitened codes U (N, P, K) whose decoded endmembers are nearest to given ones M (N, L, P), solver units:
    ``u_pn = argmin 1/2 ||m_pn - G~_p(u)||^2 + lambda_Z/2 ||u||^2`` (the Z-step's cost with abundance 1 on p).

    Solved by :func:`.zstep.zstep` on P pseudo-pixels per pixel, ``y = m_pn`` with the abundances ``e_p`` (one-hot):
    the codes of the other materials then have no data term and stay at 0; u_pn is read from pseudo-pixel p.
    """
    n, length, p = M.shape
    k = model.latent_dim
    Y = M.permute(0, 2, 1).reshape(n * p, length).contiguous()
    A = torch.eye(p, dtype=M.dtype, device=M.device).repeat(n, 1)
    Z = torch.zeros((n * p, p, k), dtype=M.dtype, device=M.device)
    codes = zstep(model, Y, A, Z, lambda_z, tol=tol, max_iter=max_iter, chunk_size=chunk_size, feedback=feedback).Z
    index = torch.arange(p, device=M.device)
    return codes.reshape(n, p, p, k)[:, index, index].contiguous()


def variability_report(model, U, M):
    """Per material: how far the per-pixel endmembers moved from the reference, and trust-region exits.

    ``U`` (N, P, K) whitened codes of every pixel, ``M`` (S, L, P) per-pixel endmembers of some of them
    (:func:`deepgu_unmix` decodes :data:`REPORT_SAMPLE` evenly spaced pixels for the angles; the trust-region
    exits are counted on every pixel). Returns a list over
    materials of dicts: name, median_angle and p95_angle (degrees between G_p(z_pn) and m0_p),
    outside (fraction of pixels with ||u_pn|| > TRUST_RADIUS).
    """
    m0 = torch.as_tensor(model.m0, dtype=M.dtype, device=M.device)
    cos = (M * m0).sum(1) / (M.norm(dim=1) * m0.norm(dim=0)).clamp(min=torch.finfo(M.dtype).tiny)
    angles = torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))                  # (S, P)
    outside = (trust_distances(U) > TRUST_RADIUS).to(M.dtype).mean(0)
    quantiles = torch.quantile(angles, torch.tensor([0.5, 0.95], dtype=M.dtype, device=M.device), dim=0)
    return [{"name": name, "median_angle": float(quantiles[0, p]), "p95_angle": float(quantiles[1, p]),
             "outside": float(outside[p])} for p, name in enumerate(_names(model.model))]


def _names(model):
    return getattr(model, "names", None) or ["material %d" % (p + 1) for p in range(model.n_materials)]


def report_lines(report):
    """One log line per material of :func:`variability_report`."""
    return ["%s: per-pixel endmembers %.2f deg from the reference (median; 95%% within %.2f deg); "
            "%.1f%% of pixels outside the trust region" % (r["name"], r["median_angle"], r["p95_angle"],
                                                           100.0 * r["outside"]) for r in report]
