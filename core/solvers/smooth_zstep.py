"""DeepGU Z-step with a spatial prior on the whitened latent codes (issue 25 item 4).

With the abundances fixed, the codes u_n (PK,) of all valid pixels minimise together

    F(U) = sum_n f_n(u_n) + lambda_S/2 sum_{n~m} ||u_n - u_m||^2
         = sum_n f_n(u_n) + lambda_S/2 ||D U||^2,

with ``f_n`` the per-pixel Z-step cost of :mod:`.zstep` (data + ``lambda_Z/2 ||u_n||^2``), ``n~m`` the
horizontal and vertical neighbours of the valid grid and ``D`` the masked forward differences of
:class:`.astep.PixelGrid` (``D^T D`` its graph Laplacian). The prior is a Gaussian Markov random field
on the codes: with the data absent it is ``(lambda_Z I + lambda_S D^T D) u = 0``, a screened-Poisson
operator whose Green's function decays over ``sqrt(lambda_S / lambda_Z)`` pixels: a brightness
change seen in a pure area is carried into the mixed pixels around it (where, under sum-to-one, one
pixel alone cannot tell a brighter endmember from a larger abundance: ``docs/smooth_variability.md``).

Solved by Levenberg-Marquardt on all codes at once (one damping ``mu`` for the image):

    (blockdiag(H_n) + lambda_S D^T D + mu I) delta = -(g + lambda_S D^T D U),

``H_n``, ``g_n`` the Gauss-Newton matrix and gradient of f_n (:meth:`.zstep.PixelStats.system`), by
conjugate gradients preconditioned with the block diagonal ``H_n + (mu + lambda_S deg_n) I`` (deg_n the
number of valid neighbours; PK x PK per pixel). CG from 0 lowers the quadratic model at every
iterate, so a truncated solve is still a descent direction; the step is taken iff F decreases (so F never
increases), with Nielsen's damping rule on the gain F(U) - F(U + delta) over the model's predicted
decrease. It stops when ``||delta|| <= tol max(||U||, sqrt(N))`` (the paper's relative change, with a floor),
when the predicted decrease is below the decoder's round-off, or after ``max_iter`` iterations. Each
iteration decodes every pixel once (with its Jacobian), as one iteration of :func:`.zstep.zstep` does.
"""

import numpy as np
import torch

from ..feedback import ensure
from .zstep import _MU_INIT, _RESOLUTION, PixelStats, ZStepResult

#: conjugate-gradient iterations per Levenberg-Marquardt step at most, and their relative residual
CG_MAX_ITER = 200
CG_TOL = 1e-4


def neighbour_counts(mask):
    """(N,) number of valid horizontal and vertical neighbours of each valid pixel of ``mask`` (rows, cols),
    row-major as :class:`.astep.PixelGrid` numbers them."""
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    counts = (m[:-2, 1:-1].astype(int) + m[2:, 1:-1] + m[1:-1, :-2] + m[1:-1, 2:])
    return counts[np.asarray(mask, dtype=bool)]


def smoothness(grid, z, lambda_s):
    """``lambda_S/2 ||D U||^2`` for codes z (N, PK)."""
    dh, dv = grid.diff(z)
    return 0.5 * lambda_s * float((dh * dh).sum() + (dv * dv).sum())


def _pcg(apply, block_inverse, rhs):
    """Conjugate gradients from 0 for ``apply(x) = rhs`` (N, PK), preconditioned by ``block_inverse`` (N, PK, PK)."""
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    z = torch.einsum("nij,nj->ni", block_inverse, r)
    p = z.clone()
    rz = float((r * z).sum())
    stop = CG_TOL * float(rhs.norm())
    for _ in range(CG_MAX_ITER):
        if float(r.norm()) <= stop or rz <= 0:
            break
        q = apply(p)
        alpha = rz / float((p * q).sum())
        x += alpha * p
        r -= alpha * q
        z = torch.einsum("nij,nj->ni", block_inverse, r)
        rz, rz_old = float((r * z).sum()), rz
        p = z + (rz / rz_old) * p
    return x


