"""CLUSTER: tiles solved by Dask worker processes give the in-process result, survive a lost worker, cancel cleanly."""

import os
import signal
from dataclasses import replace

import numpy as np
import pytest

from core.running.cluster import parse_cluster, start_local_cluster
from core.errors import Canceled, DeepGUError
from core.feedback import Feedback
from core.jobs import compare
from core.jobs import fcls as fcls_job
from core.jobs import unmix as job
from core.jobs import vca as vca_job
from core.files.raster_io import read_all
from core.evaluation.synthetic import load_library
from core.solvers.unmix_settings import UnmixSettings
from helpers import Recorder, scene_and_model

distributed = pytest.importorskip("distributed")

SIDE, BANDS = 200, 50      # 50 of the library's 198 bands keep the solves short for CI
#: a tile budget of 116^2 padded pixels: 2 x 2 tiles of 100 x 100 pixels plus their 8-pixel halos
MEMORY_MB = 116 ** 2 * job._BYTES_PER_PIXEL_BAND_MATERIAL * BANDS * 3 / 2 ** 20
SETTINGS = UnmixSettings(lambda_a=0.05, max_iter=1, memory_mb=MEMORY_MB)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 200 x 200 DC2 scene, its VAE model, VCA endmembers and the in-process DeepGU abundances."""
    folder = tmp_path_factory.mktemp("cluster")
    wavelengths, spectra, names = load_library()
    bands = np.round(np.linspace(0, wavelengths.size - 1, BANDS)).astype(int)
    _, image, model_path = scene_and_model(folder, SIDE, seed=3, epochs=30,
                                           library=(wavelengths[bands], spectra[bands], names))
    endmembers = str(folder / "em.csv")
    vca_job.run(image, 3, endmembers, seed=0)
    in_process = str(folder / "in-process.tif")
    assert job.run(image, model_path, in_process, SETTINGS) == 4
    return dict(image=image, model=model_path, endmembers=endmembers, abundances=read_all(in_process)[:2])


def _assert_same(path, expected):
    values, valid, _ = read_all(path)
    assert valid.all() and expected[1].all()
    assert np.max(np.abs(values - expected[0])) < 1e-6


def test_cluster_specs():
    assert parse_cluster("") is None and parse_cluster(None) is None
    assert parse_cluster(" local:3 ") == 3
    assert parse_cluster("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    for bad in ("local:0", "local", "local:two", "my cluster"):
        with pytest.raises(DeepGUError, match="CLUSTER"):
            parse_cluster(bad)


def test_local_cluster_gives_the_in_process_result(scene, tmp_path):
    out, log = str(tmp_path / "local.tif"), Recorder()
    assert job.run(scene["image"], scene["model"], out, replace(SETTINGS, cluster="local:2"), feedback=log) == 4
    _assert_same(out, scene["abundances"])
    # the tiles' lines stay on the workers; the weights they used are in the job's log, where deepgu:compare reads them
    stated = [line for line in log.messages if line.startswith("regularisation: lambda_Z ")]
    assert len(stated) == 1 and "lambda_A 0.05 (auto: residual level" in stated[0], log.messages
    assert compare._weights("deepgu", log.messages).startswith("lambda_Z ")
    # FCLS in strips of 20 rows, on the cluster and here: exactly the same
    here, there = str(tmp_path / "fcls-here.tif"), str(tmp_path / "fcls-there.tif")
    memory_mb = 20 * SIDE * 16 * BANDS / 2 ** 20
    fcls_job.run(scene["image"], scene["endmembers"], here, memory_mb=memory_mb)
    fcls_job.run(scene["image"], scene["endmembers"], there, memory_mb=memory_mb, cluster="local:2")
    assert np.array_equal(read_all(here)[0], read_all(there)[0])


def test_local_workers_keep_the_c_librarys_memory_settings():
    """local:N's workers start without Dask's MALLOC_TRIM_THRESHOLD_ (it halved the DeepGU step's speed) and with
    its one-thread settings."""
    with start_local_cluster(1) as cluster, distributed.Client(cluster) as client:
        environ = list(client.run(lambda: dict(os.environ)).values())[0]
    assert "MALLOC_TRIM_THRESHOLD_" not in environ
    assert environ.get("OMP_NUM_THREADS") == "1"


class KillWorkerOnFirstTile(Feedback):
    """Kills (SIGKILL) the worker process ``pid`` when the first tile has come back."""

    def __init__(self, pid):
        self.pid, self.killed_at = pid, None

    def set_progress(self, percent):
        if self.killed_at is None and 0 < percent < 100:
            os.kill(self.pid, signal.SIGKILL)
            self.killed_at = percent


def test_a_worker_killed_mid_run_changes_nothing(scene, tmp_path):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        feedback = KillWorkerOnFirstTile(sorted(pids.values())[0])
        out = str(tmp_path / "survivor.tif")
        job.run(scene["image"], scene["model"], out, replace(SETTINGS, cluster=cluster.scheduler_address),
                feedback=feedback)
        assert feedback.killed_at is not None and feedback.killed_at < 50   # killed with tiles still running
        assert feedback.pid not in client.run(os.getpid).values()
    _assert_same(out, scene["abundances"])


class CancelWhileRunning(Feedback):
    """Cancels at the first check, which comes once the tiles are submitted."""

    def is_canceled(self):
        return True


def test_cancel_on_the_cluster_writes_nothing(scene, tmp_path):
    out = tmp_path / "outputs"
    out.mkdir()
    with pytest.raises(Canceled):
        job.run(scene["image"], scene["model"], str(out / "a.tif"), replace(SETTINGS, cluster="local:2"),
                output_rmse=str(out / "rmse.tif"), feedback=CancelWhileRunning())
    assert os.listdir(str(out)) == []


def _square(x):
    return x * x


def test_tasks_are_built_only_as_the_cluster_takes_them():
    """The driver builds at most 2 x threads tasks ahead of the results (a flight line's thousands of tiles
    each carry their INIT_ABUNDANCES window, which must not all sit in the driver at once)."""
    from core.running.cluster import map_tasks

    built = []

    def tasks():
        for i in range(40):
            built.append(i)
            yield (i,)

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        results = {}
        for index, value in map_tasks(client, _square, tasks(), [1.0] * 40):
            assert len(built) <= len(results) + 1 + 2          # 2 x 1 thread in flight, plus the one just done
            results[index] = value
    assert results == {i: i * i for i in range(40)}


def _nap(seconds):
    import time
    time.sleep(seconds)
    return seconds


class _LoopWatcher(Feedback):
    """Feedback whose cancel check (called on every poll of map_tasks) counts the tasks pending on a loop."""

    def __init__(self, loop):
        super().__init__()
        self.loop, self.pending = loop, []

    def is_canceled(self):
        import asyncio
        self.pending.append(len(asyncio.all_tasks(self.loop)))
        return False


def test_waiting_for_tasks_leaves_no_work_behind(monkeypatch):
    """Polling the cancel flag while tasks run must not leave work on the client's event loop: a Dask wait()
    with a timeout per poll left a watcher per running task on every poll, and the driver's memory grew with
    the run (README, bench/bench_scale.py)."""
    import core.running.cluster
    from core.running.cluster import map_tasks

    monkeypatch.setattr(core.running.cluster, "_POLL", 0.01)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        watcher = _LoopWatcher(client.loop.asyncio_loop)
        assert dict(map_tasks(client, _nap, [(1.0,)] * 2, [1.0] * 2, feedback=watcher)) == {0: 1.0, 1: 1.0}
    assert len(watcher.pending) >= 50                   # two seconds of polls (about 200 on an idle machine)
    assert max(watcher.pending) - min(watcher.pending) < 30       # the old wait() left 150 behind in 150 polls
