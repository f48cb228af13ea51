"""The paper's parametric endmember-variability models: ELMM, GLMM and PLMM (Table III's other rows).

Each models pixel n's endmember matrix ``M_n`` (L, P) differently and keeps the abundances ``a_n`` on
the unit simplex. Notation: Y (L, N) the valid pixels, M0 (L, P) the references, A (P, N), D = (D_h, D_v)
the masked first differences of :class:`.astep.PixelGrid`. All three alternate exact (closed-form or
grid-solver) steps with the A-step of DeepGU, :func:`.astep.guarded_astep` (ADMM with the simplex and
the spatial term; the same implementation, kept only when it lowers its objective), so the cost never
rises from one iteration to the next.

ELMM (Drumetz et al., IEEE TIP 2016), one scaling factor per material and pixel, ``psi`` (P, N)::

    J = 1/2 sum_n ||y_n - S_n a_n||^2 + lambda_S/2 sum_n ||S_n - M0 diag(psi_n)||_F^2
        + lambda_A TV(A) + lambda_psi/2 sum_p ||D psi_p||^2

GLMM (Imbiriba et al., IEEE TSP 2018): the same with one factor per band, material and pixel,
``M0 (.) Psi_n`` (element-wise, Psi (L, P, N)) in place of ``M0 diag(psi_n)`` and the smoothness summed over
bands and materials. Both share the steps (``T_n`` = M0 diag(psi_n), resp. M0 (.) Psi_n):

- S step, per pixel, exact: ``S_n = (y_n a_n^T + lambda_S T_n)(a_n a_n^T + lambda_S I)^-1
  = T_n + r_n a_n^T / (lambda_S + ||a_n||^2)`` with ``r_n = y_n - T_n a_n`` (Sherman-Morrison);
- A step: :func:`.astep.guarded_astep` with the per-pixel S_n (anisotropic TV, lambda_A);
- psi step: the reduced cost (S at its optimum, ``1/2 sum_n w_n ||y_n - T_n a_n||^2``, w_n = lambda_S / (lambda_S +
  ||a_n||^2)) plus the smoothness, a quadratic in psi, by conjugate gradients warm-started at psi (every iterate
  lowers the cost), preconditioned for ELMM by the grid solver of :meth:`.astep.PixelGrid.solve_shifted` and for
  GLMM (L x P factors per pixel) by the diagonal (:meth:`_ScaledModel.v_step`). The authors clip S at a small
  positive value; here S is left exact (the clip would break the monotone cost).
- joint move: a Gauss-Newton step in psi and A together (:meth:`_ScaledModel.joint_move`), kept only when it
  lowers the cost. S is never stored (:class:`_ScaledModel`): ELMM needs no L x P array per pixel.

PLMM (Thouvenin et al., IEEE TSP 2016), an additive perturbation per pixel around a shared M::

    J = 1/2 sum_n ||y_n - (M + dM_n) a_n||^2 + alpha/2 ||D A||^2 + beta/2 ||M - M0||_F^2
        + gamma/2 sum_n ||dM_n||_F^2

- dM step, per pixel, exact: ``dM_n = r_n a_n^T / (gamma + ||a_n||^2)``, ``r_n = y_n - M a_n``: a rank-one
  matrix, kept as its factors ``e_n = r_n / (gamma + ||a_n||^2)`` (L,) and ``g_n = a_n`` (P,), so PLMM holds
  L + P numbers per pixel, not L x P;
- A step: :func:`.astep.guarded_astep` with ``M + e_n g_n^T`` and the quadratic smoothness
  (``tv="quadratic"``, weight alpha);
- M step, exact: ``M (A A^T + beta I) = (Y - dM A) A^T + beta M0``.
The original's positivity constraints on M and M + dM_n are left out (each step stays exact, so the cost is
monotone); beta is per pixel (the cost's beta is ``beta x N``), so a tile's M is pulled to M0 as a whole
image's is. M is shared within a solve: on a tiled raster each tile estimates its own.

Stopping (all three): the relative changes of A and of the variability (psi, resp. dM's factors and M) both below
``tol`` (the authors' test), or the cost's relative decrease below ``tol`` in each of the last two sweeps, or
``max_iter`` sweeps; then the last A-step is resumed to :data:`ADMM_FINAL_TOL`, as DeepGU does (:mod:`.unmix`).
Under sum-to-one a material's factor and its abundance trade against each other: the cost has a long, flat valley,
and exact alternating steps creep along it (100 sweeps and more on the test scenes, the abundances settled after
about ten, the cost still falling by 1e-5 a sweep). ELMM and GLMM therefore (1) follow each sweep by the joint move,
which steps along the valley, (2) stop on the cost's decrease, and (3) run each sweep's A-step only as exactly as the
sweeps' moves need (an inexact alternation): ADMM's tolerance is 1/10 of the last sweep's largest relative change,
within [:data:`ADMM_TOL`, :data:`ADMM_TOL_START`], ten times tighter after an A-step the guard rejected; after a
kept joint move ADMM starts afresh at the moved abundances (its split variables belong to the old ones).

Weights (``None`` / "auto": set from the data; a number overrides): the solver works on Y / unit (the data's
RMS); every auto weight scales with the data's units as its term does (:func:`resolve_weights`):

- ELMM and GLMM, as maximum a posteriori weights against the data term ``1/2 ||y - S a||^2`` (which is sigma^2 x
  the negative log-likelihood of white noise of variance sigma^2 per band, :func:`.regularisation.noise_variance`):
  lambda_psi = :data:`KAPPA_PSI` sigma^2, a Gaussian prior on the factors' differences between neighbours of
  standard deviation KAPPA_PSI^-1/2 (3 %); lambda_A = :data:`KAPPA_A_NOISE` sigma^2, a Laplace prior on the
  abundances' differences of scale 1 / KAPPA_A_NOISE (0.1). A variance per band, so neither depends on the band
  count, and neither on the variability itself (the rule before, lambda_psi = 1000 x FCLS's misfit energy per
  pixel and DeepGU's lambda_A from the FCLS maps' noise, grew with the variability the factors are there to
  take up: with a psi step that really minimises, that TV pulled the abundances to flat maps, the factors
  taking up their structure);
- lambda_S, gamma: dimensionless (a ratio of two sums over bands): :data:`KAPPA_S` (the authors' synthetic
  values: 5 for ELMM, 1 for GLMM), :data:`KAPPA_GAMMA`;
- alpha = :data:`KAPPA_ALPHA` x the data's curvature on the simplex (:func:`.regularisation.tv_curvature`):
  a quadratic smoother of about sqrt(KAPPA_ALPHA) pixels in the weakest directions;
- beta: :data:`KAPPA_BETA` per pixel.

Tensors are pixel-first, as in :mod:`.astep`: Y (N, L), A (N, P), S (N, L, P).
"""

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import defaults
from .astep import PixelGrid, _pcg, fcls_batched, guarded_astep, project_simplex
from ..errors import DeepGUError
from ..feedback import ensure
from .regularisation import describe, is_auto, measure_levels, tv_curvature
from .unmix import _to_grid, _valid_mask
from ..validation import MAX_LAMBDA, check_value_range, finite

