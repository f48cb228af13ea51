"""No aliasing between a job's files: an output must be neither an input nor another output.

Checked before anything is read or written. Paths are compared resolved
(``os.path.realpath``: symbolic links, ``..``) and, where both exist, with
``os.path.samefile`` (hard links, bind mounts); an ENVI raster stands for its data file
and its header, so ``OUTPUT=x.hdr`` is caught against ``INPUT=x.dat``. Every output is also checked
to be writable as a new file (:func:`core.atomic.check_target`).
"""

import os

from .atomic import check_target
from .errors import DeepGUError
from .formats import ENVI, RASTER_EXTENSIONS, raster_data_path


def _files(path):
    """The files a path stands for: an ENVI raster (``x.hdr``, ``x.dat``, ``x.img``...) is its data file and header."""
    stem, extension = os.path.splitext(path)
    if RASTER_EXTENSIONS.get(extension.lower()) == ENVI:
        return [raster_data_path(path), stem + ".hdr"]
    return [path]


def _same_file(a, b):
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:     # one of them does not exist (yet)
        return False


def _same(a, b):
    return any(_same_file(x, y) for x in _files(a) for y in _files(b))


def check_paths(inputs, outputs):
    """``inputs``, ``outputs``: dicts parameter name -> path (None/"" = not given). Raise :class:`DeepGUError`
    naming both parameters when an output is an input or another output, or cannot be written."""
    inputs = {name: path for name, path in inputs.items() if path}
    outputs = {name: path for name, path in outputs.items() if path}
    seen = list(inputs.items())
    for name, path in outputs.items():
        for other, other_path in seen:
            if _same(path, other_path):
                role = "input" if other in inputs else "output"
                raise DeepGUError("%s '%s' is the same file as the %s %s: choose another path for %s"
                                  % (name, path, role, other, name))
        check_target(path, name)
        seen.append((name, path))
