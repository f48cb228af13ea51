"""Independent window tasks on a Dask cluster: the CLUSTER parameter of the raster jobs.

``CLUSTER`` is one of

- empty: everything runs in this process (no Dask needed);
- ``local:N``: a ``distributed.LocalCluster`` of N single-threaded worker processes on this
  machine, started for one run and closed after it (in QGIS, with the Python QGIS embeds);
- a scheduler address (``tcp://host:8786``): an existing cluster. Its workers need the
  plugin's Python dependencies and this package importable, and must see the input raster's path.

A job turns its raster into tasks (tiles or strips); each worker reads its own window from the
file and returns the solved block, and the driver writes the blocks with its atomic writer, so
an error or a cancel still leaves no output. Worker processes spawned by ``local:N`` inherit this
process's ``sys.path`` (multiprocessing's spawn start method sends it along), so they import the
plugin's package under the same name as the driver (``core`` from a checkout, ``deepgu.core`` in QGIS).
"""

import contextlib
import hashlib
import logging
import multiprocessing
import os
import re
import socket
import sys
import time

from ..dependencies import INSTALLER
from ..errors import Canceled, DeepGUError

_LOCAL = re.compile(r"^local:(\d+)$")
_ADDRESS = re.compile(r"^([a-z]+://)?[\w.\-\[\]:]+:\d+$")
#: seconds to wait for an existing scheduler before giving up: to connect, and again for its first answer.
CONNECT_TIMEOUT = 20
#: environment variable overriding :data:`CONNECT_TIMEOUT` (seconds; the tests use a small one).
TIMEOUT_VARIABLE = "DEEPGU_CLUSTER_TIMEOUT"
#: seconds a server that did not speak first gets to answer our HTTP probe (:func:`probe_scheduler`).
_HTTP_PROBE_WAIT = 5
#: seconds between checks of the cancel flag while waiting for tasks.
_POLL = 0.25
#: the Dask setting that gives worker processes a low glibc trim threshold; None unsets it (start_local_cluster).
NANNY_MALLOC_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def parse_cluster(spec):
    """``None`` (in this process), an int N (``local:N``) or a scheduler address; DeepGUError otherwise."""
    spec = (spec or "").strip()
    if not spec:
        return None
    local = _LOCAL.match(spec)
    if local:
        if int(local.group(1)) < 1:
            raise DeepGUError("CLUSTER local:N needs at least one worker process (got %s)" % spec)
        return int(local.group(1))
    if _ADDRESS.match(spec):
        if not 0 < int(spec.rsplit(":", 1)[1]) < 65536:
            raise DeepGUError("CLUSTER: the port of %s must be between 1 and 65535" % spec)
        return spec
    raise DeepGUError("CLUSTER must be empty (this process), local:N (N worker processes on this machine) or a "
                      "Dask scheduler address such as tcp://host:8786; got '%s'" % spec)


def connect_timeout():
    """Seconds allowed to reach a scheduler: :data:`TIMEOUT_VARIABLE` when set to a positive number, else
    :data:`CONNECT_TIMEOUT`."""
    try:
        value = float(os.environ.get(TIMEOUT_VARIABLE, ""))
    except ValueError:
        return CONNECT_TIMEOUT
    return value if 0 < value < 3600 else CONNECT_TIMEOUT


def usable_cpus():
    """CPU cores this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def capped_workers(n_workers, feedback=None):
    """``local:N``'s worker count, at most :func:`usable_cpus` (a note to ``feedback`` when capped): single-threaded
    workers beyond the cores only compete for them, and each costs a process, its memory and its semaphores."""
    cpus = usable_cpus()
    if n_workers <= cpus:
        return n_workers
    if feedback is not None:
        feedback.info("CLUSTER local:%d asks for more worker processes than the %d CPU core(s) this process may use: "
                      "starting %d (more single-threaded workers than cores only compete for them)"
                      % (n_workers, cpus, cpus))
    return cpus


def _host_port(address):
    """``(scheme, host, port)`` of a ``tcp://`` or ``tls://`` address (``host:port`` is TCP); None for other
    protocols."""
    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp", "tls"):
        return None
    host, _, port = rest.rpartition(":")
    return scheme or "tcp", host.strip("[]"), int(port)


def _tls(connection, address, timeout):
    """``connection`` after a TLS handshake within ``timeout`` seconds. The server's certificate is not checked:
    this only asks whether the server speaks TLS (Dask's own connect checks it, with the certificates of Dask's
    ``distributed.comm.tls`` settings). A server that refuses the handshake with a TLS alert (e.g. because it wants
    a client certificate) does speak it: None is returned and Dask is left to connect (:func:`_tls_alert`)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        secure = context.wrap_socket(connection, server_hostname=address.rpartition("://")[2].rpartition(":")[0])
    except socket.timeout:
        raise DeepGUError("CLUSTER: the server at %s accepted the connection but did not answer the TLS handshake "
                          "within %g s: it is not a TLS Dask scheduler, or it is not answering" % (address, timeout)
                          ) from None
    except ssl.SSLError as exc:
        if _tls_alert(exc):
            return None
        raise DeepGUError("CLUSTER: the server at %s does not speak TLS (%s): give tcp://... if it is a Dask "
                          "scheduler without TLS" % (address, exc.reason or exc)) from None
    except OSError as exc:
        raise DeepGUError("CLUSTER: the server at %s closed the connection during the TLS handshake (%s): it is "
                          "not a TLS Dask scheduler" % (address, exc.strerror or exc)) from None
    return secure