#: the methods, and each one's weights in the order the toolbox lists them.
WEIGHTS = {"elmm": ("lambda_s", "lambda_a", "lambda_psi"), "glmm": ("lambda_s", "lambda_a", "lambda_psi"),
           "plmm": ("alpha", "beta", "gamma")}
METHODS = tuple(WEIGHTS)
#: ELMM / GLMM: the weight of the free per-pixel endmembers' tie to the scaled references.
KAPPA_S = {"elmm": 5.0, "glmm": 1.0}
#: ELMM / GLMM: lambda_psi over the image's noise variance per band, 1 / tau^2 for factors that change by about
#: tau = 3 % from one pixel to the next (module docstring).
KAPPA_PSI = {"elmm": 1000.0, "glmm": 1000.0}
#: ELMM / GLMM: lambda_A over the image's noise variance per band, 1 / b for abundance maps whose differences between
#: neighbours are about b = 0.1 (module docstring).
KAPPA_A_NOISE = 10.0
#: PLMM: alpha over the data's curvature on the simplex; beta per pixel; gamma.
KAPPA_ALPHA = 0.01
KAPPA_BETA = 1.0
KAPPA_GAMMA = 1.0
#: the A-step's ADMM tolerance: :data:`ADMM_TOL_START` in the first sweep, then ADMM_TOL_FACTOR x the last sweep's
#: largest relative change, within [ADMM_TOL, ADMM_TOL_START] (an inexact alternation: an A-step no more exact than
#: the sweeps' moves need), at most ADMM_MAX_ITER iterations a sweep (the next resumes where it stopped), and
#: ADMM_FINAL_TOL (DeepGU's) for the final A-step.
ADMM_TOL = 1e-5
ADMM_TOL_START = 1e-3
ADMM_TOL_FACTOR = 0.1
ADMM_MAX_ITER = 30
ADMM_FINAL_TOL = 1e-3
#: the psi step's conjugate gradients stop when they have reduced the warm start's residual by this factor
#: (each iterate lowers the cost).
PSI_CG_TOL = 1e-3
#: ... and after at most this many iterations.
PSI_CG_MAX_ITER = 50
#: ... in a sweep (followed by the joint move): at most this many (bench/bench_scale.py, 256 x 256 x 100: 30 %
#: less time than 50, the same abundances).
PSI_CG_SWEEP_MAX_ITER = 10
#: ELMM / GLMM: the joint move's conjugate gradients (:meth:`_ScaledModel.joint_move`): tolerance, iteration cap.
JOINT_CG_TOL = 1e-2
JOINT_CG_MAX_ITER = 20
JOINT_DAMPING = 1e-3
#: ... which holds materials of abundance at most ABSENT at 0.
ABSENT = 1e-9


