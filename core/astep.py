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
- ``tv="isotropic"``: sum over pixels and materials of sqrt((D_h A)^2 + (D_v A)^2).

``lambda_A = 0`` is per-pixel FCLS, solved exactly by :func:`fcls_gram` (the support
enumeration of :mod:`core.fcls`).
Otherwise ADMM (Boyd et al. 2011; the splitting of ELMM, Drumetz et al. 2016)
with A as the x-variable and three copies ``B = A`` (data), ``U = (D_h A, D_v A)``
(TV), ``C = A`` (simplex); with scaled duals W_B, W_U, W_C and penalty rho:

    A <- (2 I + D^T D)^{-1} [B - W_B + D^T (U - W_U) + C - W_C]
         (D^T D is the graph Laplacian of the valid pixels, same for every
         material; its spectrum is in [0, 8], so conjugate gradients on the
         SPD matrix 2 I + D^T D, condition number <= 5, converges in a few steps)
    b_n <- (M_n^T M_n + rho I)^{-1} (M_n^T y_n + rho (a_n + w_Bn))   per pixel, inverse
         computed once per rho
    U <- shrink(D A + W_U, lambda_A / rho)        soft / group / isotropic thresholding
    c_n <- proj_simplex(a_n + w_Cn)                per pixel (sort-based, Condat 2016)
    W <- W + (K A - (B, U, C)),  K = [I; D; I]

Every step is pixel-separable or the one well-conditioned Laplacian solve.
Stopping (Boyd 3.3.1, abs = rel = tol): ``||r|| <= sqrt(dim r) tol + tol max(||K A||, ||z||)`` and
``||s|| <= sqrt(dim A) tol + tol ||rho K^T W||`` with r = K A - z,
s = rho K^T (z - z_prev); rho is balanced (Boyd 3.4.1: x2 or /2 when one residual
exceeds 10 times the other). The returned abundances are ``C``, which lie exactly
on the simplex.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from .defaults import TV_KINDS
from .errors import DeepGUError
from .fcls import SharedGram, best_on_supports, check_materials, kkt_matrices, pixels_per_chunk, supports

_CG_TOL = 1e-10
_CG_MAX_ITER = 50
_RHO_BALANCE = 10.0
_RHO_FACTOR = 2.0


# --------------------------------------------------------------------------- simplex


def project_simplex(V):
    """Euclidean projection of every row of ``V`` (N, P) onto the unit simplex.

    Sort-based (Held et al. 1974, Duchi et al. 2008, Condat 2016): with ``u`` the
    row sorted decreasingly, ``k = max{j : u_j - (sum_{i<=j} u_i - 1) / j > 0}`` and
    ``theta = (sum_{i<=k} u_i - 1) / k``, the projection is ``max(v - theta, 0)``.
    """
    u, _ = torch.sort(V, dim=1, descending=True)
    css = torch.cumsum(u, dim=1) - 1.0
    j = torch.arange(1, V.shape[1] + 1, dtype=V.dtype, device=V.device)
    k = ((u - css / j) > 0).sum(dim=1, keepdim=True).clamp(min=1)
    theta = css.gather(1, k - 1) / k.to(V.dtype)
    return torch.clamp(V - theta, min=0.0)


# --------------------------------------------------------------------------- FCLS


def normal_equations(M, Y):
    """G = M^T M (N, P, P) and b = M^T y (N, P) for M (N, L, P) or a shared (L, P); Y (N, L)."""
    if M.dim() == 2:
        return (M.T @ M).expand(Y.shape[0], -1, -1), Y @ M
    return torch.einsum("nlp,nlq->npq", M, M), torch.einsum("nlp,nl->np", M, Y)