def _tls_alert(exc):
    """Whether ``exc`` is a TLS alert from the server (it speaks TLS but refused us, e.g. for want of a client
    certificate; with TLS 1.3 that comes after the handshake, at the first read)."""
    import ssl

    return isinstance(exc, ssl.SSLError) and "ALERT" in str(exc).upper()


def probe_scheduler(address, timeout):
    """Check within about ``2 * timeout + 5`` seconds that a ``tcp://`` or ``tls://`` ``address`` is a Dask
    scheduler, before Dask's own connect (whose handshake waits without end on a silent server, and reads an HTTP
    answer as the length of a huge message, i.e. "out of memory"). For ``tls://`` the TLS handshake comes first,
    bounded by ``timeout`` too (:func:`_tls`). A Dask server speaks first on a new connection (its handshake); one
    that does not is sent an HTTP request to tell a web server from a silent one. Raises :class:`DeepGUError`
    naming CLUSTER; other protocols (``ucx://``...) are left to Dask."""
    target = _host_port(address)
    if target is None:
        return
    scheme, host, port = target
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout:
        raise DeepGUError("CLUSTER: cannot reach the Dask scheduler at %s: no connection within %g s"
                          % (address, timeout)) from None
    except OSError as exc:
        raise DeepGUError("CLUSTER: cannot reach the Dask scheduler at %s: %s"
                          % (address, exc.strerror or exc)) from None
    if scheme == "tls":
        with connection:
            secure = _tls(connection, address, timeout)
            if secure is not None:
                with secure:
                    _first_words(secure, address, timeout)
        return
    with connection:
        _first_words(connection, address, timeout)


def _first_words(connection, address, timeout):
    """Refuse, naming CLUSTER, a server whose first words on ``connection`` (or answer to an HTTP request when it
    does not speak first) are not a Dask scheduler's."""
    try:
        first = connection.recv(16)
    except socket.timeout:
        first = None
    except OSError as exc:
        if _tls_alert(exc):
            return      # a TLS server that wants what Dask's TLS settings give it
        raise DeepGUError("CLUSTER: the server at %s closed the connection (%s): it is not a Dask scheduler"
                          % (address, exc.strerror or exc)) from None
    if first is None:
        try:
            connection.settimeout(min(timeout, _HTTP_PROBE_WAIT))
            connection.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
            first = connection.recv(16)
        except OSError:     # socket.timeout included
            raise DeepGUError("CLUSTER: the server at %s accepted the connection but sent nothing within %g s: "
                              "it is not a Dask scheduler, or it is not answering" % (address, timeout)) from None
    if first.startswith(b"HTTP/"):
        raise DeepGUError("CLUSTER: %s is not a Dask scheduler (it answered like an HTTP server): give the "
                          "scheduler's address (tcp://host:8786 by default), not its dashboard's" % address)
    if not first:
        raise DeepGUError("CLUSTER: the server at %s closed the connection without a word: it is not a Dask "
                          "scheduler" % address)
    if len(first) >= 8 and first[:8].isascii() and first[:8].decode("ascii").isprintable():     # a text protocol
        raise DeepGUError("CLUSTER: %s is not a Dask scheduler (it answered %r)" % (address, first[:16]))


def _distributed():
    try:
        import distributed
    except ImportError:
        raise DeepGUError("CLUSTER needs the Dask distributed package: pip install 'dask[distributed]' (in QGIS: "
                          "the algorithm %s)" % INSTALLER) from None
    return distributed


def _use_own_python():
    """Make spawned worker processes run this interpreter's Python.

    In an embedded interpreter (QGIS, qgis_process) ``sys.executable`` is whatever ``python``
    comes first on PATH, possibly another installation whose standard library clashes with the
    ``sys.path`` the workers inherit; the interpreter under ``sys.exec_prefix`` is the right one.
    """
    if os.name == "nt":
        own = os.path.join(sys.exec_prefix, "python.exe")
    else:
        own = os.path.join(sys.exec_prefix, "bin", "python%d.%d" % sys.version_info[:2])
    if os.path.isfile(own) and os.path.realpath(own) != os.path.realpath(sys.executable or ""):
        multiprocessing.set_executable(own)