@dataclass
class VariabilityResult:
    """A method's output on the (rows, cols) grid; NaN at invalid pixels.

    abundances (P, rows, cols); endmembers (L, P, rows, cols) per pixel (None when not asked for);
    variability (V, rows, cols): ELMM psi (P), GLMM Psi (P x L, material-major), PLMM ||dM_n||_F per material
    (P, in the data's units); rmse (rows, cols) per-pixel sqrt(mean_l (y - M_n a_n)^2);
    history: one dict per iteration (iteration, objective, change_a, change_v, admm_iterations, a_accepted,
    seconds); n_iter; converged; weights: {name: value} in the data's units.
    """

    abundances: np.ndarray
    endmembers: np.ndarray
    variability: np.ndarray
    rmse: np.ndarray
    history: list = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    weights: dict = field(default_factory=dict)


def method_defaults(method):
    """The defaults table of ``method`` (:data:`core.defaults.ELMM`, ``GLMM``, ``PLMM``)."""
    if method not in WEIGHTS:
        raise DeepGUError("unknown variability method %r; choose one of %s" % (method, ", ".join(METHODS)))
    return getattr(defaults, method.upper())


def check_weights(method, weights):
    """``{name: None or a number}`` for ``method``'s weights, validated (messages name the parameter, upper case);
    None / "auto" / missing: auto."""
    method_defaults(method)
    weights = dict(weights or {})
    unknown = set(weights) - set(WEIGHTS[method])
    if unknown:
        raise DeepGUError("%s has no weight %s" % (method.upper(), ", ".join(sorted(unknown))))
    return {name: None if is_auto(weights.get(name)) else finite(name.upper(), weights[name], 0, MAX_LAMBDA)
            for name in WEIGHTS[method]}


def needs_levels(method, weights):
    """Whether an auto weight of ``method`` needs the levels of :mod:`.regularisation` (lambda_A, lambda_psi)."""
    weights = check_weights(method, weights)
    return weights.get("lambda_a", 0) is None or weights.get("lambda_psi", 0) is None


def resolve_weights(method, weights, M0, levels=None):
    """``method``'s weights in the data's units: auto ones from ``M0`` (L, P) and ``levels`` (module docstring).

    ``levels``: :class:`.regularisation.Levels` (needed when lambda_A or lambda_psi is auto).
    """
    weights = check_weights(method, weights)
    M0 = np.asarray(M0, dtype=np.float64)
    if needs_levels(method, weights) and levels is None:
        raise DeepGUError("auto weights need the regularisation levels")
    out = dict(weights)
    if method in ("elmm", "glmm"):
        if out["lambda_s"] is None:
            out["lambda_s"] = KAPPA_S[method]
        if out["lambda_a"] is None:
            out["lambda_a"] = KAPPA_A_NOISE * levels.noise2
        if out["lambda_psi"] is None:
            out["lambda_psi"] = KAPPA_PSI[method] * levels.noise2
    else:
        if out["alpha"] is None:
            out["alpha"] = KAPPA_ALPHA * max(tv_curvature(M0), 0.0)
        if out["beta"] is None:
            out["beta"] = KAPPA_BETA
        if out["gamma"] is None:
            out["gamma"] = KAPPA_GAMMA
    return out


def describe_weights(method, weights, auto_names=(), levels=None):
    """One log line: the weights used, and what auto ones were set from."""
    text = ", ".join("%s %.4g%s" % (name, weights[name], " (auto)" if name in auto_names else "")
                     for name in WEIGHTS[method])
    return "%s weights: %s%s" % (method.upper(), text, "; %s" % describe(levels) if levels is not None else "")


# --------------------------------------------------------------------------- the models


