"""Score estimated abundances (and per-pixel endmembers) against a reference (paper eq. 14-15)."""

import json

from ..atomic import atomic_output
from ..errors import DeepGUError
from ..metrics import evaluate
from ..raster_io import read_all


def _read_matching(path, like_shape, what):
    data, valid, info = read_all(path)
    if like_shape is not None and data.shape[1:] != like_shape:
        raise DeepGUError("%s is %d x %d pixels but the estimate is %d x %d"
                          % (what, data.shape[1], data.shape[2], like_shape[0], like_shape[1]))
    return data, valid, info


def _endmember_tensor(data, n_materials, what):
    """``(P*L, rows, cols)`` material-major raster -> ``(L, P, rows*cols)``."""
    if data.shape[0] % n_materials:
        raise DeepGUError("%s has %d bands, not a multiple of the %d materials" % (what, data.shape[0], n_materials))
    L = data.shape[0] // n_materials
    return data.reshape(n_materials, L, -1).transpose(1, 0, 2)


def run(estimate, reference, estimate_endmembers=None, reference_endmembers=None, report=None):
    """Compute RMSE_A (and RMSE_M, SAM_M when both endmember rasters are given) over pixels valid in all inputs.

    Materials are matched by the permutation that minimises the abundance RMSE.
    Returns the metrics dict; writes it as JSON to ``report`` when given.
    """
    A, valid, _ = _read_matching(estimate, None, "the estimate")
    A_true, valid_true, _ = _read_matching(reference, A.shape[1:], "the reference")
    if A.shape[0] != A_true.shape[0]:
        raise DeepGUError("the estimate has %d materials but the reference has %d" % (A.shape[0], A_true.shape[0]))
    mask = valid & valid_true
    M = M_true = None
    if (estimate_endmembers is None) != (reference_endmembers is None):
        raise DeepGUError("give both endmember rasters (estimate and reference) or neither")
    if estimate_endmembers is not None:
        M_est, valid_m, _ = _read_matching(estimate_endmembers, A.shape[1:], "the estimated endmembers")
        M_ref, valid_mt, _ = _read_matching(reference_endmembers, A.shape[1:], "the reference endmembers")
        if M_est.shape != M_ref.shape:
            raise DeepGUError("the endmember rasters have %d and %d bands" % (M_est.shape[0], M_ref.shape[0]))
        M = _endmember_tensor(M_est, A.shape[0], "the estimated endmembers")
        M_true = _endmember_tensor(M_ref, A.shape[0], "the reference endmembers")
        mask &= valid_m & valid_mt
    if not mask.any():
        raise DeepGUError("no pixel is valid in all inputs")
    P = A.shape[0]
    metrics = evaluate(A.reshape(P, -1), A_true.reshape(P, -1), M=M, M_true=M_true, mask=mask.ravel())
    metrics = {key: (value.tolist() if hasattr(value, "tolist") else value) for key, value in metrics.items()}
    metrics["pixels"] = int(mask.sum())
    if report:
        with atomic_output(report) as f:
            json.dump(metrics, f, indent=2)
    return metrics