def start_local_cluster(n_workers):
    """The ``local:N`` cluster: N single-threaded worker processes (torch then uses one thread in each).

    The workers keep glibc's own memory settings: Dask's nanny otherwise starts them with
    ``MALLOC_TRIM_THRESHOLD_=65536`` (:data:`NANNY_MALLOC_KEY`), which also fixes glibc's mmap threshold at
    128 KiB, so every larger array is a fresh ``mmap`` whose pages fault in again; the DeepGU step ran at half
    speed on such workers (``bench/bench_scale.py``, README).
    """
    distributed = _distributed()
    import dask

    _use_own_python()
    with dask.config.set({NANNY_MALLOC_KEY: None}):
        return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=logging.ERROR)


@contextlib.contextmanager
def cluster_client(spec, feedback):
    """Yield a ``distributed.Client`` for ``spec`` (see :func:`parse_cluster`), or None for in-process runs.

    A ``local:N`` cluster lives only inside the ``with`` block, with N capped at the usable CPU cores
    (:func:`capped_workers`). A scheduler address is probed first (:func:`probe_scheduler`), so a silent or
    non-Dask server fails within :func:`connect_timeout` seconds (twice that at most) naming CLUSTER.
    """
    target = parse_cluster(spec)
    if target is None:
        yield None
        return
    distributed = _distributed()
    if isinstance(target, int):
        n_workers = capped_workers(target, feedback)
        cluster = start_local_cluster(n_workers)
        try:
            with distributed.Client(cluster) as client:
                feedback.info("started a local Dask cluster of %d worker processes" % n_workers)
                yield client
        finally:
            cluster.close()
        return
    timeout = connect_timeout()
    probe_scheduler(target, timeout)
    try:
        client = distributed.Client(target, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise DeepGUError("CLUSTER: cannot reach the Dask scheduler at %s: %s" % (target, exc)) from None
    except MemoryError:     # an answer read as the length of a huge message
        raise DeepGUError("CLUSTER: %s is not a Dask scheduler (its answer is not Dask's)" % target) from None
    with client:
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        feedback.info("connected to the Dask scheduler %s (%d workers)" % (target, len(workers)))
        yield client


def map_tasks(client, function, tasks, weights, shared=(), feedback=None):
    """Run ``function(*shared, *task)`` for every tuple in ``tasks`` on the cluster.

    Yields ``(index, result)`` in completion order. ``shared`` values are sent once to every
    worker (``scatter(broadcast=True)``), not pickled with each task. ``tasks`` is consumed lazily:
    at most twice as many tasks as the cluster has threads are built and in flight, so the driver holds
    few task arguments and results at a time (a flight line has thousands of tiles).
    Progress is the completed share of ``weights`` (one per task); a cancel cancels the
    running tasks and raises :class:`Canceled`; a task's error is re-raised here. A lost
    worker's tasks are rerun by the scheduler, so results do not depend on it.
    """
    distributed = _distributed()
    weights = [float(w) for w in weights]
    total, done = sum(weights) or 1.0, 0.0
    shared = [client.scatter(value, broadcast=True, hash=False) for value in shared]
    limit = max(2, 2 * sum(client.nthreads().values()))
    pending = iter(enumerate(tasks))
    running = {}
    # one completion watcher per task: a wait() with a timeout on every poll made the driver's memory grow with
    # the run's length (bench/bench_scale.py, README)
    completed = distributed.as_completed(loop=client.loop)
    try:
        while True:
            for index, task in pending:
                future = client.submit(function, *shared, *task, pure=False)
                running[future] = index
                completed.add(future)
                if len(running) >= limit:
                    break
            if not running:
                break
            if feedback is not None and feedback.is_canceled():
                raise Canceled("canceled by the user")
            finished = completed.next_batch(block=False)
            if not finished:
                time.sleep(_POLL)
                continue
            for future in finished:
                index = running.pop(future)
                result = future.result()
                done += weights[index]
                if feedback is not None:
                    feedback.set_progress(100.0 * done / total)
                yield index, result
    finally:
        if running:
            client.cancel(list(running))


class BytesCache:
    """Per-process cache of an object built from bytes (e.g. a model file), keyed by their SHA-256."""

    def __init__(self, build, size=2):
        self.build = build
        self.size = size
        self._items = {}

    def __call__(self, data):
        key = hashlib.sha256(data).hexdigest()
        if key not in self._items:
            while len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = self.build(data)
        return self._items[key]