class _ScaledModel:
    """ELMM (``bandwise`` False: psi (N, P)) or GLMM (True: Psi (N, L*P), material-minor) on the valid pixels.

    Weights in the solver's units (the cost / unit^2): lambda_s, lambda_a, lambda_psi.
    S is never stored: at its optimum for the abundances A of the last S step it is ``S_n = T_n + r_n c_n^T`` with
    ``r_n = y_n - T_n a_n`` (N, L) and ``c_n = a_n / (lambda_S + ||a_n||^2)`` (N, P), so the A-step's normal
    equations are ``S^T S = T^T T + u c^T + c u^T + ||r||^2 c c^T`` and ``S^T y = T^T y + c (r^T y)`` with
    ``u = T^T r``, and the cost's data and tie terms are ``1/2 w_n ||r_n||^2``, ``w_n = lambda_S c_n^T a_n / ||a_n||^2
    = lambda_S / (lambda_S + ||a_n||^2)``. For ELMM ``T^T T = diag(psi) M0^T M0 diag(psi)`` and ``T^T x =
    psi (.) M0^T x``: no L x P array per pixel at all (only OUTPUT_ENDMEMBERS materialises S).
    """

    tv = "anisotropic"
    joint_moves = True


    def __init__(self, bandwise, Y, M0, A, grid, weights):
        self.bandwise, self.Y, self.M0, self.grid = bandwise, Y, M0, grid
        self.ls, self.lambda_a, self.lpsi = weights["lambda_s"], weights["lambda_a"], weights["lambda_psi"]
        n, (L, P) = Y.shape[0], M0.shape
        self.psi = Y.new_ones((n, L * P if bandwise else P))
        c = M0 * M0 if bandwise else (M0 * M0).sum(0, keepdim=True)
        self.c = c.reshape(-1)                                                    # (Q,)
        self.K, self.YM0 = M0.T @ M0, Y @ M0                                      # (P, P), (N, P)
        self.s_step(A)

    def scaled(self):
        """T_n = M0 diag(psi_n) or M0 (.) Psi_n, (N, L, P)."""
        if self.bandwise:
            return self.M0 * self.psi.view(-1, *self.M0.shape)
        return self.M0 * self.psi[:, None, :]

    def _t_times(self, A):
        """T_n a_n, (N, L)."""
        if self.bandwise:
            return torch.bmm(self.scaled(), A[:, :, None])[:, :, 0]
        return (self.psi * A) @ self.M0.T

    def _t_transpose_times(self, X, T=None):
        """T_n^T x_n for X (N, L), (N, P) (``T``: the scaled references if already formed)."""
        if self.bandwise:
            return torch.bmm(X[:, None, :], self.scaled() if T is None else T)[:, 0]
        return self.psi * (X @ self.M0)

    def fit(self, A):
        """S_n a_n for A (N, P), (N, L)."""
        return self._t_times(A) + self.r * (self.cs * A).sum(1, keepdim=True)

    def endmembers(self):
        """The free endmembers S at their optimum, (N, L, P)."""
        return self.scaled() + self.r[:, :, None] * self.cs[:, None, :]

    def s_step(self, A):
        self.r = self.Y - self._t_times(A)
        self.cs = A / (self.ls + (A * A).sum(1, keepdim=True))

    def _curvature(self, A):
        """The reduced cost's data term in psi (module docstring): ``(apply, rhs, diagonal)`` with apply(X) = H X for
        X (N, Q), the right-hand side w_n (a_n-weighted M0^T y_n) and H's diagonal (N, Q)."""
        w = self.ls / (self.ls + (A * A).sum(1, keepdim=True))                        # (N, 1)
        if self.bandwise:
            L, P = self.M0.shape
            B = self.M0 * A[:, None, :]                                              # (N, L, P): m0_lp a_pn
            rhs = (w[:, :, None] * B * self.Y[:, :, None]).reshape(-1, L * P)

            def apply(X):
                X = X.view(-1, L, P)
                return (w[:, :, None] * B * (B * X).sum(2, keepdim=True)).reshape(-1, L * P)

            diagonal = (w[:, :, None] * B * B).reshape(-1, L * P)
        else:
            K = self.K
            rhs = w * A * self.YM0

            def apply(X):
                return w * A * ((A * X) @ K)

            diagonal = w * A * A * torch.diagonal(K)
        return apply, rhs, diagonal

    def v_step(self, A, max_iter=None):
        """The psi step: the reduced cost, the S step's minimum ``1/2 sum_n w_n ||y_n - T_n a_n||^2`` (w_n = lambda_S /
        (lambda_S + ||a_n||^2)), plus the smoothness, minimised over psi by conjugate gradients warm-started at
        psi and preconditioned (module docstring); every iterate lowers the cost, so the iteration cap
        (``max_iter``, default :data:`PSI_CG_MAX_ITER`; the sweeps use :data:`PSI_CG_SWEEP_MAX_ITER`, an inexact
        step as their A-step's) keeps the descent. ELMM's preconditioner is the grid solver with H's mean diagonal per
        factor as the shift; GLMM's the diagonal of H + 4 lambda_psi (Jacobi): the grid solver's transforms of L x P
        factors per pixel cost O(rows + cols) each per iteration, hundreds of times the rest."""
        apply, rhs, diagonal = self._curvature(A)
        tiny = torch.finfo(rhs.dtype).tiny
        max_iter = PSI_CG_MAX_ITER if max_iter is None else max_iter
        if self.lpsi == 0:      # per pixel; a proximal term keeps factors of absent materials where they are
            ridge = 1e-9 * float(diagonal.mean()) + tiny
            self.psi = _pcg(lambda X: apply(X) + ridge * X, lambda R: R / (diagonal + ridge), rhs + ridge * self.psi,
                            self.psi, tol=PSI_CG_TOL, max_iter=max_iter, relative_to_start=True)
            return
        if self.bandwise:
            jacobi = diagonal + 4.0 * self.lpsi

            def precondition(R):
                return R / jacobi
        else:
            mean = diagonal.mean(0)
            shift = (mean / self.lpsi).clamp(min=1e-9 * float(mean.mean()) / self.lpsi + tiny)

            def precondition(R):
                return self.grid.solve_shifted(R / self.lpsi, R, shift)

        self.psi = _pcg(lambda X: apply(X) + self.lpsi * self.grid.laplacian(X), precondition, rhs, self.psi,
                        tol=PSI_CG_TOL, max_iter=max_iter, relative_to_start=True)

    def _jacobian(self, A):
        """(J, J^T) of the scaled references' fit ``T_n a_n`` in psi at A: J X (N, L) for X (N, Q), J^T V (N, Q) for
        V (N, L)."""
        if self.bandwise:
            L, P = self.M0.shape
            B = self.M0 * A[:, None, :]
            return (lambda X: (B * X.view(-1, L, P)).sum(2)), (lambda V: (B * V[:, :, None]).reshape(-1, L * P))
        return (lambda X: (A * X) @ self.M0.T), (lambda V: A * (V @ self.M0))

    def joint_move(self, A):
        """A Gauss-Newton move of psi and A together (variable projection): the sweeps move along the cost's valley,
        where a material's factor and its abundance trade against each other under sum-to-one, by small steps; this
        move minimises the linearised reduced cost ``1/2 sum_n w_n ||r_n - J_n dpsi_n - T_n da_n||^2 + lambda_psi/2
        ||D (psi + dpsi)||^2`` over dpsi and da with ``1^T da_n = 0`` and ``da_pn = 0`` where ``a_pn = 0`` (not the
        TV: the caller keeps the move only when it lowers the cost). J_n is the Jacobian of ``T_n a_n`` in psi_n
        (ELMM: ``M0 diag(a_n)``; GLMM: ``[m0_lp a_pn]`` (L, L x P)). With ``Q_n = diag(m_n) - m_n m_n^T / (m_n^T m_n)``
        the projection onto those directions (m_n: 1 at present materials) and ``G_n = Q_n T_n^T T_n Q_n + g_n (I -
        Q_n)`` (``g_n`` its scale: invertible, and ``da_n = G_n^-1 Q_n T_n^T x`` minimises ``||x - T_n da_n||`` over
        them), da is eliminated per pixel and dpsi solves ``(J^T w Pi J + mu I + lambda_psi D^T D) dpsi = J^T w Pi r -
        lambda_psi D^T D psi``, ``Pi_n = I - T_n G_n^-1 Q_n T_n^T``, by conjugate gradients from 0 (mu =
        :data:`JOINT_DAMPING` x the mean diagonal of ``J^T w Pi J``, a Levenberg-Marquardt damping: a material absent
        from the whole tile leaves its factor's constant free). For ELMM ``J^T Pi J = diag(a) (K - K Psi G^-1 Q Psi K)
        diag(a)`` (K = M0^T M0) is a P x P matrix per pixel, rank one where every material is present (only the
        overall scale is pinned by the pixel): the conjugate gradients are preconditioned by these blocks plus mu + 4
        lambda_psi (the Laplacian's diagonal), which the grid solver's one shift per factor cannot follow; for GLMM
        by the grid solver with the mean diagonal as the shift. Returns (dpsi (N, Q), da (N, P))."""
        P = A.shape[1]
        m = (A > ABSENT).to(A.dtype)                                              # (N, P)
        Qm = torch.diag_embed(m) - m[:, :, None] * m[:, None, :] / m.sum(1).clamp(min=1)[:, None, None]
        w = self.ls / (self.ls + (A * A).sum(1, keepdim=True))                    # (N, 1)
        if self.bandwise:
            T = self.scaled()
            gram = torch.bmm(T.transpose(1, 2), T)
            jac, jac_t = self._jacobian(A)
        else:
            gram = self.psi[:, :, None] * self.K * self.psi[:, None, :]
        scale = torch.diagonal(gram, dim1=1, dim2=2).mean(1)[:, None, None]
        eye = torch.eye(P, dtype=A.dtype, device=A.device)
        inverse = torch.linalg.inv(Qm @ gram @ Qm + scale * (eye - Qm))
        solve = inverse @ Qm                                                      # G^-1 Q, (N, P, P)
        if self.bandwise:
            def move(V):                                                          # da for x = V
                return (solve @ torch.bmm(V[:, None, :], T).transpose(1, 2))[:, :, 0]

            def project(V):                                                       # Pi V
                return V - torch.bmm(T, move(V)[:, :, None])[:, :, 0]

            def apply(X):
                return jac_t(w * project(jac(X)))

            rhs = jac_t(w * project(self.r))
            _, _, diagonal = self._curvature(A)                                   # of J^T w J: at least J^T w Pi J's
        else:
            def move(V_m0):                                                       # da from M0^T x
                return (solve @ (self.psi * V_m0)[:, :, None])[:, :, 0]

            KP = self.K * self.psi[:, None, :]                                    # K Psi, (N, P, P)
            H = self.K - KP @ solve @ KP.transpose(1, 2)                          # M0^T Pi M0
            H = (w * A)[:, :, None] * H * A[:, None, :]

            def apply(X):
                return (H @ X[:, :, None])[:, :, 0]

            residual_m0 = self.r @ self.M0
            rhs = w * A * (residual_m0 - (KP @ move(residual_m0)[:, :, None])[:, :, 0])
            diagonal = torch.diagonal(H, dim1=1, dim2=2)
        rhs = rhs - self.lpsi * self.grid.laplacian(self.psi)
        tiny = torch.finfo(rhs.dtype).tiny
        damping = JOINT_DAMPING * float(diagonal.mean()) + tiny
        if self.bandwise:
            jacobi = diagonal + damping + 4.0 * self.lpsi

            def precondition(R):
                return R / jacobi
        else:
            blocks = torch.linalg.inv(H + (damping + 4.0 * self.lpsi) * eye)

            def precondition(R):
                return (blocks @ R[:, :, None])[:, :, 0]
        dpsi = _pcg(lambda X: apply(X) + damping * X + self.lpsi * self.grid.laplacian(X),
                    precondition, rhs, torch.zeros_like(self.psi),
                    tol=JOINT_CG_TOL, max_iter=JOINT_CG_MAX_ITER)
        return dpsi, move(self.r - jac(dpsi)) if self.bandwise else move(residual_m0 - (A * dpsi) @ self.K)

    def steps(self, A):
        """One sweep's steps before the A-step, and after it: the psi step (S eliminated), then S at its optimum."""
        return (), (lambda A: self.v_step(A, PSI_CG_SWEEP_MAX_ITER), self.s_step)

    def variability(self):
        """(N, V): psi."""
        return self.psi

    def state(self):
        return self.psi

    def set_state(self, psi, A):
        """Move to the factors ``psi`` (a point of :func:`_joint_move`), with S at its optimum for A."""
        self.psi = psi
        self.s_step(A)

    def data_and_penalty(self, A, yy):
        """The cost's terms beside the spatial term of A, with S at its optimum for A (the last S step's):
        ``1/2 sum_n w_n ||r_n||^2 + lambda_psi/2 sum ||D psi||^2`` (class docstring)."""
        w = self.ls / (self.ls + (A * A).sum(1))
        dh, dv = self.grid.diff(self.psi)
        return 0.5 * float((w * (self.r * self.r).sum(1)).sum()) + 0.5 * self.lpsi * float((dh * dh).sum()
                                                                                           + (dv * dv).sum())

    def normal_equations(self):
        """S^T S (N, P, P) and S^T y (N, P) of the S at its optimum (class docstring)."""
        r, cs = self.r, self.cs
        if self.bandwise:
            T = self.scaled()
            TT = torch.bmm(T.transpose(1, 2), T)
            u, ty = self._t_transpose_times(r, T), self._t_transpose_times(self.Y, T)
        else:
            TT = self.psi[:, :, None] * self.K * self.psi[:, None, :]
            u, ty = self._t_transpose_times(r), self.psi * self.YM0
        uc = u[:, :, None] * cs[:, None, :]
        G = TT + uc + uc.transpose(1, 2) + (r * r).sum(1)[:, None, None] * cs[:, :, None] * cs[:, None, :]
        return G, ty + cs * (r * self.Y).sum(1, keepdim=True)