def smooth_zstep(model, Y, A, Z, lambda_z, lambda_s, grid, degrees, stats=None, tol=1e-3, max_iter=20,
                 feedback=None):
    """Minimise F (module docstring) over the codes of every valid pixel, warm-started at Z.

    Parameters
    ----------
    model : the solver's (whitened) generative model, ``z0`` = 0 (:class:`.latent.WhitenedModel`).
    Y : (N, L) pixels; A : (N, P) abundances; Z : (N, P, K) warm start; all valid pixels of ``grid``.
    lambda_z, lambda_s : weights (the solver's units); grid : :class:`.astep.PixelGrid`;
    degrees : (N,) :func:`neighbour_counts` of the grid's mask (a tensor in Y's dtype).
    stats : :class:`.zstep.PixelStats` at Z (None: evaluated here).

    Returns
    -------
    :class:`.zstep.ZStepResult`; its objectives are F, smoothness included; ``iterations`` holds the
    number of steps for every pixel, ``converged`` the stopping test for every pixel.
    """
    feedback = ensure(feedback)
    n, p, k = Z.shape
    pk = p * k
    dtype = Y.dtype
    z = Z.to(dtype).reshape(n, pk).clone()
    A = A.to(dtype)
    yy = (Y * Y).sum(1)
    eye = torch.eye(pk, dtype=dtype, device=Y.device)
    evaluations = n if stats is None else 0
    with torch.no_grad():
        stats = PixelStats.evaluate(model, Z.to(dtype), Y) if stats is None else PixelStats(
            stats.S.clone(), stats.e.clone(), p)

        def total(s, x):
            return float(s.objective(yy, A, x, lambda_z).sum()) + smoothness(grid, x, lambda_s)

        f = f_start = total(stats, z)
        resolution = _RESOLUTION * torch.finfo(model.z0.dtype).eps * float(
            ((2.0 * stats.objective(yy, A, z, lambda_z)).clamp(min=0).sqrt() * yy.sqrt()).sum())
        H, g = stats.system(A, z, lambda_z)
        g = g + lambda_s * grid.laplacian(z)
        mu = max(_MU_INIT * float(torch.diagonal(H, dim1=1, dim2=2).amax()), float(torch.finfo(dtype).eps))
        nu = 2.0
        converged = False
        steps = 0
        while steps < max_iter:
            feedback.check_canceled()
            steps += 1

            def apply(v, damping=mu, H=H):
                return torch.einsum("nij,nj->ni", H, v) + lambda_s * grid.laplacian(v) + damping * v

            block_inverse = torch.linalg.inv(H + (mu + lambda_s * degrees)[:, None, None] * eye)
            delta = _pcg(apply, block_inverse, -g)
            predicted = -float((g * delta).sum()) - 0.5 * float((delta * apply(delta, 0.0)).sum())
            if (float(delta.norm()) <= tol * max(float(z.norm()), n ** 0.5)) or predicted <= resolution:
                converged = True
                break
            z_new = z + delta
            evaluations += n
            trial = PixelStats.evaluate(model, z_new.reshape(n, p, k), Y)
            f_new = total(trial, z_new)
            gain = (f - f_new) / max(predicted, float(torch.finfo(dtype).tiny))
            if f_new < f:
                z, f, stats = z_new, f_new, trial
                H, g = stats.system(A, z, lambda_z)
                g = g + lambda_s * grid.laplacian(z)
                mu, nu = mu * max(1.0 / 3.0, 1.0 - (2.0 * gain - 1.0) ** 3), 2.0
            else:
                mu, nu = mu * nu, 2.0 * nu
    iterations = torch.full((n,), steps, dtype=torch.long, device=Y.device)
    return ZStepResult(z.reshape(n, p, k), stats, iterations, torch.full((n,), converged, device=Y.device),
                       f_start, f, evaluations)
