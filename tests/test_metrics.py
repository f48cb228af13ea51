"""Metrics of eq. 14-15 against hand-computed values and brute force."""

import itertools
import json

import numpy as np
import pytest

from core.errors import DeepGUError
from core.jobs import metrics as metrics_job
from core.evaluation.metrics import MetricsAccumulator, evaluate, match_materials, rmse, sam
from core.files.raster_io import georeference, write_raster


def _simplex(P, N, seed):
    return np.random.default_rng(seed).dirichlet(np.ones(P) * 0.5, size=N).T


def test_rmse_by_hand():
    assert rmse([[1.0, 2.0], [3.0, 4.0]], np.zeros((2, 2))) == pytest.approx(np.sqrt(30 / 4))
    assert rmse(np.ones(5, np.float32), np.ones(5)) == 0.0
    with pytest.raises(DeepGUError, match="shape"):
        rmse(np.zeros((2, 3)), np.zeros((3, 2)))


def test_sam_known_angles():
    e1, e2 = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    assert sam(e1[:, None], e2[:, None]) == pytest.approx(np.pi / 2)
    assert sam(3 * e1[:, None], e1[:, None]) == pytest.approx(0.0, abs=1e-7)   # scale does not matter
    # Two materials at 45 and 60 degrees in pixel 0, 0 and 90 degrees in pixel 1:
    # sum over materials, mean over pixels -> ((pi/4 + pi/3) + (0 + pi/2)) / 2.
    M_true = np.zeros((3, 2, 2))
    M_true[:, 0, :] = e1[:, None]
    M_true[:, 1, :] = e1[:, None]
    M = np.zeros((3, 2, 2))
    M[:, 0, 0] = [1, 1, 0]
    M[:, 1, 0] = [1, np.sqrt(3), 0]
    M[:, 0, 1] = [2, 0, 0]
    M[:, 1, 1] = [0, 0, 5]
    assert sam(M, M_true) == pytest.approx((np.pi / 4 + np.pi / 3 + np.pi / 2) / 2)


def test_sam_brute_force_and_broadcast():
    rng = np.random.default_rng(1)
    M, M_true = rng.random((6, 3, 4, 5)), rng.random((6, 3, 4, 5))
    expected = np.mean([sum(np.arccos(M[:, p, r, c] @ M_true[:, p, r, c]
                                      / np.linalg.norm(M[:, p, r, c]) / np.linalg.norm(M_true[:, p, r, c]))
                            for p in range(3)) for r in range(4) for c in range(5)])
    assert sam(M, M_true) == pytest.approx(expected)
    constant = M_true[:, :, 0, 0]
    tiled = np.repeat(constant[:, :, None], 20, axis=2)
    assert sam(M.reshape(6, 3, 20), constant) == pytest.approx(sam(M.reshape(6, 3, 20), tiled))


def test_match_materials_recovers_shuffle():
    A_true = _simplex(4, 300, seed=2)
    shuffle = np.array([2, 0, 3, 1])
    A = A_true[shuffle] + np.random.default_rng(3).normal(0, 0.02, (4, 300))
    perm = match_materials(A, A_true)
    np.testing.assert_array_equal(perm, np.argsort(shuffle))
    assert rmse(A[perm], A_true) < 0.03


def test_match_materials_brute_force_optimum():
    rng = np.random.default_rng(4)
    A, A_true = _simplex(4, 50, 5), _simplex(4, 50, 6)          # unrelated: a genuine assignment problem
    best = min(itertools.permutations(range(4)),
               key=lambda p: sum(rmse(A[p[j]], A_true[j]) for j in range(4)))
    np.testing.assert_array_equal(match_materials(A, A_true), best)
    # Spectra decide when given: identical abundances, distinguishable endmembers.
    M_true = rng.random((10, 4))
    shuffle = [3, 1, 0, 2]
    perm = match_materials(np.full((4, 50), 0.25), np.full((4, 50), 0.25), M_true[:, shuffle], M_true)
    np.testing.assert_array_equal(np.array(shuffle)[perm], np.arange(4))