class _PerturbedModel:
    """PLMM on the valid pixels; weights in the solver's units: alpha, beta (per pixel), gamma."""

    tv = "quadratic"
    joint_moves = False

    def __init__(self, Y, M0, A, grid, weights):
        self.Y, self.M0, self.grid = Y, M0, grid
        self.lambda_a, self.gamma = weights["alpha"], weights["gamma"]
        self.beta = weights["beta"] * Y.shape[0]
        self.M = M0.clone()
        self.e, self.g = Y.new_zeros(Y.shape), A.clone()

    def endmembers(self):
        return self.M + self.e[:, :, None] * self.g[:, None, :]

    def fit(self, A):
        """(M + dM_n) a_n for A (N, P), (N, L)."""
        return A @ self.M.T + self.e * (self.g * A).sum(1, keepdim=True)

    def d_step(self, A):
        r = self.Y - A @ self.M.T
        self.e, self.g = r / (self.gamma + (A * A).sum(1, keepdim=True)), A.clone()

    def m_step(self, A):
        R = self.Y - self.e * (self.g * A).sum(1, keepdim=True)                # y_n - dM_n a_n
        P = A.shape[1]
        lhs = A.T @ A + self.beta * torch.eye(P, dtype=A.dtype, device=A.device)
        self.M = torch.linalg.solve(lhs, (R.T @ A + self.beta * self.M0).T).T

    def steps(self, A):
        return (self.d_step,), (self.m_step,)

    def variability(self):
        """(N, P): ||dM_n||_F per material, ||e_n|| |g_pn|."""
        return self.e.norm(dim=1, keepdim=True) * self.g.abs()

    def state(self):
        return torch.cat([self.e.reshape(-1), self.g.reshape(-1), self.M.reshape(-1)])

    def penalty(self, A):
        dm = (self.e * self.e).sum(1) * (self.g * self.g).sum(1)                   # ||e g^T||_F^2 per pixel
        return 0.5 * self.beta * float(((self.M - self.M0) ** 2).sum()) + 0.5 * self.gamma * float(dm.sum())

    def data_and_penalty(self, A, yy):
        """The cost's terms beside the spatial term of A."""
        G, b = self.normal_equations()
        data = 0.5 * float((yy - 2.0 * (b * A).sum(1) + torch.einsum("np,npq,nq->n", A, G, A)).sum())
        return data + self.penalty(A)

    def normal_equations(self):
        M, e, g, Y = self.M, self.e, self.g, self.Y
        mtm, mte = M.T @ M, e @ M                                                 # (P, P), (N, P)
        ee = (e * e).sum(1)[:, None, None]
        G = mtm + mte[:, :, None] * g[:, None, :] + g[:, :, None] * mte[:, None, :] + ee * g[:, :, None] * g[:, None, :]
        b = Y @ M + g * (e * Y).sum(1, keepdim=True)
        return G, b