def fcls_gram(G, b):
    """Exact ``argmin 1/2 a^T G_n a - b_n^T a`` over the unit simplex for every pixel.

    G (N, P, P) symmetric PSD, b (N, P) -> A (N, P). The support enumeration of
    :mod:`core.fcls` with one Gram matrix per pixel: the KKT systems
    ``[[G_SS, 1], [1^T, 0]] [a_S; mu] = [b_S; 1]`` of all supports of one size are
    solved for all pixels at once (``torch.linalg.solve_ex``; singular ones give no
    candidate) and :func:`core.fcls.best_on_supports` keeps the best feasible one.
    Pixels go in chunks (:func:`core.fcls.pixels_per_chunk`) so memory stays bounded.
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
    pseudo-inverse tables of :class:`core.fcls.SharedGram`); Y (N, L).
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
    ``diff_adjoint`` applies D_h^T, D_v^T.
    """

    def __init__(self, mask, device="cpu"):
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2:
            raise DeepGUError("the mask must be (rows, cols), got shape %s" % (mask.shape,))
        self.mask = mask
        self.n_pixels = n = int(mask.sum())
        index = np.full((mask.shape[0] + 2, mask.shape[1] + 2), n, dtype=np.int64)
        index[1:-1, 1:-1][mask] = np.arange(n)
        neighbour = {
            "right": index[1:-1, 2:], "left": index[1:-1, :-2],
            "down": index[2:, 1:-1], "up": index[:-2, 1:-1],
        }
        self._index = {}
        self._has = {}
        for name, ind in neighbour.items():
            ind = ind[mask]
            self._index[name] = torch.as_tensor(np.where(ind < n, ind, 0), device=device)
            self._has[name] = torch.as_tensor(ind < n, device=device)[:, None]
        self.n_edges = int(self._has["right"].sum() + self._has["down"].sum())
        self._weights = {}

    def _has_as(self, name, dtype):
        """The 0/1 neighbour indicator (N, 1) in ``dtype`` (cached: a float product is cheaper than a bool one)."""
        key = (name, dtype)
        if key not in self._weights:
            self._weights[key] = self._has[name].to(dtype)
        return self._weights[key]

    def _neighbour(self, X, name):
        return torch.index_select(X, 0, self._index[name])

    def _edge(self, X, name):
        """X at each pixel's ``name`` neighbour minus X, 0 where there is no such neighbour."""
        return (self._neighbour(X, name) - X).mul_(self._has_as(name, X.dtype))

    def diff(self, A):
        """(D_h A, D_v A), each (N, P)."""
        return self._edge(A, "right"), self._edge(A, "down")

    def diff_adjoint(self, Uh, Uv):
        """D_h^T Uh + D_v^T Uv for Uh, Uv (N, P): (D_h^T U)_n = u_left(n) - u_n (where the edges exist)."""
        uh, uv = Uh * self._has_as("right", Uh.dtype), Uv * self._has_as("down", Uv.dtype)
        out = self._neighbour(uh, "left").mul_(self._has_as("left", uh.dtype))
        out.addcmul_(self._neighbour(uv, "up"), self._has_as("up", uv.dtype))
        return out.sub_(uh).sub_(uv)

    def laplacian(self, A):
        """D^T D A = D_h^T D_h A + D_v^T D_v A."""
        return self.diff_adjoint(*self.diff(A))

    def tv(self, A, kind="anisotropic"):
        """TV(A) of the chosen kind (see the module docstring), a scalar tensor."""
        return _tv_from_diff(*self.diff(A), kind)


def _check_tv(kind):
    if kind not in TV_KINDS:
        raise DeepGUError("unknown TV kind %r; choose one of %s" % (kind, ", ".join(TV_KINDS)))


def _tv_from_diff(dh, dv, kind):
    _check_tv(kind)
    if kind == "anisotropic":
        return dh.abs().sum() + dv.abs().sum()
    if kind == "group":
        return dh.norm(dim=1).sum() + dv.norm(dim=1).sum()
    return torch.sqrt(dh * dh + dv * dv).sum()


def _shrink(Vh, Vv, t, kind):
    """Proximal operator of t * TV-norm of the chosen kind applied to the differences (Vh, Vv)."""
    if kind == "anisotropic":
        return (torch.sign(Vh) * torch.clamp(Vh.abs() - t, min=0.0),
                torch.sign(Vv) * torch.clamp(Vv.abs() - t, min=0.0))
    if kind == "group":
        mag_h, mag_v = Vh.norm(dim=1, keepdim=True), Vv.norm(dim=1, keepdim=True)
    else:
        mag_h = mag_v = torch.sqrt(Vh * Vh + Vv * Vv)
    return (Vh * torch.clamp(1.0 - t / mag_h.clamp(min=1e-300), min=0.0),
            Vv * torch.clamp(1.0 - t / mag_v.clamp(min=1e-300), min=0.0))


