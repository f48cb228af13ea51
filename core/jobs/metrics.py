"""Score estimated abundances (and per-pixel endmembers) against a reference (paper eq. 14-15), streamed."""

import json

import numpy as np

from ..files.atomic import atomic_output
from ..defaults import METRICS
from ..errors import DeepGUError
from ..feedback import ensure
from ..checks.grid import check_same_grid
from ..evaluation.metrics import MetricsAccumulator
from ..checks.paths import check_paths
from ..files.raster_io import block_rows, iter_blocks, open_raster, read_block
from ..validation import MAX_MEMORY_MB, finite


def _open_matching(path, like, name):
    """The raster ``path`` of parameter ``name``, on the grid of ``like`` (ESTIMATE) unless that is None."""
    info = open_raster(path, name)
    if like is not None:
        check_same_grid(info, like)
    return info


def _endmember_block(data, n_materials, valid):
    """``(P*L, rows, cols)`` material-major block -> ``(L, P, n_valid)``."""
    L = data.shape[0] // n_materials
    return data.reshape(n_materials, L, -1)[:, :, valid.ravel()].transpose(1, 0, 2)


def accumulate(est, ref, m_est=None, m_ref=None, constant_endmembers=None, memory_mb=METRICS["MEMORY_MB"],
               feedback=None):
    """Stream rasters on one grid (:class:`core.raster_io.RasterInfo` s, windows of rasters allowed) into a
    :class:`core.metrics.MetricsAccumulator`, in strips of at most ``memory_mb``, over the pixels valid in all:
    estimated and reference abundances ``est``, ``ref`` (P bands each) and, optionally, per-pixel endmembers
    ``m_est``, ``m_ref`` (P x L bands, material-major) or, for a method whose endmembers are the same at every
    pixel, ``constant_endmembers`` (L, P) with ``m_ref``. Returns the accumulator (no pixel: empty)."""
    feedback = ensure(feedback)
    P = est.n_bands
    rasters = [r for r in (est, ref, m_est, m_ref) if r is not None]
    L = m_ref.n_bands // P if m_ref is not None else 0
    accumulator = MetricsAccumulator(P, with_endmembers=m_ref is not None)
    # float32 blocks as read + their float64 copies, and the accumulator's (P, P) and (L, P) temporaries
    bytes_per_pixel = 12 * (sum(r.n_bands for r in rasters) + (L * P if m_est is None else 0)) + 8 * P * (P + L)
    for row0, n_rows in iter_blocks(est, block_rows(est, memory_mb, bytes_per_pixel)):
        feedback.check_canceled()
        blocks = [read_block(r, row0, n_rows) for r in rasters]
        valid = blocks[0][1].copy()
        for _, v in blocks[1:]:
            valid &= v
        if valid.any():
            A, A_true = (data.reshape(P, -1)[:, valid.ravel()] for data, _ in blocks[:2])
            M = M_true = None
            if m_ref is not None:
                M_true = _endmember_block(blocks[-1][0], P, valid)
                M = (_endmember_block(blocks[2][0], P, valid) if m_est is not None else
                     np.broadcast_to(np.asarray(constant_endmembers)[:, :, None], M_true.shape))
            accumulator.update(A, A_true, M, M_true)
        feedback.set_progress(100.0 * (row0 + n_rows) / est.rows)
    return accumulator


def run(estimate, reference, estimate_endmembers=None, reference_endmembers=None, report=None,
        memory_mb=METRICS["MEMORY_MB"],
        feedback=None):
    """Compute RMSE_A (and RMSE_M, SAM_M when both endmember rasters are given) over pixels valid in all inputs.

    Materials are matched as :func:`core.evaluation.metrics.match_materials` does (abundance RMSE, or
    the mean spectral angle with endmembers). The rasters are read in strips of at most
    ``memory_mb``. Returns the metrics dict; writes it as JSON to ``report`` when given.
    """
    feedback = ensure(feedback)
    check_paths({"ESTIMATE": estimate, "REFERENCE": reference, "ESTIMATE_ENDMEMBERS": estimate_endmembers,
                 "REFERENCE_ENDMEMBERS": reference_endmembers}, {"OUTPUT_REPORT": report})
    memory_mb = finite("MEMORY_MB", memory_mb, 0, MAX_MEMORY_MB, low_open=True)
    est = _open_matching(estimate, None, "ESTIMATE")
    ref = _open_matching(reference, est, "REFERENCE")
    P = est.n_bands
    if ref.n_bands != P:
        raise DeepGUError("the estimate has %d materials but the reference has %d" % (P, ref.n_bands))
    if (estimate_endmembers is None) != (reference_endmembers is None):
        raise DeepGUError("give both endmember rasters (estimate and reference) or neither")
    m_est = m_ref = None
    if estimate_endmembers is not None:
        m_est = _open_matching(estimate_endmembers, est, "ESTIMATE_ENDMEMBERS")
        m_ref = _open_matching(reference_endmembers, est, "REFERENCE_ENDMEMBERS")
        if m_est.n_bands != m_ref.n_bands:
            raise DeepGUError("the endmember rasters have %d and %d bands" % (m_est.n_bands, m_ref.n_bands))
        if m_est.n_bands % P:
            raise DeepGUError("the estimated endmembers have %d bands, not a multiple of the %d materials"
                              % (m_est.n_bands, P))
    accumulator = accumulate(est, ref, m_est, m_ref, memory_mb=memory_mb, feedback=feedback)
    if accumulator.n_pixels == 0:
        raise DeepGUError("no pixel is valid in all inputs")
    metrics = accumulator.result()
    metrics = {key: (value.tolist() if hasattr(value, "tolist") else value) for key, value in metrics.items()}
    metrics["pixels"] = accumulator.n_pixels
    if report:
        with atomic_output(report, what="OUTPUT_REPORT") as f:
            json.dump(metrics, f, indent=2)
    return metrics