def test_match_materials_count_mismatch():
    with pytest.raises(DeepGUError, match="estimated 3 materials but the truth has 4"):
        match_materials(_simplex(3, 10, 0), _simplex(4, 10, 0))


def test_evaluate_shuffled_truth_scores_zero():
    rng = np.random.default_rng(7)
    rows, cols, L, P = 6, 5, 8, 3
    A_true = _simplex(P, rows * cols, 8).reshape(P, rows, cols)
    M_true = rng.random((L, P, rows, cols)) + 0.1
    Y = np.einsum("lpxy,pxy->lxy", M_true, A_true)
    shuffle = [1, 2, 0]
    scores = evaluate(A_true[shuffle], A_true, M_true[:, shuffle], M_true, Y, Y + 0.01)
    np.testing.assert_array_equal(np.array(shuffle)[scores["perm"]], np.arange(P))
    assert scores["RMSE_A"] == pytest.approx(0.0, abs=1e-12)
    assert scores["RMSE_M"] == pytest.approx(0.0, abs=1e-12)
    assert scores["SAM_M"] == pytest.approx(0.0, abs=1e-6)
    assert scores["RMSE_Y"] == pytest.approx(0.01)
    assert set(evaluate(A_true, A_true)) == {"RMSE_A", "perm"}


def test_evaluate_brute_force_values_with_constant_endmembers():
    rng = np.random.default_rng(9)
    A_true, A = _simplex(2, 12, 10), _simplex(2, 12, 11)
    M_true, M = rng.random((4, 2, 12)), rng.random((4, 2))
    perm = match_materials(A, A_true, M, M_true)               # the spectra decide the matching
    scores = evaluate(A, A_true, M, M_true)
    np.testing.assert_array_equal(scores["perm"], perm)
    assert scores["RMSE_A"] == pytest.approx(np.sqrt(np.mean((A[perm] - A_true) ** 2)))
    assert scores["RMSE_M"] == pytest.approx(np.sqrt(np.mean((M[:, perm, None] - M_true) ** 2)))
    assert scores["SAM_M"] == pytest.approx(sam(np.repeat(M[:, perm, None], 12, axis=2), M_true))


def test_evaluate_mask_restricts_every_metric():
    rng = np.random.default_rng(12)
    rows, cols, L, P = 4, 6, 5, 2
    A_true, A = _simplex(P, 24, 13).reshape(P, rows, cols), _simplex(P, 24, 14).reshape(P, rows, cols)
    M_true, M = rng.random((L, P, rows, cols)), rng.random((L, P, rows, cols))
    Y, Y_hat = rng.random((L, rows, cols)), rng.random((L, rows, cols))
    mask = rng.random((rows, cols)) > 0.4
    for X in (A, M, Y_hat):
        X[..., ~mask] = np.nan                                   # garbage outside the mask is ignored
    scores = evaluate(A, A_true, M, M_true, Y, Y_hat, mask=mask)
    subset = evaluate(A[:, mask], A_true[:, mask], M[:, :, mask], M_true[:, :, mask], Y[:, mask], Y_hat[:, mask])
    for key in ("RMSE_A", "RMSE_M", "SAM_M", "RMSE_Y"):
        assert np.isfinite(scores[key]) and scores[key] == pytest.approx(subset[key])
    flat_mask = evaluate(A.reshape(P, -1), A_true.reshape(P, -1), mask=mask.ravel())
    assert flat_mask["RMSE_A"] == pytest.approx(evaluate(A[:, mask], A_true[:, mask])["RMSE_A"])


@pytest.mark.parametrize("kwargs, words", [
    (dict(mask=np.ones(24, bool)), "NaN"),
    (dict(mask=np.zeros(24, bool)), "no valid pixel"),
    (dict(mask=np.ones(7, bool)), "mask"),
    (dict(mask=np.ones(24, bool), M=np.ones((3, 2))), "together"),
])
def test_evaluate_bad_input(kwargs, words):
    A = _simplex(2, 24, 0)
    A[0, 3] = np.nan
    with pytest.raises(DeepGUError, match=words):
        evaluate(A, _simplex(2, 24, 1), **kwargs)


