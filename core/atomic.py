"""All-or-nothing file output: write temporary files beside the targets, rename them into place together.

A :class:`TempTarget` is a temporary file ``.deepgu-XXXX<ext>`` in the target's
folder, created with the permissions of a normal new file (``0666 & ~umask``;
``mkstemp`` alone gives 0600). :func:`commit` moves a set of finished temporary
files onto their targets in two phases: each existing target is first renamed
to a backup beside it, then each temporary file is renamed onto its target; if
any rename fails, every target done so far gets its old file back and the
error names the output. SIGTERM and SIGINT are blocked during these renames, so
a signal never leaves half of a set. Stale sidecars of the old file
(``<path>.aux.xml``, ``<stem>.qml``: statistics and a style for other bands)
are removed with it.

Inside :func:`together`, commits are deferred to the end of the block, so a
job's outputs of every kind (rasters, CSV, model, PNG) appear together or not
at all.

Every temporary file of this process is registered until it is committed or
discarded: on normal exit (``atexit``) and on SIGTERM (a handler installed on
first use, from the main thread) the registered files are removed.

Errors are :class:`DeepGUError` ``"cannot write NAME 'path': reason"`` where
NAME is the parameter (e.g. ``OUTPUT``).
"""

import atexit
import contextlib
import os
import signal
import tempfile
import threading

from .errors import DeepGUError

#: sidecars a GIS keeps beside a raster, which describe the old file after a rewrite.
_SIDECAR_SUFFIXES = (".aux.xml",)
_SIDECAR_EXTENSIONS = (".qml",)
_PENDING = set()
_LOCK = threading.Lock()
_GROUP = threading.local()
_handler_installed = False


def _umask():
    """The process umask, read without changing it where /proc allows."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_pending():
    """Delete every temporary file of this process not yet committed (atexit and SIGTERM)."""
    with _LOCK:
        paths = list(_PENDING)
        _PENDING.clear()
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _on_sigterm(signum, frame, previous=None):
    remove_pending()
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers():
    """Remove this run's temporary files at exit and on SIGTERM (the signal only from the main thread)."""
    global _handler_installed
    if _handler_installed:
        return
    _handler_installed = True
    atexit.register(remove_pending)
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        previous = previous if callable(previous) else None
        signal.signal(signal.SIGTERM, lambda signum, frame: _on_sigterm(signum, frame, previous))


def check_target(path, name="OUTPUT"):
    """Raise unless ``path`` can become a new file: its folder exists and is writable, no folder is in the way."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise DeepGUError("cannot write %s '%s': it is a folder" % (name, path))
    if not os.path.isdir(folder):
        raise DeepGUError("cannot write %s '%s': the output folder does not exist" % (name, path))
    if not os.access(folder, os.W_OK):
        raise DeepGUError("cannot write %s '%s': the output folder is not writable" % (name, path))


class TempTarget:
    """A registered temporary file beside ``path`` that :func:`commit` turns into ``path``.

    ``name`` is the parameter named in error messages; ``sidecars``: remove the
    old file's ``.aux.xml``/``.qml`` on commit (rasters). ``tmp``: adopt that
    temporary path, a file another library writes beside ours (GDAL's ENVI
    header), instead of creating one; it is registered before it exists.
    """

    def __init__(self, path, name="OUTPUT", sidecars=False, tmp=None):
        self.path = os.path.abspath(path)
        self.name = name
        self.sidecars = sidecars
        check_target(self.path, name)
        _install_handlers()
        self.state = "open"        # then "deferred" (inside together()) or "committed"
        if tmp is not None:
            self.tmp = os.path.abspath(tmp)
            with _LOCK:
                _PENDING.add(self.tmp)
            return
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=".deepgu-", suffix=os.path.splitext(path)[1] or ".tmp",
                                            dir=os.path.dirname(self.path))
        except OSError as exc:
            raise self.error(exc) from None
        with _LOCK:
            _PENDING.add(self.tmp)
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)

    def error(self, reason):
        """The one-line :class:`DeepGUError` for a failed write of this target (``reason``: text or OSError)."""
        if isinstance(reason, OSError):
            reason = reason.strerror or str(reason)
        return DeepGUError("cannot write %s '%s': %s" % (self.name, self.path, reason))

    def discard(self):
        """Delete the temporary file unless it is committed or awaiting its group's commit (idempotent)."""
        if self.state != "open":
            return
        with _LOCK:
            _PENDING.discard(self.tmp)
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)

    def _remove_sidecars(self, keep=()):
        """Delete the old file's sidecars, except the paths in ``keep`` (committed with this file)."""
        stem = os.path.splitext(self.path)[0]
        for sidecar in [self.path + s for s in _SIDECAR_SUFFIXES] + [stem + e for e in _SIDECAR_EXTENSIONS]:
            if sidecar not in keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(sidecar)


