"""Undo a multi-step run's outputs: the steps commit one after the other, the run as a whole all or nothing.

Each step of a workflow writes its outputs atomically (:mod:`core.files.atomic`), but a failure, a cancel or a
SIGTERM in a later step would leave the earlier steps' files. :class:`OutputRollback` is told every file the
run may write (an output and its sidecars), before the first step:

- a file that does not exist yet is removed again by :meth:`~OutputRollback.rollback`;
- a file that exists gets a hard link beside it (``.deepgu-<owner>-keep-<n>``, owned as
  :func:`core.files.atomic.owned_prefix` says, so that a later step's sweep of stale temporaries never takes it),
  which keeps the old content when a step renames its new file over it; :meth:`~OutputRollback.rollback`
  renames the link back, and
  :meth:`~OutputRollback.release` (the run succeeded) deletes it. Where the file system refuses hard links,
  the old file cannot be kept: :meth:`~OutputRollback.rollback` then names it among the files it could not restore.

A step's temporary outputs (QGIS's ``TEMPORARY_OUTPUT`` files) are told to :meth:`~OutputRollback.created` once
the step has written them: a rollback removes them, and so does :meth:`~OutputRollback.release` with those that are
not among the run's results. Files that existed before the run and that no step replaced are never touched.
:meth:`~OutputRollback.on_sigterm` installs (from the main thread) a SIGTERM handler that rolls back and then
lets the previous handler act.
"""

import contextlib
import itertools
import os
import signal
import threading

from .atomic import owned_prefix

_COUNTER = itertools.count()


class OutputRollback:
    """Remember the state of ``paths`` (files a run may create or replace) so that it can be restored."""

    def __init__(self, paths):
        self.new, self.backups, self.unprotected, self.intermediate = [], {}, [], []
        self.active = True
        for path in dict.fromkeys(os.path.abspath(p) for p in paths):
            if not os.path.lexists(path):
                self.new.append(path)
                continue
            if not os.path.isfile(path) or os.path.islink(path):
                continue        # a folder, device or link: the steps refuse to write there
            backup = os.path.join(os.path.dirname(path), "%skeep-%d" % (owned_prefix(), next(_COUNTER)))
            try:
                os.link(path, backup)
            except OSError:
                self.unprotected.append(path)
                continue
            self.backups[path] = backup

    def created(self, paths):
        """Files a step has just created (temporary outputs, each in a folder of its own): :meth:`rollback` removes
        them too, and so does :meth:`release` with those not in ``keep`` (:meth:`release`'s argument); a folder of
        theirs left empty goes with them."""
        paths = [os.path.realpath(path) for path in paths]
        self.new += paths
        self.intermediate += paths

    def _remove_empty_folders(self, paths):
        for folder in dict.fromkeys(os.path.dirname(path) for path in paths):
            with contextlib.suppress(OSError):
                os.rmdir(folder)        # only when empty

    def rollback(self):
        """Remove the files the run created and give replaced files their old content; returns the paths that
        existed before and could not be restored (no hard link was possible) and were replaced. Never raises."""
        if not self.active:
            return []
        self.active = False
        for path in self.new:
            with contextlib.suppress(OSError):
                os.unlink(path)
        for path, backup in self.backups.items():
            with contextlib.suppress(OSError):
                if os.path.samefile(path, backup):
                    os.unlink(backup)       # never replaced: nothing to restore
                    continue
            with contextlib.suppress(OSError):
                os.replace(backup, path)
        self._remove_empty_folders(self.intermediate)
        return list(self.unprotected)

    def release(self, keep=()):
        """The run succeeded: drop the kept old contents, and the files of :meth:`created` that are not in ``keep``
        (the run's results). Never raises."""
        self.active = False
        for backup in self.backups.values():
            with contextlib.suppress(OSError):
                os.unlink(backup)
        keep = {os.path.realpath(path) for path in keep}
        dropped = [path for path in self.intermediate if path not in keep]
        for path in dropped:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._remove_empty_folders(dropped)

    @contextlib.contextmanager
    def on_sigterm(self):
        """Inside the block, SIGTERM rolls back first (when this is the main thread; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGTERM)

        def handler(signum, frame):
            self.rollback()
            if callable(previous):
                previous(signum, frame)
                return
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        signal.signal(signal.SIGTERM, handler)
        try:
            yield
        finally:
            if signal.getsignal(signal.SIGTERM) is handler:     # a handler installed meanwhile chains to ours
                signal.signal(signal.SIGTERM, previous)
