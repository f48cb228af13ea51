"""DeepGU A-step: abundances with per-pixel endmembers, simplex constraint and spatial TV (torch).

With the per-pixel endmember matrices ``M_n`` (L, P) fixed, the A-step of
Algorithm 1 (paper eq. 13) solves

    min_A  1/2 sum_n ||y_n - M_n a_n||^2 + lambda_A TV(A)   s.t.  a_n >= 0, 1^T a_n = 1.

Pixels are the N valid pixels of a ``(rows, cols)`` mask, in row-major order,
and tensors are pixel-first: ``M`` (N, L, P), ``Y`` (N, L), ``A`` (N, P).
Differences are taken only between two horizontally or vertically adjacent
valid pixels (:class:`PixelGrid`), so nothing couples across nodata or the
image border. With ``D_h A``, ``D_v A`` the (N, P) forward differences (zero
where the neighbour is missing):

- ``tv="anisotropic"`` (default; the authors' "1,1" norm): sum |D_h A| + |D_v A|;
- ``tv="group"`` (paper eq. 8): sum over differences of the 2-norm over the P
  materials, ||D_h A||_{2,1} + ||D_v A||_{2,1};
- ``tv="isotropic"``: sum over pixels and materials of sqrt((D_h A)^2 + (D_v A)^2);
- ``tv="quadratic"`` (not a TV: PLMM's smoothness, :mod:`.variability_models`): 1/2 (||D_h A||^2 + ||D_v A||^2),
  whose proximal step is ``U <- V / (1 + lambda_A / rho)``.

``lambda_A = 0`` is per-pixel FCLS, solved exactly by :func:`fcls_gram` (the support
enumeration of :mod:`core.solvers.fcls`).
Otherwise ADMM (Boyd et al. 2011; the splitting of ELMM, Drumetz et al. 2016)
with A as the x-variable and three copies ``B = A`` (data), ``U = (D_h A, D_v A)``
(TV), ``C = A`` (simplex); with scaled duals W_B, W_U, W_C and penalty rho:

    A <- (2 I + D^T D)^{-1} [B - W_B + D^T (U - W_U) + C - W_C]
         (D^T D is the graph Laplacian of the valid pixels, same for every material:
         solved exactly by discrete cosine transforms when the valid pixels fill their
         bounding box, :mod:`.laplacian`, else by conjugate gradients preconditioned so)
    H = alpha K A + (1 - alpha) (B, U, C),  K = [I; D; I]     over-relaxation, alpha = 1.6
    b_n <- (M_n^T M_n + rho I)^{-1} (M_n^T y_n + rho (h_Bn + w_Bn))   per pixel, inverse
         computed once per rho
    U <- shrink(H_U + W_U, lambda_A / rho)        soft / group / isotropic thresholding
    c_n <- proj_simplex(h_Cn + w_Cn)               per pixel (sort-based, Condat 2016)
    W <- W + (H - (B, U, C))

Every step is pixel-separable or the one Laplacian solve.
Stopping (Boyd 3.3.1, abs = rel = tol): ``||r|| <= sqrt(dim r) tol + tol max(||K A||, ||z||)`` and
``||s|| <= sqrt(dim A) tol + tol ||rho K^T W||`` with r = K A - z,
s = rho K^T (z - z_prev); rho is balanced (Boyd 3.4.1: when one residual exceeds 10 times
the other, rho is multiplied by sqrt(||r|| / ||s||), within [1/10, 10]). Over-relaxation
(Boyd 3.4.3) and that balancing factor need 2-3 times fewer iterations than plain ADMM with
rho doubled or halved, and stop closer to the optimum. The returned abundances are ``C``,
which lie exactly on the simplex.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ..defaults import TV_KINDS
from ..errors import DeepGUError
from .fcls import SharedGram, best_on_supports, check_materials, kkt_matrices, pixels_per_chunk, supports
from .laplacian import ShiftedLaplacianSolver

_CG_TOL = 1e-10
_CG_MAX_ITER = 50
_RHO_BALANCE = 10.0
_RHO_FACTOR = 10.0        # largest change of rho at once
_RELAXATION = 1.6
_DCT_MAX_SIDES = 1024      # box rows + cols up to which the A-update is solved by dense DCTs


# --------------------------------------------------------------------------- simplex


def project_simplex(V):
    """Euclidean projection of every row of ``V`` (N, P) onto the unit simplex.

    Sort-based (Held et al. 1974, Duchi et al. 2008, Condat 2016): with ``u`` the row sorted decreasingly
    and ``f_j = (sum_{i<=j} u_i - 1) / j``, the projection is ``max(v - theta, 0)`` with ``theta = f_k``,
    ``k = max{j : u_j > f_j}``. ``f`` rises while ``u_j > f_(j-1)`` and falls after (``f_j - f_(j-1) =
    (u_j - f_(j-1)) / j``), so ``theta = max_j f_j``. For P <= 4 the rows are sorted by a sorting network of
    element-wise maxima and minima over the columns (one pass per comparator: a sort of many short rows costs
    several times more), otherwise by ``torch.sort``.
    """
    if V.shape[1] in _NETWORKS:
        columns = list(V.T.contiguous().unbind(0))
        for i, j in _NETWORKS[V.shape[1]]:
            columns[i], columns[j] = torch.maximum(columns[i], columns[j]), torch.minimum(columns[i], columns[j])
    else:
        columns = list(torch.sort(V, dim=1, descending=True)[0].T.unbind(0))
    total = columns[0].clone()
    theta = total - 1.0
    for j, u in enumerate(columns[1:], start=2):
        total += u
        theta = torch.maximum(theta, (total - 1.0) / j)
    return (V - theta[:, None]).clamp_(min=0.0)


#: optimal sorting networks (comparator pairs, the larger value going to the first index) for 2 to 4 values
_NETWORKS = {1: (), 2: ((0, 1),), 3: ((0, 1), (1, 2), (0, 1)), 4: ((0, 1), (2, 3), (0, 2), (1, 3), (1, 2))}


# --------------------------------------------------------------------------- FCLS


def normal_equations(M, Y):
    """G = M^T M (N, P, P) and b = M^T y (N, P) for M (N, L, P) or a shared (L, P); Y (N, L)."""
    if M.dim() == 2:
        return (M.T @ M).expand(Y.shape[0], -1, -1), Y @ M
    return torch.einsum("nlp,nlq->npq", M, M), torch.einsum("nlp,nl->np", M, Y)


def fcls_gram(G, b):
    """Exact ``argmin 1/2 a^T G_n a - b_n^T a`` over the unit simplex for every pixel.

    G (N, P, P) symmetric PSD, b (N, P) -> A (N, P). The support enumeration of
    :mod:`core.solvers.fcls` with one Gram matrix per pixel: the KKT systems
    ``[[G_SS, 1], [1^T, 0]] [a_S; mu] = [b_S; 1]`` of all supports of one size are
    solved for all pixels at once (``torch.linalg.solve_ex``; singular ones give no
    candidate) and :func:`core.solvers.fcls.best_on_supports` keeps the best feasible one.
    Pixels go in chunks (:func:`core.solvers.fcls.pixels_per_chunk`) so memory stays bounded.
    """
    n, p = b.shape
    check_materials(p)
    scale = torch.diagonal(G, dim1=1, dim2=2).mean(dim=1).clamp(min=torch.finfo(G.dtype).tiny)
    G = G / scale[:, None, None]
    b = b / scale[:, None]
    chunk = pixels_per_chunk(p, per_pixel_gram=True)
    return torch.cat([best_on_supports(b[s:s + chunk], _kkt_candidates(G[s:s + chunk], b[s:s + chunk]), torch)
                      for s in range(0, n, chunk)] or [b.clone()])


def _kkt_candidates(G, b):
    """For each support size: (supports (C, k), Gram blocks (n, C, k, k), KKT solutions (n, C, k), NaN if singular)."""
    for table in supports(b.shape[1]):
        support = torch.tensor(table, device=b.device)
        g_ss = G[:, support[:, :, None], support[:, None, :]]
        b_s = b[:, support]
        rhs = torch.cat([b_s, torch.ones_like(b_s[..., :1])], -1)
        solution, info = torch.linalg.solve_ex(kkt_matrices(g_ss, torch), rhs)
        yield support, g_ss, torch.where((info == 0)[..., None], solution[..., :-1], math.nan)


def fcls_batched(M, Y):
    """Per-pixel fully constrained least squares ``a_n = argmin_{simplex} ||y_n - M_n a||^2``.

    M (N, L, P) per-pixel endmembers, or (L, P) shared by all pixels (then solved with the
    pseudo-inverse tables of :class:`core.solvers.fcls.SharedGram`); Y (N, L).
    Returns A (N, P) on the unit simplex, exact (see :func:`fcls_gram`).
    Pixels are processed in chunks so memory stays bounded.
    """
    p = M.shape[-1]
    check_materials(p)
    if M.dim() == 2:
        m = M.detach().cpu().double().numpy()
        solver = SharedGram(m.T @ m, torch, lambda table: torch.tensor(
            table, device=Y.device, dtype=Y.dtype if table.dtype.kind == "f" else None))
        chunk = pixels_per_chunk(p)
        return torch.cat([solver.solve(Y[s:s + chunk] @ M) for s in range(0, Y.shape[0], chunk)]
                         or [Y.new_zeros((0, p))])
    chunk = pixels_per_chunk(p, per_pixel_gram=True)
    return torch.cat([fcls_gram(*normal_equations(M[s:s + chunk], Y[s:s + chunk]))
                      for s in range(0, Y.shape[0], chunk)] or [Y.new_zeros((0, p))])


# --------------------------------------------------------------------------- grid


class PixelGrid:
    """Neighbourhood of the valid pixels of a (rows, cols) mask, for masked differences.

    Valid pixels are numbered 0..N-1 in row-major order. For A (N, P):
    ``diff(A) = (D_h A, D_v A)`` with ``(D_h A)_n = a_right(n) - a_n`` where the
    right neighbour exists and is valid, else 0 (same downwards for D_v);
    ``diff_adjoint`` applies D_h^T, D_v^T. Internally pixels are laid out on the bounding
    box of the valid pixels (box rows, box cols, P), 0 at invalid ones, and the differences are
    slices weighted by the 0/1 edge indicators; when the valid pixels fill their box (a tile
    without nodata) the layout is a free reshape of (N, P).
    """

    def __init__(self, mask, device="cpu"):
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2:
            raise DeepGUError("the mask must be (rows, cols), got shape %s" % (mask.shape,))
        self.mask = mask
        self.n_pixels = n = int(mask.sum())
        used_rows, used_cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        box = mask[used_rows[0]:used_rows[-1] + 1, used_cols[0]:used_cols[-1] + 1] if n else mask[:0, :0]
        self.box_shape = box.shape
        self._box_full = bool(box.all())
        self._box_index = torch.as_tensor(np.flatnonzero(box), device=device)
        self._edges = {"h": box[:, :-1] & box[:, 1:], "v": box[:-1] & box[1:]}    # (rows, cols - 1), (rows - 1, cols)
        self.n_edges = int(self._edges["h"].sum() + self._edges["v"].sum())
        self._device = device
        self._weights = {}
        self._box_solvers = {}

    def _edge_weights(self, dtype):
        """The 0/1 edge indicators (box rows, box cols - 1, 1) and (box rows - 1, box cols, 1) in ``dtype``;
        None when the box is full (every edge exists: broadcasting a product over P costs more than a difference)."""
        if self._box_full:
            return None
        if dtype not in self._weights:
            self._weights[dtype] = tuple(torch.as_tensor(self._edges[k][:, :, None], dtype=dtype, device=self._device)
                                         for k in ("h", "v"))
        return self._weights[dtype]

    def _to_box(self, X):
        """(N, P) -> (box rows, box cols, P), 0 at invalid pixels."""
        if self._box_full:
            return X.reshape(self.box_shape + X.shape[1:])
        out = X.new_zeros((self.box_shape[0] * self.box_shape[1],) + X.shape[1:])
        out[self._box_index] = X
        return out.reshape(self.box_shape + X.shape[1:])

    def _from_box(self, B):
        """Inverse of :meth:`_to_box` on the valid pixels: (box rows, box cols, P) -> (N, P)."""
        flat = B.reshape((-1,) + B.shape[2:])
        return flat if self._box_full else flat[self._box_index]

    def diff(self, A, out=None):
        """(D_h A, D_v A), each (N, P); written into ``out`` (2, N, P) when given."""
        X = self._to_box(A)
        direct = out is not None and self._box_full          # then out's halves are the box layout's memory
        dh, dv = (out[0].view(X.shape), out[1].view(X.shape)) if direct else (torch.empty_like(X),
                                                                              torch.empty_like(X))
        dh[:, -1] = 0.0
        dv[-1] = 0.0
        torch.sub(X[:, 1:], X[:, :-1], out=dh[:, :-1])
        torch.sub(X[1:], X[:-1], out=dv[:-1])
        weights = self._edge_weights(A.dtype)
        if weights is not None:
            dh[:, :-1] *= weights[0]
            dv[:-1] *= weights[1]
        dh, dv = self._from_box(dh), self._from_box(dv)
        if out is not None and not direct:
            out[0], out[1] = dh, dv
        return (out[0], out[1]) if out is not None else (dh, dv)

    def diff_adjoint(self, Uh, Uv, add_to=None):
        """D_h^T Uh + D_v^T Uv for Uh, Uv (N, P): (D_h^T U)_n = u_left(n) - u_n (where the edges exist); plus
        ``add_to`` (N, P) when given, a tensor the caller gives away (the sum is accumulated onto it)."""
        uh, uv = self._to_box(Uh)[:, :-1], self._to_box(Uv)[:-1]          # the values on the edges
        weights = self._edge_weights(Uh.dtype)
        if weights is not None:
            uh, uv = uh * weights[0], uv * weights[1]
        out = (torch.zeros(self.box_shape + Uh.shape[1:], dtype=Uh.dtype, device=Uh.device) if add_to is None
               else self._to_box(add_to))
        out[:, 1:] += uh
        out[:, :-1] -= uh
        out[1:] += uv
        out[:-1] -= uv
        return self._from_box(out)

    def laplacian(self, A):
        """D^T D A = D_h^T D_h A + D_v^T D_v A."""
        return self.diff_adjoint(*self.diff(A))

    def solve_shifted(self, rhs, x0, shift=2.0, dtype=None):
        """X (N, P) with ``(shift I + D^T D) X = rhs`` (N, P), shift > 0: a number, or a tensor (P,) of one shift
        per column (then ``shift I`` is ``diag`` of it for each column; the solver of the last such tensor is kept).

        When the valid pixels fill their bounding box, D^T D is that box's grid Laplacian and
        :class:`.laplacian.ShiftedLaplacianSolver` solves exactly (``x0`` is not needed), in ``dtype`` (default
        rhs's; the result is in rhs's: float32 halves the cost of the transforms' products, for a relative
        round-off of 1e-6 to 1e-5 instead of 1e-15). Otherwise conjugate gradients from ``x0``, preconditioned by
        that exact solve on the box in rhs's dtype (whose Laplacian differs only at the pixels next to invalid
        ones), or unpreconditioned when the box is larger than :data:`_DCT_MAX_SIDES` (the dense transforms cost
        O(rows + cols) per pixel).
        """
        if sum(self.box_shape) > _DCT_MAX_SIDES:
            return _pcg(lambda X: shift * X + self.laplacian(X), lambda R: R, rhs, x0)
        dtype = rhs.dtype if dtype is None or not self._box_full else dtype
        if torch.is_tensor(shift):
            if self._box_solvers.get("per column", (None,))[0] is not shift:       # the last such shift is kept
                self._box_solvers["per column"] = shift, ShiftedLaplacianSolver(*self.box_shape, shift, dtype,
                                                                                rhs.device)
            box_solve = self._box_solvers["per column"][1]
        else:
            key = (float(shift), dtype)
            if key not in self._box_solvers:
                self._box_solvers[key] = ShiftedLaplacianSolver(*self.box_shape, shift, dtype, rhs.device)
            box_solve = self._box_solvers[key]

        def precondition(R):
            """The box solve, its input and output converted and laid out in one copy each."""
            box = box_solve(_dense(self._to_box(R).permute(2, 0, 1), dtype))
            return self._from_box(_dense(box.permute(1, 2, 0), R.dtype))

        if self._box_full:
            return precondition(rhs)
        return _pcg(lambda X: shift * X + self.laplacian(X), precondition, rhs, x0)

    def tv(self, A, kind="anisotropic"):
        """TV(A) of the chosen kind (see the module docstring), a scalar tensor."""
        return _tv_from_diff(*self.diff(A), kind)


def _dense(X, dtype):
    """A contiguous copy of X in ``dtype`` (one pass, whatever X's strides)."""
    return torch.empty(X.shape, dtype=dtype, device=X.device).copy_(X)


#: the spatial terms the A-step solves: the TV kinds a user picks, and PLMM's quadratic smoothness.
SMOOTHNESS = TV_KINDS + ("quadratic",)


def _check_tv(kind):
    if kind not in SMOOTHNESS:
        raise DeepGUError("unknown TV kind %r; choose one of %s" % (kind, ", ".join(SMOOTHNESS)))


def _tv_from_diff(dh, dv, kind):
    _check_tv(kind)
    if kind == "anisotropic":
        return dh.abs().sum() + dv.abs().sum()
    if kind == "group":
        return dh.norm(dim=1).sum() + dv.norm(dim=1).sum()
    if kind == "quadratic":
        return 0.5 * ((dh * dh).sum() + (dv * dv).sum())
    return torch.sqrt(dh * dh + dv * dv).sum()


def _shrink(V, t, kind):
    """Proximal operator of t * TV-norm of the chosen kind (or the quadratic) on the differences (2, N, P)."""
    if kind == "anisotropic":
        return F.softshrink(V, t)                               # soft thresholding: V - clamp(V, -t, t)
    if kind == "quadratic":
        return V / (1.0 + t)
    if kind == "group":
        magnitude = V.norm(dim=2, keepdim=True)
    else:
        magnitude = V.pow(2).sum(0, keepdim=True).sqrt()
    return V * torch.clamp(1.0 - t / magnitude.clamp(min=1e-300), min=0.0)


def _pcg(apply, precondition, rhs, x0, tol=_CG_TOL, max_iter=_CG_MAX_ITER, relative_to_start=False):
    """Preconditioned conjugate gradients for the SPD operator ``apply`` (SPD ``precondition``), warm-started at x0.

    Stops when ``||rhs - apply(x)|| <= tol ||rhs||`` (``relative_to_start``: ``<= tol ||rhs - apply(x0)||``, a
    reduction of the warm start's residual, which a good warm start cannot satisfy without moving) or after
    ``max_iter`` iterations.
    """
    x = x0.clone()
    r = rhs - apply(x)
    z = precondition(r)
    p = z.clone()
    rz = (r * z).sum()
    stop = tol * tol * ((r * r) if relative_to_start else (rhs * rhs)).sum()
    for _ in range(max_iter):
        if (r * r).sum() <= stop:
            break
        ap = apply(p)
        alpha = rz / (p * ap).sum()
        x += alpha * p
        r -= alpha * ap
        z = precondition(r)
        rz_new = (r * z).sum()
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x


# --------------------------------------------------------------------------- A-step


def abundance_objective(G, b, yy, A, grid, lambda_a, tv="anisotropic"):
    """1/2 sum_n ||y_n - M_n a_n||^2 + lambda_A TV(A) from G = M^T M, b = M^T y, yy = y^T y.

    Returns (total, data, tv) as Python floats.
    """
    data = 0.5 * (yy - 2.0 * (b * A).sum(1) + torch.einsum("np,npq,nq->n", A, G, A)).sum()
    tv_val = grid.tv(A, tv) if lambda_a > 0 else A.new_zeros(())
    return float(data + lambda_a * tv_val), float(data), float(tv_val)


def _initial_rho(G, lambda_a):
    """A penalty on the scale of the data term's curvature (mean Gram diagonal), at least lambda_A."""
    return max(float(torch.diagonal(G, dim1=1, dim2=2).mean()), lambda_a, 1e-12)


@dataclass
class AdmmState:
    """ADMM's split variables, scaled duals and penalty, to warm-start the next A-step.

    Z (4, N, P): the copies (B, C, U_h, U_v) of K A = (A, A, D_h A, D_v A) (module docstring);
    W (4, N, P) their scaled duals; rho a float. Consecutive A-steps of DeepGU differ only by
    the small change of the M_n, so resuming from the previous duals saves most of the
    iterations that a start from zero duals spends.
    """

    Z: torch.Tensor
    W: torch.Tensor
    rho: float

    @property
    def abundances(self):
        """The simplex copy C (N, P): the A-step's abundances."""
        return self.Z[1]


def astep(G, b, grid, lambda_a, A_init=None, tv="anisotropic", tol=1e-3, max_iter=100, rho=None, state=None,
          solve_dtype=None):
    """Solve the A-step (module docstring) for the valid pixels of ``grid``.

    Parameters
    ----------
    G, b : (N, P, P) and (N, P): M_n^T M_n and M_n^T y_n (:func:`normal_equations`),
        N = grid.n_pixels.
    grid : PixelGrid of the valid-pixel mask.
    lambda_a : TV weight >= 0; 0 gives exact per-pixel FCLS (:func:`fcls_gram`).
    A_init : (N, P) warm start (default: FCLS).
    tv : "anisotropic", "group", "isotropic" or "quadratic" (:data:`SMOOTHNESS`).
    tol : ADMM abs = rel residual tolerance; max_iter : ADMM iteration cap.
    rho : initial ADMM penalty (default: mean diagonal of M_n^T M_n).
    state : AdmmState of a previous A-step on the same grid to resume from (then
        ``A_init`` and ``rho`` are ignored). Without it ADMM starts at A_init with the duals of
        A_init's optimality conditions (:func:`_kkt_start`).
    solve_dtype : dtype of the A-update's exact Laplacian solve (:meth:`PixelGrid.solve_shifted`; default b's).
        torch.float32 halves its cost; its relative round-off, 1e-5 at most, is far below ADMM's tolerance.

    Returns
    -------
    A : (N, P) abundances on the unit simplex.
    info : dict with ``iterations``, ``converged``, ``rho`` and ``state`` (AdmmState, or None
        for lambda_A = 0).
    """
    _check_tv(tv)
    if lambda_a < 0:
        raise DeepGUError("lambda_A must be >= 0, got %g" % lambda_a)
    if b.shape[0] != grid.n_pixels:
        raise DeepGUError("%d pixels given but the mask has %d valid pixels" % (b.shape[0], grid.n_pixels))
    if lambda_a == 0:
        return fcls_gram(G, b), {"iterations": 0, "converged": True, "rho": None, "state": None}
    if state is None:
        A = fcls_gram(G, b) if A_init is None else A_init.to(b.dtype)
        state = _kkt_start(G, b, A, grid, lambda_a, tv, rho or _initial_rho(G, lambda_a))
    return _admm(G, b, grid, lambda_a, tv, tol, max_iter, state, solve_dtype)


def guarded_astep(G, b, yy, grid, lambda_a, A, tv, tol, max_iter, state=None, solve_dtype=None):
    """:func:`astep` from A, or resuming the ADMM ``state`` of the previous A-step, kept only when it helps.

    G, b : (N, P, P), (N, P) as :func:`astep` takes them; yy (N,) the pixels' y^T y.
    Returns (A_new, info, objective) with A_new = A when the step does not lower the A-objective
    (:func:`abundance_objective`: ``objective`` is then A's), so the solvers that alternate it with other
    descent steps (DeepGU, :mod:`.variability_models`) never raise their cost. ``info["accepted"]`` says which;
    ``info["state"]`` is kept either way: an A-step stopped by its iteration cap before its result beat A resumes
    next time where it stopped, instead of starting again from A.
    """
    A_new, info = astep(G, b, grid, lambda_a, A_init=A, tv=tv, tol=tol, max_iter=max_iter, state=state,
                        solve_dtype=solve_dtype)
    before = abundance_objective(G, b, yy, A, grid, lambda_a, tv)
    after = abundance_objective(G, b, yy, A_new, grid, lambda_a, tv)
    info["accepted"] = after[0] <= before[0]
    return (A_new, info, after) if info["accepted"] else (A, info, before)


def _kkt_start(G, b, A, grid, lambda_a, tv, rho):
    """ADMM state at ``A`` with the duals its optimality conditions ask for.

    Copies Z = K A; scaled duals W_B = (G_n a_n - b_n) / rho (the data term's gradient), W_C = -W_B (the
    simplex's normal-cone element that cancels it), W_U = the TV norm's subgradient at D A times
    lambda_A / rho. Every copy's update is then at its fixed point, and for an A that is optimal at
    lambda_A -> 0 (FCLS) ADMM has only the TV's pull left to resolve, instead of first
    rebuilding the data term's multipliers from zero.
    """
    Z = _k(A, grid)
    grad = (torch.einsum("npq,nq->np", G, A) - b) / rho
    W = torch.stack((grad, -grad) + tuple(lambda_a / rho * _subgradient(Z[2:], tv)))
    return AdmmState(Z, W, rho)


def _subgradient(V, kind):
    """An element of the subdifferential of the TV norm (or the quadratic's gradient) at the differences V (2, N, P)."""
    if kind == "anisotropic":
        return torch.sign(V)
    if kind == "quadratic":
        return V                                                # the gradient
    magnitude = V.norm(dim=2, keepdim=True) if kind == "group" else V.pow(2).sum(0, keepdim=True).sqrt()
    return V / magnitude.clamp(min=1e-300) * (magnitude > 0)


def _k(A, grid, out=None):
    """K A = (A, A, D_h A, D_v A), (4, N, P) (written into ``out`` when given)."""
    out = A.new_empty((4,) + A.shape) if out is None else out
    out[0] = A
    out[1] = A
    grid.diff(A, out=out[2:])
    return out


def _k_adjoint(X, grid):
    """K^T X = X_B + X_C + D_h^T X_h + D_v^T X_v for X (4, N, P)."""
    return grid.diff_adjoint(X[2], X[3], add_to=X[0] + X[1])


def _data_inverses(G, rho):
    """(G_n + rho I)^{-1} of every pixel, pixels last: (P, P, N) (the layout :func:`_apply_inverses` reads)."""
    eye = torch.eye(G.shape[1], dtype=G.dtype, device=G.device)
    return torch.linalg.inv(G + rho * eye).permute(1, 2, 0).contiguous()


def _apply_inverses(inverses, v, out):
    """``out_n = inverses_n v_n`` into ``out`` (N, P), for v (N, P): P multiply-adds over columns of N pixels (a
    batched product of N matrices of P x P costs several times more)."""
    columns = v.T.contiguous()
    total = inverses[:, 0] * columns[0]                          # (P, N)
    for q in range(1, columns.shape[0]):
        total.addcmul_(inverses[:, q], columns[q])
    out.copy_(total.T)


def _admm(G, b, grid, lambda_a, tv, tol, max_iter, state, solve_dtype=None):
    """ADMM from ``state`` (left unchanged); returns (C, info).

    Over-relaxed (Boyd 3.4.3, alpha = :data:`_RELAXATION`): the copies are updated from
    ``H = alpha K A + (1 - alpha) Z`` instead of K A, and ``W <- W + H - Z``. K^T Z and K^T W are
    carried between iterations: the A-update's right-hand side is K^T (Z - W), the dual residual
    ``rho K^T (Z - Z_prev)``. Z, W, K A and H + W live in four (4, N, P) arrays updated in place.
    """
    Z, W, rho = state.Z.clone(), state.W.clone(), state.rho
    n, p = b.shape
    sqrt_dim_r = math.sqrt(p * (2 * n + grid.n_edges))
    sqrt_dim_a = math.sqrt(p * n)
    inverses = _data_inverses(G, rho)
    A = Z[1]
    KA, V = torch.empty_like(Z), torch.empty_like(Z)
    KTZ, KTW = _k_adjoint(Z, grid), _k_adjoint(W, grid)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):      # noqa: B007 (the count is returned)
        A = grid.solve_shifted(KTZ - KTW, A, dtype=solve_dtype)
        _k(A, grid, out=KA)
        torch.lerp(Z, KA, _RELAXATION, out=V).add_(W)            # H + W
        _apply_inverses(inverses, torch.add(b, V[0], alpha=rho), Z[0])
        Z[1] = project_simplex(V[1])
        Z[2:] = _shrink(V[2:], lambda_a / rho, tv)
        W, V = V.sub_(Z), W                                      # W + H - Z (the old W's memory is the next H + W)
        KTZ_prev = KTZ
        KTZ, KTW = _k_adjoint(Z, grid), _k_adjoint(W, grid)
        ka, zn = float(torch.linalg.vector_norm(KA)), float(torch.linalg.vector_norm(Z))
        r_norm = float(torch.linalg.vector_norm(KA.sub_(Z)))
        s_norm = rho * float(torch.linalg.vector_norm(KTZ_prev.sub_(KTZ)))
        if (r_norm <= sqrt_dim_r * tol + tol * max(ka, zn)
                and s_norm <= sqrt_dim_a * tol + tol * rho * float(torch.linalg.vector_norm(KTW))):
            converged = True
            break
        if r_norm > _RHO_BALANCE * s_norm or s_norm > _RHO_BALANCE * r_norm:
            factor = min(max(math.sqrt(r_norm / max(s_norm, 1e-300)), 1.0 / _RHO_FACTOR), _RHO_FACTOR)
            rho *= factor
            W /= factor
            KTW /= factor
            inverses = _data_inverses(G, rho)
    return Z[1], {"iterations": it, "converged": converged, "rho": rho, "state": AdmmState(Z, W, rho)}