def _model(method, Y, M0, A, grid, weights):
    if method == "plmm":
        return _PerturbedModel(Y, M0, A, grid, weights)
    return _ScaledModel(method == "glmm", Y, M0, A, grid, weights)


def _rel_change(new, old):
    return float((new - old).norm() / old.norm().clamp(min=torch.finfo(old.dtype).tiny))


# --------------------------------------------------------------------------- the solver


def unmix_variability(method, Y, M0, weights=None, mask=None, A_init=None, max_iter=None, tol=None, levels=None,
                      endmembers=True, feedback=None, dtype=torch.float64, admm_max_iter=None,
                      final_admm_max_iter=1000):
    """ELMM, GLMM or PLMM (``method``, module docstring) on an image.

    Parameters
    ----------
    Y : (L, rows, cols) image; M0 : (L, P) reference endmembers in the image's units.
    weights : {name: number or None (auto)} of :data:`WEIGHTS` [method]; missing: auto.
    mask : (rows, cols) bool, True at valid pixels (default: finite in every band).
    A_init : (P, rows, cols) initial abundances (projected onto the simplex); default FCLS with M0.
    levels : :class:`.regularisation.Levels` the auto weights use (default: measured on this image with the initial
        abundances; pass the same levels to every tile of a scene).
    max_iter, tol : the outer loop's limits (None: the method's MAX_ITER and TOLERANCE defaults).
    admm_max_iter, final_admm_max_iter : ADMM's iteration caps, in the loop and at the end.
    endmembers : return the per-pixel endmembers (L x P values per pixel).

    Returns
    -------
    VariabilityResult
    """
    feedback = ensure(feedback)
    weights = check_weights(method, weights)
    table = method_defaults(method)
    max_iter = table["MAX_ITER"] if max_iter is None else max_iter
    admm_max_iter = ADMM_MAX_ITER if admm_max_iter is None else admm_max_iter
    tol = table["TOLERANCE"] if tol is None else tol
    Y, M0 = np.asarray(Y), np.asarray(M0, dtype=np.float64)
    if Y.ndim != 3:
        raise DeepGUError("the image must be (bands, rows, cols), got shape %s" % (Y.shape,))
    if M0.ndim != 2 or M0.shape[0] != Y.shape[0]:
        raise DeepGUError("the image has %d bands but the endmembers %s" % (Y.shape[0], M0.shape[:1]))
    P = M0.shape[1]
    if A_init is not None and A_init.shape != (P,) + Y.shape[1:]:
        raise DeepGUError("A_init must be %s, got %s" % ((P,) + Y.shape[1:], A_init.shape))
    check_value_range("the image", Y[np.isfinite(Y)])
    mask = _valid_mask(Y, mask)
    grid = PixelGrid(mask)
    Yv = torch.as_tensor(Y[:, mask].T, dtype=dtype).contiguous()
    unit = max(float(Yv.pow(2).mean().sqrt()), float(torch.finfo(dtype).tiny))
    Yv = Yv / unit
    M0t = torch.as_tensor(M0, dtype=dtype) / unit
    yy = (Yv * Yv).sum(1)
    if A_init is None:
        A = fcls_batched(M0t, Yv)
    else:
        A_valid = np.asarray(A_init)[:, mask].T
        if not np.all(np.isfinite(A_valid)):
            raise DeepGUError("A_init has non-finite values at valid pixels")
        A = project_simplex(torch.as_tensor(A_valid, dtype=dtype))
    auto = [name for name, value in weights.items() if value is None]
    if needs_levels(method, weights) and levels is None:
        levels = measure_levels(Y, M0, _to_grid(A, mask), mask)
    scene = resolve_weights(method, weights, M0, levels)
    feedback.info(describe_weights(method, scene, auto, levels if needs_levels(method, weights) else None))
    solver_weights = {name: value if name in ("lambda_s", "beta", "gamma") else value / unit ** 2
                      for name, value in scene.items()}
    model = _model(method, Yv, M0t, A, grid, solver_weights)
    before_a, after_a = model.steps(A)
    history, admm_state, converged, it = [], None, False, 0
    admm_tol, decreases, previous = ADMM_TOL_START, [], _objective(model, A, yy)
    for it in range(1, max_iter + 1):
        feedback.check_canceled()
        start = time.perf_counter()
        old_state = model.state().clone()
        for step in before_a:
            step(A)
        G, b = model.normal_equations()
        A_new, info, _ = guarded_astep(G, b, yy, grid, model.lambda_a, A, model.tv, admm_tol, admm_max_iter,
                                       admm_state)
        admm_state = info["state"]
        for step in after_a:
            step(A_new)
        objective = _objective(model, A_new, yy)
        if model.joint_moves:
            A_sweep = A_new
            A_new, objective = _joint_move(model, A_new, objective, yy)
            if A_new is not A_sweep:        # ADMM starts again at the moved abundances
                admm_state = None
        change_a, change_v = _rel_change(A_new, A), _rel_change(model.state(), old_state)
        A = A_new
        decreases.append((previous - objective) / max(abs(objective), float(torch.finfo(dtype).tiny)))
        previous = objective
        history.append({"iteration": it, "objective": objective * unit ** 2, "change_a": change_a,
                        "change_v": change_v, "admm_iterations": info["iterations"], "a_accepted": info["accepted"],
                        "seconds": time.perf_counter() - start})
        feedback.info("%s iteration %d/%d: objective %.6g, change A %.2e, variability %.2e; %d ADMM iterations%s"
                      % (method.upper(), it, max_iter, objective * unit ** 2, change_a, change_v, info["iterations"],
                         "" if info["accepted"] else " (no decrease: A kept)"))
        feedback.set_progress(100.0 * it / (max_iter + 1))
        if (change_a < tol and change_v < tol) or (len(decreases) >= 2 and max(decreases[-2:]) < tol):
            converged = True
            break
        next_tol = min(ADMM_TOL_START, max(ADMM_TOL, ADMM_TOL_FACTOR * max(change_a, change_v)))
        admm_tol = next_tol if info["accepted"] else max(ADMM_TOL, min(next_tol, 0.1 * admm_tol))
    feedback.check_canceled()
    G, b = model.normal_equations()
    A, _, _ = guarded_astep(G, b, yy, grid, model.lambda_a, A, model.tv, ADMM_FINAL_TOL, final_admm_max_iter,
                            admm_state)
    residual = Yv - model.fit(A)
    variability = model.variability() * (unit if method == "plmm" else 1.0)
    feedback.set_progress(100.0)
    return VariabilityResult(
        abundances=_to_grid(A, mask),
        endmembers=_to_grid(model.endmembers() * unit, mask) if endmembers else None,
        variability=_to_grid(_material_major(variability, method, M0.shape), mask),
        rmse=_to_grid((residual * residual).mean(1).sqrt() * unit, mask),
        history=history, n_iter=it, converged=converged, weights=scene)




