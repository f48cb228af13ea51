"""Benchmark helpers: run a step in a fresh process and report its wall time and peak memory."""

import datetime
import multiprocessing
import os
import platform
import resource
import time


def machine_line():
    """One line naming the machine and the date, printed at the top of every benchmark."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / 2 ** 20
    return "# %s | %s | %d cores | %.0f GiB RAM | %s | Python %s" % (
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), cpu, os.cpu_count(), mem_gib, platform.node(),
        platform.python_version())


def _child(queue, function, kwargs):
    start = time.perf_counter()
    try:
        result = function(**kwargs)
        error = None
    except Exception as exc:  # reported by the parent
        result, error = None, "%s: %s" % (type(exc).__name__, exc)
    elapsed = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    queue.put((elapsed, peak_mib, result, error))


def measure(function, **kwargs):
    """Run ``function(**kwargs)`` in a new process; returns ``(seconds, peak_rss_MiB, result)``.

    The peak resident memory includes the interpreter and imported libraries.
    ``function`` must be importable (module level) and its result picklable.
    """
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(queue, function, kwargs))
    process.start()
    elapsed, peak, result, error = queue.get()
    process.join()
    if error:
        raise RuntimeError(error)
    return elapsed, peak, result


#: the fixed reference workload: this many products of two 1024 x 1024 float32 matrices on one torch thread
REFERENCE_PRODUCTS = 20


def reference_seconds(repeats=3):
    """Wall seconds of the reference workload (best of ``repeats``): a machine's speed now, so that a time
    measured beside it can be reported as a ratio that other helpers' load inflates less than the time itself."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(0)
        a, b = torch.rand(1024, 1024, generator=generator), torch.rand(1024, 1024, generator=generator)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(REFERENCE_PRODUCTS):
                a @ b
            best = min(best, time.perf_counter() - start)
        return best
    finally:
        torch.set_num_threads(previous)


def free_cores():
    """How many cores two threads get now: the reference workload's products on one torch thread, then the same
    on each of two Python threads at once; returns ``2 * one / two`` (2.0: both cores free, 1.0: one core between
    them). On a shared machine this says whether a two-thread time could show its gain."""
    import threading

    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(0)
        a, b = torch.rand(512, 512, generator=generator), torch.rand(512, 512, generator=generator)

        def work():
            torch.set_num_threads(1)
            for _ in range(4 * REFERENCE_PRODUCTS):
                a @ b

        start = time.perf_counter()
        work()
        one = time.perf_counter() - start
        threads = [threading.Thread(target=work) for _ in range(2)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return 2.0 * one / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