@pytest.mark.parametrize("with_endmembers", [False, True])
def test_accumulator_over_blocks_equals_evaluate(with_endmembers):
    """Streaming scores, blocks of odd sizes, equal the in-memory evaluate() (the brute-force reference)."""
    rng = np.random.default_rng(8)
    P, L, N = 4, 7, 301
    A_true = rng.dirichlet(np.ones(P), N).T
    perm = np.array([2, 0, 3, 1])
    A = np.empty_like(A_true)
    A[perm] = A_true + 0.05 * rng.standard_normal((P, N))     # estimate: shuffled, noisy truth
    M_true = rng.uniform(0.1, 1.0, (L, P, N))
    M = np.empty_like(M_true)
    M[:, perm] = M_true * rng.uniform(0.9, 1.1, (L, P, N))
    kwargs = dict(M=M, M_true=M_true) if with_endmembers else {}
    expected = evaluate(A, A_true, **kwargs)
    accumulator = MetricsAccumulator(P, with_endmembers)
    for start, stop in [(0, 1), (1, 100), (100, 101), (101, N)]:
        block = slice(start, stop)
        accumulator.update(A[:, block], A_true[:, block],
                           *((M[:, :, block], M_true[:, :, block]) if with_endmembers else ()))
    got = accumulator.result()
    np.testing.assert_array_equal(got["perm"], expected["perm"])
    np.testing.assert_array_equal(got["perm"], perm)
    for key in ("RMSE_A", "RMSE_M", "SAM_M") if with_endmembers else ("RMSE_A",):
        assert got[key] == pytest.approx(expected[key], rel=1e-10)
    with pytest.raises(DeepGUError, match="every update"):
        accumulator.update(A, A_true, *(() if with_endmembers else (M, M_true)))


def test_metrics_job_streams_like_evaluate(tmp_path):
    """The raster job with a budget of a few rows per strip gives evaluate()'s numbers on the valid pixels."""
    rng = np.random.default_rng(9)
    P, L, rows, cols = 3, 5, 23, 17
    A_true = rng.dirichlet(np.ones(P), (rows, cols)).transpose(2, 0, 1).astype(np.float32)
    A = (A_true[::-1] + 0.03 * rng.standard_normal(A_true.shape)).astype(np.float32)
    M_true = rng.uniform(0.1, 1, (L, P, rows, cols)).astype(np.float32)
    M = (M_true[:, ::-1] * rng.uniform(0.9, 1.1, M_true.shape)).astype(np.float32)
    A[:, 4, 5] = np.nan                                      # nodata in the estimate only
    paths = {name: str(tmp_path / (name + ".tif")) for name in ("A", "T", "M", "MT")}
    like = georeference(rows, cols)
    for name, data in (("A", A), ("T", A_true), ("M", M.transpose(1, 0, 2, 3).reshape(P * L, rows, cols)),
                       ("MT", M_true.transpose(1, 0, 2, 3).reshape(P * L, rows, cols))):
        write_raster(paths[name], data, like)
    report = str(tmp_path / "report.json")
    got = metrics_job.run(paths["A"], paths["T"], paths["M"], paths["MT"], report=report, memory_mb=0.005)
    mask = np.isfinite(A).all(axis=0)
    expected = evaluate(A, A_true, M=M, M_true=M_true, mask=mask)
    assert got["pixels"] == rows * cols - 1
    assert got["perm"] == expected["perm"].tolist() == [2, 1, 0]
    for key in ("RMSE_A", "RMSE_M", "SAM_M"):
        assert got[key] == pytest.approx(expected[key], rel=1e-6)
    assert json.load(open(report))["RMSE_A"] == got["RMSE_A"]