def _cg(apply, rhs, x0, tol=_CG_TOL, max_iter=_CG_MAX_ITER):
    """Conjugate gradients for the SPD operator ``apply`` (tensors of any shape), warm-started at x0."""
    x = x0.clone()
    r = rhs - apply(x)
    p = r.clone()
    rr = (r * r).sum()
    stop = tol * tol * (rhs * rhs).sum()
    for _ in range(max_iter):
        if rr <= stop:
            break
        ap = apply(p)
        alpha = rr / (p * ap).sum()
        x += alpha * p
        r -= alpha * ap
        rr_new = (r * r).sum()
        p = r + (rr_new / rr) * p
        rr = rr_new
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

    B, C, Uh, Uv, Wb, Wc, Wh, Wv (N, P) as in the module docstring; rho a float.
    Consecutive A-steps of DeepGU differ only by the small change of the M_n, so
    resuming from the previous duals saves most of the iterations that a start
    from zero duals spends.
    """

    B: torch.Tensor
    C: torch.Tensor
    Uh: torch.Tensor
    Uv: torch.Tensor
    Wb: torch.Tensor
    Wc: torch.Tensor
    Wh: torch.Tensor
    Wv: torch.Tensor
    rho: float


def astep(G, b, grid, lambda_a, A_init=None, tv="anisotropic", tol=1e-3, max_iter=100, rho=None, state=None):
    """Solve the A-step (module docstring) for the valid pixels of ``grid``.

    Parameters
    ----------
    G, b : (N, P, P) and (N, P): M_n^T M_n and M_n^T y_n (:func:`normal_equations`),
        N = grid.n_pixels.
    grid : PixelGrid of the valid-pixel mask.
    lambda_a : TV weight >= 0; 0 gives exact per-pixel FCLS (:func:`fcls_gram`).
    A_init : (N, P) warm start (default: FCLS).
    tv : "anisotropic", "group" or "isotropic".
    tol : ADMM abs = rel residual tolerance; max_iter : ADMM iteration cap.
    rho : initial ADMM penalty (default: mean diagonal of M_n^T M_n).
    state : AdmmState of a previous A-step on the same grid to resume from (then
        ``A_init`` and ``rho`` are ignored).

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
        zeros = [torch.zeros_like(A) for _ in range(4)]
        state = AdmmState(A, A, *grid.diff(A), *zeros, rho or _initial_rho(G, lambda_a))
    return _admm(G, b, grid, lambda_a, tv, tol, max_iter, state)


def _admm(G, b, grid, lambda_a, tv, tol, max_iter, state):
    """ADMM from ``state`` (left unchanged: the loop works on copies); returns (C, info)."""
    B, C, Uh, Uv, rho = state.B, state.C, state.Uh, state.Uv, state.rho
    Wb, Wc, Wh, Wv = (W.clone() for W in (state.Wb, state.Wc, state.Wh, state.Wv))   # updated in place below
    A = C                                # the other variables are rebound, never written in place (_cg copies)
    n, p = A.shape
    eye = torch.eye(p, dtype=A.dtype, device=A.device)
    sqrt_dim_r = math.sqrt(p * (2 * n + grid.n_edges))
    sqrt_dim_a = math.sqrt(p * n)
    solve_op = lambda X: 2.0 * X + grid.laplacian(X)  # noqa: E731
    inv = torch.linalg.inv(G + rho * eye)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        rhs = B - Wb + C - Wc + grid.diff_adjoint(Uh - Wh, Uv - Wv)
        A = _cg(solve_op, rhs, A)
        Dh, Dv = grid.diff(A)
        B_old, C_old, Uh_old, Uv_old = B, C, Uh, Uv
        B = torch.einsum("npq,nq->np", inv, b + rho * (A + Wb))
        Uh, Uv = _shrink(Dh + Wh, Dv + Wv, lambda_a / rho, tv)
        C = project_simplex(A + Wc)
        Rb, Rh, Rv, Rc = A - B, Dh - Uh, Dv - Uv, A - C
        Wb += Rb
        Wh += Rh
        Wv += Rv
        Wc += Rc
        r_norm = math.sqrt(sum(float((R * R).sum()) for R in (Rb, Rh, Rv, Rc)))
        s_norm = rho * float(((B - B_old) + (C - C_old)
                              + grid.diff_adjoint(Uh - Uh_old, Uv - Uv_old)).norm())
        ka = math.sqrt(2 * float((A * A).sum()) + float((Dh * Dh).sum() + (Dv * Dv).sum()))
        zn = math.sqrt(sum(float((Z * Z).sum()) for Z in (B, Uh, Uv, C)))
        ktw = rho * float((Wb + Wc + grid.diff_adjoint(Wh, Wv)).norm())
        if (r_norm <= sqrt_dim_r * tol + tol * max(ka, zn)
                and s_norm <= sqrt_dim_a * tol + tol * ktw):
            converged = True
            break
        if r_norm > _RHO_BALANCE * s_norm or s_norm > _RHO_BALANCE * r_norm:
            factor = _RHO_FACTOR if r_norm > s_norm else 1.0 / _RHO_FACTOR
            rho *= factor
            for W in (Wb, Wh, Wv, Wc):
                W /= factor
            inv = torch.linalg.inv(G + rho * eye)
    return C, {"iterations": it, "converged": converged, "rho": rho,
               "state": AdmmState(B, C, Uh, Uv, Wb, Wc, Wh, Wv, rho)}
