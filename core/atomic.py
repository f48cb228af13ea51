"""Atomic file output: write to a temporary file beside the target, rename it into place on success."""

import contextlib
import os
import tempfile

from .errors import DeepGUError


@contextlib.contextmanager
def atomic_output(path, mode="w", what="file", **open_kwargs):
    """Yield a file object (``what`` names the file in error messages) open on a temporary file in ``path``'s
    folder; on leaving the block without an exception it becomes ``path``, otherwise it is deleted (nothing
    half-written)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DeepGUError("cannot write %s %s: the output folder does not exist" % (what, path))
    if not os.access(folder, os.W_OK):
        raise DeepGUError("cannot write %s %s: the output folder is not writable" % (what, path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".deepgu-", suffix=os.path.splitext(path)[1] or ".tmp", dir=folder)
    except OSError as exc:
        raise DeepGUError("cannot write %s %s (%s)" % (what, path, exc.strerror or exc)) from None
    try:
        with os.fdopen(fd, mode, **open_kwargs) as stream:
            yield stream
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
