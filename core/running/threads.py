"""Tasks run side by side on threads of this process: tiles of one raster, solved a few at a time.

The DeepGU solver's work is many small tensor operations (a thousand-pixel piece of a decoder
layer, a 4 x 4 solve per pixel). Split across threads *within* each operation they scale poorly,
while two tiles solved side by side, one thread each, keep both cores busy: torch releases
Python's lock while it computes (``bench/bench_scale.py``: README, "Running on a Dask cluster").

Each worker thread sets *its own* torch thread count (OpenMP's count belongs to the thread) to
``torch.get_num_threads() // n_threads`` of the calling thread: a worker left at the default would
split operations over a number of threads that depends on timing, so the round-off, and through
the solver's discrete decisions the result, would change from run to run. With one thread the
tasks run in the calling thread itself, with its torch threads and its feedback.

Tasks are read lazily in the calling thread, only when a worker is free: so reading a task's
input there is safe for handles that are not thread-safe (GDAL datasets), and the memory held is
that of ``n_threads`` tasks however long the run.

While tasks run, a system OpenBLAS that the process loaded with global symbols runs on one thread
(:func:`single_threaded_blas`). QGIS links one so (Debian's ``libblas.so.3``), before torch is
imported: torch's LAPACK calls (the solvers' many small batched solves and inverses) then resolve to
it, and its worker threads busy-wait between those calls, taking a core from the solver's own threads.
Measured through ``qgis_process`` (70 x 70 x 198, one tile): DeepGU's solve 2.3-2.6 s, 1.4-1.5 s with
OpenBLAS on one thread, as in a plain Python process, where numpy loads OpenBLAS privately.
"""

import contextlib
import ctypes
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import torch

from ..feedback import Feedback, SubFeedback

#: seconds between two progress reports while tasks run
POLL = 0.5


class WorkerFeedback(Feedback):
    """A worker thread's feedback: cancellation read from ``parent``; log lines and progress kept (``lines``,
    ``progress``) for the calling thread to pass on (QGIS feedback objects belong to the thread that runs the
    algorithm)."""

    def __init__(self, parent):
        self.parent = parent
        self.lines = []
        self.progress = 0.0

    def set_progress(self, percent):
        self.progress = percent

    def is_canceled(self):
        return self.parent.is_canceled()

    def info(self, message):
        self.lines.append(message)


def _one_at_a_time(function, tasks, n_tasks, feedback):
    """:func:`map_in_threads` with one thread: each task in the calling thread, its log lines passed on as they come."""
    for index, task in enumerate(tasks):
        feedback.check_canceled()
        progress = SubFeedback(feedback, 100.0 * index / max(n_tasks, 1), 100.0 * (index + 1) / max(n_tasks, 1))
        yield index, [], function(*task, feedback=progress)


@contextlib.contextmanager
def single_threaded_blas():
    """Inside the block, the process's global OpenBLAS (if any; module docstring) uses one thread; its count
    before is restored after. Elsewhere (no such library, another platform) it does nothing."""
    try:
        process = ctypes.CDLL(None)
        get, put = process.openblas_get_num_threads, process.openblas_set_num_threads
    except (AttributeError, OSError, TypeError):        # no global OpenBLAS; Windows has no CDLL(None)
        yield
        return
    before = get()
    put(1)
    try:
        yield
    finally:
        put(before)


def map_in_threads(function, tasks, n_tasks, n_threads, feedback):
    """Yield ``(index, lines, function(*task, feedback=...))`` for the tasks as they finish, ``n_threads`` at a time.

    ``tasks``: an iterable of argument tuples, consumed in the calling thread when a worker is free
    (module docstring). Each call gets a :class:`WorkerFeedback` of ``feedback``; ``lines`` are its
    log lines (empty with one thread: the lines went straight to ``feedback``). ``feedback``'s progress
    is that of the ``n_tasks`` tasks together (finished ones and the running ones' own progress),
    reported every :data:`POLL` seconds from the calling thread. An exception in a task (also
    :class:`.errors.Canceled`, raised by its own cancellation checks) is raised here; tasks not yet
    started are dropped and running ones are waited for. OpenBLAS runs on one thread meanwhile
    (:func:`single_threaded_blas`).
    """
    with single_threaded_blas():
        yield from _map_in_threads(function, tasks, n_tasks, n_threads, feedback)


def _map_in_threads(function, tasks, n_tasks, n_threads, feedback):
    """:func:`map_in_threads` once OpenBLAS is on one thread."""
    n_threads = max(1, int(n_threads))
    if n_threads == 1:
        yield from _one_at_a_time(function, tasks, n_tasks, feedback)
        return
    tasks = enumerate(tasks)
    torch_threads = max(1, torch.get_num_threads() // n_threads)
    with ThreadPoolExecutor(n_threads, initializer=torch.set_num_threads, initargs=(torch_threads,)) as pool:
        pending, finished = {}, 0
        try:
            while True:
                while len(pending) < n_threads:
                    item = next(tasks, None)
                    if item is None:
                        break
                    index, task = item
                    worker_feedback = WorkerFeedback(feedback)
                    pending[pool.submit(function, *task, feedback=worker_feedback)] = index, worker_feedback
                if not pending:
                    return
                done, _ = wait(pending, timeout=POLL, return_when=FIRST_COMPLETED)
                for future in done:
                    index, worker_feedback = pending.pop(future)
                    result = future.result()
                    finished += 1
                    yield index, worker_feedback.lines, result
                running = sum(worker_feedback.progress for _, worker_feedback in pending.values()) / 100.0
                feedback.set_progress(100.0 * (finished + running) / max(n_tasks, 1))
        finally:
            for future in pending:
                future.cancel()
