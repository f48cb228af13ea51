"""Tasks run side by side on threads of this process, one torch thread each.

The DeepGU solver's work is many small tensor operations (a thousand-pixel piece of a decoder
layer, a 4 x 4 solve per pixel). Split across threads *within* each operation they scale poorly
(1.3x on two cores), while two tiles solved side by side, one thread each, keep both cores
busy: torch releases Python's lock while it computes. (Measured on the central 1000 x 1000
pixels of the ``bench/bench_scale.py`` scene: 107 s one tile at a time on two torch threads,
83-85 s two tiles at a time on one each.)

Each worker thread sets *its own* torch thread count to 1: OpenMP's thread count belongs to the
thread, and a worker left at the default would split operations over a number of threads that
depends on timing, so the round-off, and through the solver's discrete decisions the result,
would change from run to run. With one thread each, a task's result does not depend on the
number of workers (and equals a single-threaded Dask worker's).
"""

import ctypes
import ctypes.util
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import torch

from .feedback import Feedback


#: seconds between two progress reports while tasks run
POLL = 0.5


def _malloc_trim():
    """glibc's ``malloc_trim``, or None on other C libraries."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_free_memory():
    """Return the C heap's free pages to the system (glibc ``malloc_trim(0)``; nothing elsewhere).

    glibc gives each thread that allocates its own heap ("arena") and keeps what a finished task
    freed there for that thread's next allocation; with tasks side by side the process's resident
    memory would creep up over a long run, so it is trimmed after each task.
    """
    if _TRIM is not None:
        _TRIM(0)


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


def map_in_threads(function, tasks, n_tasks, n_threads, feedback):
    """Yield ``(index, lines, function(*task, feedback=...))`` for the tasks as they finish, ``n_threads`` at a time.

    ``tasks`` (an iterable of argument tuples) is consumed lazily in the calling thread, at most
    ``n_threads`` ahead of the results (so reading a task's input there is safe for handles that are
    not thread-safe, such as GDAL datasets, and the memory held is that of ``n_threads`` tasks).
    Each call gets a :class:`WorkerFeedback` of ``feedback``; ``lines`` are its log lines. ``feedback``'s
    progress is that of the ``n_tasks`` tasks together (finished ones and the running ones' own progress),
    reported every :data:`POLL` seconds from the calling thread. An exception
    in a task (also :class:`.errors.Canceled`, raised by its own cancellation checks) is raised here;
    tasks not yet started are dropped and running ones are waited for.
    """
    tasks = enumerate(tasks)
    with ThreadPoolExecutor(max(1, n_threads), initializer=torch.set_num_threads, initargs=(1,)) as pool:
        pending, finished = {}, 0
        try:
            while True:
                for index, task in tasks:
                    worker_feedback = WorkerFeedback(feedback)
                    pending[pool.submit(function, *task, feedback=worker_feedback)] = index, worker_feedback
                    if len(pending) >= n_threads:
                        break
                if not pending:
                    return
                done, _ = wait(pending, timeout=POLL, return_when=FIRST_COMPLETED)
                for future in done:
                    index, worker_feedback = pending.pop(future)
                    result = future.result()
                    release_free_memory()
                    finished += 1
                    yield index, worker_feedback.lines, result
                running = sum(worker_feedback.progress for _, worker_feedback in pending.values()) / 100.0
                feedback.set_progress(100.0 * (finished + running) / max(n_tasks, 1))
        finally:
            for future in pending:
                future.cancel()
