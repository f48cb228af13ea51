"""VCA on synthetic scenes with known pure pixels, and against a plain transcription of vca.m."""

import numpy as np
import pytest

import core.extraction.vca as vca_module
from core.errors import DeepGUError
from core.extraction.vca import vca


def scene(snr_db, L=50, P=4, N=3000, seed=0):
    """Y = M A + noise with abundances capped at 0.7 except at P known pure pixels."""
    rng = np.random.default_rng(seed)
    M = rng.random((L, P))
    A = 0.6 * rng.dirichlet(np.ones(P), N).T + 0.4 / P
    pure = rng.choice(N, P, replace=False)
    A[:, pure] = np.eye(P)
    X = M @ A
    sigma = np.sqrt(np.mean(X ** 2) / 10 ** (snr_db / 10))
    return X + sigma * rng.standard_normal(X.shape), pure


def fixed_signs(U):
    """The sign convention of core.extraction.vca: the largest-magnitude entry of each column is positive."""
    U = U.copy()
    for j in range(U.shape[1]):
        if U[np.argmax(np.abs(U[:, j])), j] < 0:
            U[:, j] = -U[:, j]
    return U


def reference_vca(R, p, seed):
    """Straight transcription of the authors' vca.m (SVD based), with Gaussian w and a pixel loop."""
    L, N = R.shape
    r_m = R.mean(axis=1, keepdims=True)
    R_o = R - r_m
    Ud = fixed_signs(np.linalg.svd(R_o @ R_o.T / N)[0][:, :p])
    x_p = Ud.T @ R_o
    P_y = np.sum(R ** 2) / N
    P_x = np.sum(x_p ** 2) / N + (r_m.T @ r_m).item()       # (1, 1): numpy 2.4 refuses float() of it
    snr = 10 * np.log10((P_x - p / L * P_y) / (P_y - P_x))
    if snr < 15 + 10 * np.log10(p):
        x = x_p[:p - 1]
        c = max(np.sqrt(np.sum(x[:, n] ** 2)) for n in range(N))
        y = np.vstack([x, c * np.ones((1, N))])
    else:
        Ud = fixed_signs(np.linalg.svd(R @ R.T / N)[0][:, :p])
        x = Ud.T @ R
        u = x.mean(axis=1)
        y = np.column_stack([x[:, n] / (x[:, n] @ u) for n in range(N)])
    rng = np.random.default_rng(seed)
    indices = []
    A = np.zeros((p, p))
    A[p - 1, 0] = 1
    for i in range(p):
        w = rng.standard_normal(p)
        f = w - A @ np.linalg.pinv(A) @ w
        f = f / np.sqrt(np.sum(f ** 2))
        best, best_value = 0, -1.0
        for n in range(N):
            value = abs(f @ y[:, n])
            if value > best_value:
                best, best_value = n, value
        indices.append(best)
        A[:, i] = y[:, best]
    return np.array(indices), R[:, indices], snr


@pytest.mark.parametrize("snr_db,projective", [(50, True), (12, False)])
def test_finds_the_pure_pixels_in_both_branches(snr_db, projective):
    Y, pure = scene(snr_db)
    result = vca(Y, 4, seed=1)
    assert result.projective is projective
    assert abs(result.snr_db - snr_db) < 2.0  # the rank-P estimate tracks the true SNR
    assert set(result.indices.tolist()) == set(pure.tolist())
    assert result.indices.dtype.kind == "i" and result.indices.shape == (4,)
    np.testing.assert_array_equal(result.endmembers, Y[:, result.indices])


def test_given_snr_selects_the_branch():
    Y, pure = scene(50, seed=2)
    result = vca(Y, 4, snr=0.0)
    assert not result.projective and result.snr_db == 0.0
    assert set(result.indices.tolist()) == set(pure.tolist())


def test_seeded_determinism():
    Y, _ = scene(30, seed=3)
    first, second = vca(Y, 4, seed=5), vca(Y, 4, seed=5)
    np.testing.assert_array_equal(first.indices, second.indices)
    np.testing.assert_array_equal(first.endmembers, second.endmembers)


@pytest.mark.parametrize("snr_db,seed", [(40, 0), (25, 1), (14, 2), (5, 3)])
def test_matches_plain_transcription(snr_db, seed, monkeypatch):
    """Same random stream -> identical indices, endmembers and SNR, across chunks and in float32."""
    monkeypatch.setattr(vca_module, "CHUNK", 333)
    rng = np.random.default_rng(seed)
    P = 3 + seed % 3
    M = rng.random((30, P))
    Y = M @ rng.dirichlet(np.ones(P), 1000).T
    Y += np.sqrt(np.mean(Y ** 2) / 10 ** (snr_db / 10)) * rng.standard_normal(Y.shape)
    indices, endmembers, snr = reference_vca(Y, P, seed)
    result = vca(Y, P, seed=seed)
    np.testing.assert_array_equal(result.indices, indices)
    np.testing.assert_array_equal(result.endmembers, endmembers)
    assert result.snr_db == pytest.approx(snr, abs=1e-8)
    single = vca(Y.astype(np.float32), P, seed=seed)
    np.testing.assert_array_equal(single.indices, reference_vca(Y.astype(np.float32).astype(np.float64), P, seed)[0])


def test_zero_pixels_are_never_picked_in_the_projective_branch():
    Y, pure = scene(50, seed=4)
    Y[:, :10] = 0.0
    result = vca(Y, 4)
    assert result.projective and set(result.indices.tolist()) == set(pure.tolist())


def test_noiseless_data_have_infinite_snr():
    rng = np.random.default_rng(5)
    M = rng.random((50, 4))
    A = rng.dirichlet(np.ones(4), 500).T
    A[:, :4] = np.eye(4)
    result = vca(M @ A, 4)
    assert result.snr_db == np.inf and result.projective
    assert set(result.indices.tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("Y,P,message", [
    (np.ones((3, 100)), 4, "bands"),
    (np.ones((10, 3)), 4, "pixels"),
    (np.ones((10, 100)), 1, ">= 2"),
    (np.ones((10, 100)), 2.5, ">= 2"),
    (np.ones(100), 2, "bands, pixels"),
    (np.where(np.eye(10, 100) > 0, np.nan, 1.0), 3, "NaN"),
    (np.where(np.eye(10, 100) > 0, np.inf, 1.0), 3, "NaN"),
])
def test_bad_input_raises_clear_errors(Y, P, message):
    with pytest.raises(DeepGUError, match=message):
        vca(Y, P)


@pytest.mark.parametrize("snr_db", [40, 5])
def test_runs_share_the_projection_and_equal_single_runs(snr_db):
    """vca_runs (one projection, one vertex search per seed) gives each seed what the plain transcription gives."""
    from core.extraction.vca import vca_runs

    rng = np.random.default_rng(7)
    M = rng.random((30, 4))
    Y = M @ rng.dirichlet(np.ones(4), 800).T
    Y += np.sqrt(np.mean(Y ** 2) / 10 ** (snr_db / 10)) * rng.standard_normal(Y.shape)
    runs = vca_runs(Y, 4, [3, 11, 12])
    for seed, run in zip([3, 11, 12], runs):
        indices, endmembers, snr = reference_vca(Y, 4, seed)
        np.testing.assert_array_equal(run.indices, indices)
        np.testing.assert_array_equal(run.endmembers, endmembers)
        assert run.snr_db == pytest.approx(snr, abs=1e-8)
