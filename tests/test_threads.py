"""core.running.threads: tasks side by side on threads of one torch thread each, fed only when a thread is free,
cancellable."""

import threading
import time

import pytest
import torch

from core.errors import Canceled
from core.feedback import Feedback
import core.running.threads
from conftest import ROOT
from core.running.threads import map_in_threads


class Recorder(Feedback):
    def __init__(self, cancel=False):
        self.cancel = cancel
        self.progress = []

    def set_progress(self, percent):
        self.progress.append(percent)

    def is_canceled(self):
        return self.cancel


def test_every_task_runs_once_at_most_n_at_a_time_on_one_torch_thread():
    lock, running, peak, started = threading.Lock(), [0], [0], []

    def work(x, feedback):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        feedback.info("task %d" % x)
        feedback.set_progress(50.0)
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return x * x, torch.get_num_threads(), threading.get_ident()

    def tasks():
        for x in range(7):
            started.append(x)
            yield (x,)

    main_threads = torch.get_num_threads()
    feedback = Recorder()
    results = {}
    for index, lines, result in map_in_threads(work, tasks(), 7, 2, feedback):
        assert len(started) <= len(results) + 2          # read lazily: at most two tasks ahead of the results
        assert lines == ["task %d" % index]
        results[index] = result
    assert sorted(results) == list(range(7))
    assert all(results[x][0] == x * x for x in range(7))
    assert {threads for _, threads, _ in results.values()} == {1}
    assert len({ident for _, _, ident in results.values()} - {threading.get_ident()}) == 2
    assert peak[0] == 2
    assert torch.get_num_threads() == main_threads
    assert feedback.progress[-1] == pytest.approx(100.0)
    assert feedback.progress == sorted(feedback.progress)


def test_an_error_in_a_task_is_raised_and_later_tasks_do_not_start():
    started = []

    def work(x, feedback):
        started.append(x)
        if x == 1:
            raise ValueError("bad tile %d" % x)
        time.sleep(0.05)
        return x

    with pytest.raises(ValueError, match="bad tile 1"):
        for _ in map_in_threads(work, ((x,) for x in range(50)), 50, 2, Recorder()):
            pass
    assert len(started) < 10


def test_cancel_stops_the_running_tasks():
    feedback = Recorder()

    def work(x, feedback):
        for _ in range(1000):
            feedback.check_canceled()
            time.sleep(0.01)
        return x

    start = time.perf_counter()
    timer = threading.Timer(0.2, lambda: setattr(feedback, "cancel", True))
    timer.start()
    with pytest.raises(Canceled):
        for _ in map_in_threads(work, ((x,) for x in range(4)), 4, 2, feedback):
            pass
    assert time.perf_counter() - start < 2.0           # not the 2 x 10 s the tasks would take


def test_tasks_are_read_only_when_a_thread_is_free_even_when_they_outlast_the_poll(monkeypatch):
    """Tasks longer than the progress poll: no task is read ahead of a free thread (a loop that read one more
    task at every poll held every tile of a long run in memory)."""
    monkeypatch.setattr(core.running.threads, "POLL", 0.005)
    started, ahead = [], []

    def work(x, feedback):
        time.sleep(0.06)
        return x

    def tasks():
        for x in range(6):
            started.append(x)
            yield (x,)

    done = 0
    for _ in map_in_threads(work, tasks(), 6, 2, Recorder()):
        done += 1
        ahead.append(len(started) - done)
    assert max(ahead) <= 1                # two running, one finished: at most one more read


def test_one_thread_runs_the_tasks_in_the_calling_thread_with_its_torch_threads():
    lines = []

    class Lines(Recorder):
        def info(self, message):
            lines.append(message)

    def work(x, feedback):
        feedback.info("task %d" % x)
        return threading.get_ident(), torch.get_num_threads()

    results = list(map_in_threads(work, ((x,) for x in range(3)), 3, 1, Lines()))
    assert [index for index, _, _ in results] == [0, 1, 2]
    assert all(own == [] for _, own, _ in results) and lines == ["task 0", "task 1", "task 2"]
    assert {result for _, _, result in results} == {(threading.get_ident(), torch.get_num_threads())}


OPENBLAS_CHILD = """
import ctypes, ctypes.util, os, sys
sys.path.insert(0, sys.argv[1])
blas = ctypes.CDLL(ctypes.util.find_library("openblas"), mode=ctypes.RTLD_GLOBAL)   # as QGIS links it
blas.openblas_set_num_threads(2)
from core.feedback import Feedback
from core.running.threads import map_in_threads
seen = [value for _, _, value in map_in_threads(
    lambda value, feedback: blas.openblas_get_num_threads(), [(0,), (1,)], 2, 2, Feedback())]
inside = [value for _, _, value in map_in_threads(
    lambda value, feedback: blas.openblas_get_num_threads(), [(0,), (1,), (2,)], 3, 1, Feedback())]
print(seen, inside, blas.openblas_get_num_threads())
"""


def test_a_global_openblas_runs_on_one_thread_while_tasks_run():
    """A process that loaded OpenBLAS with global symbols (QGIS does): one BLAS thread inside map_in_threads, with
    one worker thread or two, and the count before restored after."""
    import ctypes.util
    import subprocess
    import sys
    if not ctypes.util.find_library("openblas"):
        pytest.skip("no OpenBLAS on this system")
    done = subprocess.run([sys.executable, "-c", OPENBLAS_CHILD, ROOT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[0] == "[1, 1] [1, 1, 1] 2", done.stdout