def _joint_move(model, A, objective, yy):
    """:meth:`_ScaledModel.joint_move` from the sweep's result, kept at the first of the steps 1, 1/2, 1/4 of it (A
    projected onto the simplex, S at its optimum) that lowers the cost; returns (A, objective), the model at that
    point (the sweep's when none does)."""
    psi = model.state().clone()
    dpsi, da = model.joint_move(A)
    for t in (1.0, 0.5, 0.25):
        A_trial = project_simplex(A + t * da)
        model.set_state(psi + t * dpsi, A_trial)
        trial = _objective(model, A_trial, yy)
        if trial < objective:
            return A_trial, trial
    model.set_state(psi, A)
    return A, objective


def _material_major(values, method, shape):
    """GLMM's Psi (N, L*P) band-major within a pixel -> (N, P*L) material-major (as the endmember rasters)."""
    if method != "glmm":
        return values
    L, P = shape
    return values.view(-1, L, P).transpose(1, 2).reshape(values.shape[0], P * L)


def _objective(model, A, yy):
    """The method's cost J in the solver's units: the model's terms plus the spatial term of A."""
    spatial = float(model.grid.tv(A, model.tv)) if model.lambda_a > 0 else 0.0
    return model.data_and_penalty(A, yy) + model.lambda_a * spatial