@contextlib.contextmanager
def _signals_blocked():
    """Hold SIGTERM/SIGINT back inside the block; they are delivered when it ends."""
    signals = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def commit(targets):
    """Rename every finished :class:`TempTarget` onto its path, all or none (see the module docstring).

    On failure every temporary file is deleted, targets keep their old
    content, and the :class:`DeepGUError` names the output that failed. Inside :func:`together` the
    targets only join the group's commit.
    """
    group = getattr(_GROUP, "targets", None)
    if group is not None:
        for target in targets:
            target.state = "deferred"
        group.extend(targets)
        return
    done = []        # (target, backup or None) renamed into place
    with _signals_blocked():
        try:
            for target in targets:
                backup = None
                if os.path.lexists(target.path):
                    if os.path.isdir(target.path):
                        raise target.error("it is a folder")
                    backup = target.tmp + ".old"
                    os.replace(target.path, backup)
                try:
                    os.replace(target.tmp, target.path)
                except OSError:
                    if backup:
                        os.replace(backup, target.path)
                    raise
                done.append((target, backup))
        except (OSError, DeepGUError) as exc:
            for finished, backup in reversed(done):
                with contextlib.suppress(OSError):
                    if backup:
                        os.replace(backup, finished.path)
                    else:
                        os.unlink(finished.path)
            for target in targets:
                target.state = "open"
                target.discard()
            if isinstance(exc, DeepGUError):
                raise
            failed = targets[len(done)] if len(done) < len(targets) else targets[-1]
            raise failed.error(exc) from None
        for target, backup in done:
            target.state = "committed"
            with _LOCK:
                _PENDING.discard(target.tmp)
            if backup:
                with contextlib.suppress(OSError):
                    os.unlink(backup)
            if target.sidecars:
                target._remove_sidecars(keep={committed.path for committed in targets})


@contextlib.contextmanager
def together():
    """Defer every :func:`commit` inside the block to its end: all the block's outputs appear, or none."""
    if getattr(_GROUP, "targets", None) is not None:      # nested: the outer block commits
        yield
        return
    targets = _GROUP.targets = []
    try:
        yield
    except BaseException:
        for target in targets:
            target.state = "open"
            target.discard()
        raise
    finally:
        _GROUP.targets = None
    commit(targets)


@contextlib.contextmanager
def atomic_output(path, mode="w", what="OUTPUT", **open_kwargs):
    """Yield a file object open on a temporary file beside ``path``; it becomes ``path`` when the block ends
    without an exception, otherwise it is deleted. ``what`` is the parameter named in error messages; an
    OSError while writing (e.g. a full disk) becomes "cannot write WHAT 'path': reason"."""
    target = TempTarget(path, what)
    try:
        try:
            with open(target.tmp, mode, **open_kwargs) as stream:
                yield stream
        except OSError as exc:
            raise target.error(exc) from None
        commit([target])
    except BaseException:
        target.discard()
        raise
