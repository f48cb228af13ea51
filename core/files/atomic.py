"""All-or-nothing file output: write temporary files beside the targets, rename them into place together.

A :class:`TempTarget` is a temporary file ``.deepgu-<owner>-<random><ext>`` in the
target's folder, created with the permissions of a normal new file (``0666 &
~umask``; ``mkstemp`` alone gives 0600). ``<owner>`` is ``<host>-<pid>-<start>``:
a tag of this machine's boot and PID namespace, this process's id and its start
time (clock ticks since boot), so that the next run into the folder can tell a
dead process's temporaries from a live one's (:func:`sweep_stale`).

:func:`commit` moves a set of finished temporary files onto their targets in
two phases. First everything that can be checked is checked, for every target,
before the first rename (:func:`check_target`: each target is a regular file or
a new path, its name and its sidecars' fit the file system's limits). Then each
existing target gets a backup beside it (a hard link, so the target never goes
missing; a rename where hard links are not supported), and each temporary file
is renamed onto its target; if any rename fails, every target done so far gets
its old file back and the error names the output. SIGTERM and SIGINT are
blocked during these renames, so a signal never leaves half of a set. The
clean-up after the renames (backups, the old file's sidecars) never raises: a
file that cannot be removed is logged and the rest are still removed.

Sidecars (:func:`stale_sidecars`): a rewritten raster loses its old
``<path>.aux.xml``, ``.ovr`` and ``.msk`` (statistics, overviews, mask) and its
``<stem>.qml`` (a style for other bands). :mod:`core.checks.paths` refuses, before any
work, an output whose stem-named sidecars would belong to an input or another
file, so these are always the output's own.

Inside :func:`together`, commits are deferred to the end of the block, so a
job's outputs of every kind (rasters, CSV, model, PNG) appear together or not
at all.

Every temporary file of this process is registered until it is committed or
discarded: on normal exit (``atexit``) and on SIGTERM (a handler installed on
first use, from the main thread) the registered files are removed; a SIGKILL's
are swept by the next run into the folder.

Errors are :class:`DeepGUError` ``"cannot write NAME 'path': reason"`` where
NAME is the parameter (e.g. ``OUTPUT``).
"""

import atexit
import contextlib
import hashlib
import logging
import os
import re
import secrets
import signal
import socket
import stat
import threading
import time

from .. import defaults
from ..errors import DeepGUError

#: sidecars named after a raster's data file (GDAL's statistics, overviews, mask): they describe the old file.
PATH_SIDECARS = (".aux.xml", ".ovr", ".msk")
#: sidecars named after its stem: QGIS's default style.
STEM_SIDECARS = (".qml",)
#: temporary files, and their owner: ``.deepgu-<host tag>-<pid>-<start ticks>-``.
TEMP_PREFIX = ".deepgu-"
_OWNER = re.compile(r"^\.deepgu-([0-9a-f]{8})-([0-9]+)-([0-9]+)-")
#: longest extension a temporary file keeps (a longer one becomes ``.tmp``); GDAL is given its driver by name.
_MAX_TEMP_EXTENSION = 10
#: what is appended to a temporary name: GDAL's ``.aux.xml``, then a backup's ``.old``.
_TEMP_APPENDIX = len(".aux.xml") + len(".old")
_PENDING = set()
_SWEPT = set()
_LOCK = threading.Lock()
_GROUP = threading.local()
_handler_installed = False
_log = logging.getLogger(__name__)


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
    """Delete every temporary file of this process not yet committed (atexit and SIGTERM). The SIGTERM handler
    may run in a thread that holds the lock (between two bytecodes of its ``with``): after a second without it,
    the list is taken anyway (one C call under the GIL)."""
    locked = _LOCK.acquire(timeout=1.0)
    try:
        paths = list(_PENDING)
        _PENDING.clear()
    finally:
        if locked:
            _LOCK.release()
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _registered_temporary(folder, prefix, suffix, error):
    """``(fd, path)`` of a new file ``<folder>/<prefix><random><suffix>`` (mode 0600, as ``tempfile.mkstemp``
    makes it), registered for removal *before* it is created: a SIGTERM handled between the two would otherwise
    leave it behind. ``error(OSError)`` gives the exception to raise."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = os.path.join(folder, prefix + secrets.token_hex(4) + suffix)
        with _LOCK:
            _PENDING.add(path)
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            exc = None
        except OSError as failure:
            exc = failure
        with _LOCK:
            _PENDING.discard(path)
        if exc is not None:
            raise error(exc) from None
    raise error(FileExistsError(17, "no free temporary name"))


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


def _process_start(pid):
    """Start time of process ``pid`` in clock ticks since boot (field 22 of ``/proc/<pid>/stat``); None if unknown."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _host_tag():
    """8 hex digits naming this boot of this machine and this PID namespace: PIDs are comparable within one tag."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        with open("/proc/sys/kernel/random/boot_id") as f:
            parts.append(f.read().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:8]


_HOST = _host_tag()
#: whether a PID can be checked here (Linux /proc: the owner's start time guards against a reused PID).
_PIDS_CHECKABLE = _process_start(os.getpid()) is not None


def owned_prefix():
    """``.deepgu-<host>-<pid>-<start>-``: the start of every temporary name this process makes, so that
    :func:`sweep_stale` can tell whether its owner still runs."""
    return "%s%s-%d-%d-" % (TEMP_PREFIX, _HOST, os.getpid(), _process_start(os.getpid()) or 0)


def _owner_dead(pid, start):
    """True when the process ``pid`` that started at ``start`` (ticks since boot) no longer runs."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):        # no such process (or no such PID at all)
        return True
    except PermissionError:          # another user's process: alive, unless the PID was reused since
        pass
    running_since = _process_start(pid)
    return running_since is not None and running_since != start


def _stale(name, entry):
    """Whether the temporary file ``name`` (a ``os.DirEntry``) is debris: its owner on this machine is dead,
    or, where that cannot be told (another machine or boot, another PID namespace, no /proc, a name without
    an owner), it has not changed for :data:`core.defaults.STALE_TEMPORARY_HOURS`."""
    owner = _OWNER.match(name)
    if owner and owner.group(1) == _HOST and _PIDS_CHECKABLE:
        return _owner_dead(int(owner.group(2)), int(owner.group(3)))
    return time.time() - entry.stat(follow_symlinks=False).st_mtime > defaults.STALE_TEMPORARY_HOURS * 3600


def sweep_stale(folder):
    """Remove the temporary files that dead processes left in ``folder`` (a SIGKILL, a crash, a power cut).

    A live process's temporaries are never touched; only regular files and symbolic links named
    ``.deepgu-*`` are considered. Errors are ignored: a sweep never fails a run.
    """
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if (entry.name.startswith(TEMP_PREFIX) and not entry.is_dir(follow_symlinks=False)
                        and _stale(entry.name, entry)):
                    os.unlink(entry.path)


def _kind(mode):
    """What a file that is not a regular file is, in words (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _limit(folder, name, fallback):
    """The file system's limit ``name`` (``PC_NAME_MAX``, ``PC_PATH_MAX``) for ``folder``; ``fallback`` where the
    system cannot tell (no ``os.pathconf`` on Windows)."""
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError, AttributeError):
        return fallback


def stale_sidecars(path):
    """The sidecars a raster written to ``path`` replaces or removes: ``path`` + :data:`PATH_SIDECARS` and
    ``<stem>`` + :data:`STEM_SIDECARS`."""
    stem = os.path.splitext(path)[0]
    return [path + suffix for suffix in PATH_SIDECARS] + [stem + extension for extension in STEM_SIDECARS]


def check_target(path, name="OUTPUT", sidecars=()):
    """Raise unless ``path`` can become a new file, with its ``sidecars`` (paths written or removed beside it).

    The folder exists and is writable; ``path`` and each sidecar are a regular file (or a symbolic link to
    one, which the rename replaces) or a new path, never a folder, device, FIFO or socket; every name fits
    the file system's limits (``NAME_MAX`` per component, ``PATH_MAX`` in all), the temporary and backup
    names beside it included.
    """
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise DeepGUError("cannot write %s '%s': it is a folder" % (name, path))
    if not os.path.isdir(folder):
        raise DeepGUError("cannot write %s '%s': the output folder does not exist" % (name, path))
    if not os.access(folder, os.W_OK):
        raise DeepGUError("cannot write %s '%s': the output folder is not writable" % (name, path))
    name_max = _limit(folder, "PC_NAME_MAX", 255)
    path_max = _limit(folder, "PC_PATH_MAX", 4096)
    temporary = os.path.join(folder, owned_prefix() + "x" * 8 + _temp_suffix(path) + "." * _TEMP_APPENDIX)
    for file in [path] + [os.path.abspath(sidecar) for sidecar in sidecars] + [temporary]:
        size = len(os.fsencode(os.path.basename(file)))
        if size > name_max:
            what = "its name" if file == path else "the name of its %s '%s'" % (
                "temporary file" if file == temporary else "sidecar", os.path.basename(file))
            raise DeepGUError("cannot write %s '%s': %s is %d bytes long, more than the %d this file system "
                              "allows: choose a shorter name for %s" % (name, path, what, size, name_max, name))
        if len(os.fsencode(file)) >= path_max:
            raise DeepGUError("cannot write %s '%s': the path of '%s' is longer than the %d bytes this file system "
                              "allows: choose a shorter path for %s" % (name, path, os.path.basename(file),
                                                                       path_max, name))
        try:
            mode = os.stat(file).st_mode
        except FileNotFoundError:         # a new path (or a dangling symbolic link, which the rename replaces)
            continue
        except OSError as exc:
            raise DeepGUError("cannot write %s '%s': %s" % (name, path, exc.strerror or exc)) from None
        kind = _kind(mode)
        if kind:
            whose = "it" if file == path else "its sidecar '%s'" % file
            raise DeepGUError("cannot write %s '%s': %s is %s, not a regular file" % (name, path, whose, kind))


def _temp_suffix(path):
    """The extension a temporary file for ``path`` gets: ``path``'s own, unless absurdly long."""
    extension = os.path.splitext(path)[1]
    return extension if 0 < len(extension) <= _MAX_TEMP_EXTENSION else ".tmp"


class TempTarget:
    """A registered temporary file beside ``path`` that :func:`commit` turns into ``path``.

    ``name`` is the parameter named in error messages; ``sidecars``: remove the
    old file's :func:`stale_sidecars` on commit (rasters). ``tmp``: adopt that
    temporary path, a file another library writes beside ours (GDAL's ENVI
    header), instead of creating one; it is registered before it exists. The
    first temporary file in a folder sweeps the folder's stale ones (:func:`sweep_stale`).
    """

    def __init__(self, path, name="OUTPUT", sidecars=False, tmp=None):
        self.path = os.path.abspath(path)
        self.name = name
        self.sidecars = sidecars
        check_target(self.path, name, self.sidecar_paths())
        _install_handlers()
        self.state = "open"        # then "deferred" (inside together()) or "committed"
        if tmp is not None:
            self.tmp = os.path.abspath(tmp)
            with _LOCK:
                _PENDING.add(self.tmp)
            return
        folder = os.path.dirname(self.path)
        with _LOCK:
            sweep = folder not in _SWEPT
            _SWEPT.add(folder)
        if sweep:
            sweep_stale(folder)
        fd, self.tmp = _registered_temporary(folder, owned_prefix(), _temp_suffix(path), self.error)
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)

    def sidecar_paths(self):
        """The old file's sidecars this target removes on commit (none unless ``sidecars``)."""
        return stale_sidecars(self.path) if self.sidecars else []

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


def _remove_quietly(path):
    """Delete ``path`` if it exists; a failure is logged, never raised (the clean-up after a commit)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        _log.warning("DeepGU: could not remove '%s' (%s); remove it by hand", path, exc.strerror or exc)


@contextlib.contextmanager
def _signals_blocked():
    """Hold SIGTERM/SIGINT back inside the block; they are delivered when it ends."""
    signals = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _backup(target):
    """Keep the existing file at ``target.path`` beside it before the rename; return the backup's path (None: no
    file there). A hard link keeps the target in place (a SIGKILL during the commit leaves it whole); where the
    file system has none, the file is renamed."""
    if not os.path.lexists(target.path):
        return None
    backup = target.tmp + ".old"
    try:
        os.link(target.path, backup, follow_symlinks=False)
    except (OSError, NotImplementedError):      # NotImplementedError: Windows links only what a link points to
        os.replace(target.path, backup)
    return backup


def _restore(target, backup):
    """Undo one target's rename: its old file back (or no file, where there was none)."""
    with contextlib.suppress(OSError):
        if backup:
            os.replace(backup, target.path)
            if os.path.lexists(backup):      # a hard link to the file still there: rename(2) leaves both
                os.unlink(backup)
        else:
            os.unlink(target.path)


def commit(targets):
    """Rename every finished :class:`TempTarget` onto its path, all or none (see the module docstring).

    Every target is checked (:func:`check_target`) before the first rename. On failure every temporary file
    is deleted, targets keep their old content, and the :class:`DeepGUError` names the output that failed.
    Inside :func:`together` the targets only join the group's commit. The clean-up after the renames never raises.
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
            for target in targets:       # everything that can be checked, before the first rename
                check_target(target.path, target.name, target.sidecar_paths())
                if not os.path.isfile(target.tmp):
                    raise target.error("its temporary file '%s' is gone" % target.tmp)
            for target in targets:
                backup = _backup(target)
                try:
                    os.replace(target.tmp, target.path)
                except OSError:
                    _restore(target, backup)
                    raise
                done.append((target, backup))
        except (OSError, DeepGUError) as exc:
            for finished, backup in reversed(done):
                _restore(finished, backup)
            for target in targets:
                target.state = "open"
                target.discard()
            if isinstance(exc, DeepGUError):
                raise
            failed = targets[len(done)] if len(done) < len(targets) else targets[-1]
            raise failed.error(exc) from None
        keep = {committed.path for committed in targets}
        for target, backup in done:
            target.state = "committed"
            with _LOCK:
                _PENDING.discard(target.tmp)
            if backup:
                _remove_quietly(backup)
            for sidecar in target.sidecar_paths():
                if sidecar not in keep:
                    _remove_quietly(sidecar)


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
