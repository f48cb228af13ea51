"""No aliasing between a job's files: an output must be neither an input, nor another output, nor own a sidecar
of either.

Checked before anything is read or written. Paths are compared resolved
(``os.path.realpath``: symbolic links, ``..``) and, where both exist, with
``os.path.samefile`` (hard links, bind mounts); an ENVI raster stands for its data file
and its header (an ENVI spectral library ``x.sli`` for ``x.hdr`` too), so ``OUTPUT=x.hdr`` is caught
against ``INPUT=x.dat``. Every output is also checked to be writable as a new file, with its sidecars
(:func:`core.files.atomic.check_target`: a regular file or a new path, names within the file system's limits).

Sidecars named after the stem: a raster output (``.tif``, ``.dat``, ``.img``...) writes or removes
``<stem>.qml`` (QGIS's default style, which QGIS applies to any file of that stem); an ENVI raster or library
(``.sli``) writes ``<stem>.hdr``. A style is the output's own only if nothing else has its stem, so a raster
output is refused when its folder and stem (the name without its last extension) are those of

- an input, of any kind (``INPUT=scene.tif``, ``OUTPUT_RMSE=scene.img``: ``scene.qml`` is the input's style);
- another raster output (both would own ``<stem>.qml``);
- an existing file in the folder other than the run's outputs and the sidecars themselves (``a.img`` beside
  ``OUTPUT=a.tif``: ``a.qml`` is ``a.img``'s style).

An ENVI output is refused when ``<stem>.hdr`` exists but its data file does not: the header is another
file's (a header beside its own older data file is replaced).

Path-named sidecars (``<path>.aux.xml``, ``.ovr``, ``.msk``) belong to the output's own path.
"""

import os

from ..files.atomic import STEM_SIDECARS, check_target, stale_sidecars
from ..errors import DeepGUError
from ..files.formats import ENVI, RASTER_EXTENSIONS, raster_data_path

#: extensions of outputs that own ``<stem>.hdr`` as well (ENVI rasters and spectral libraries).
_ENVI_EXTENSIONS = {extension for extension, driver in RASTER_EXTENSIONS.items() if driver == ENVI} | {".sli"}
#: files that are sidecars, not datasets: a file of one of these extensions is no other dataset's.
_SIDECAR_EXTENSIONS = set(STEM_SIDECARS) | {".hdr"}


def _extension(path):
    return os.path.splitext(path)[1].lower()


def _files(path):
    """The files a path stands for: an ENVI raster (``x.hdr``, ``x.dat``, ``x.img``...) is its data file and header,
    an ENVI spectral library ``x.sli`` its data file and header."""
    stem, extension = os.path.splitext(path)
    if RASTER_EXTENSIONS.get(extension.lower()) == ENVI:
        return [raster_data_path(path), stem + ".hdr"]
    if extension.lower() == ".sli":
        return [path, stem + ".hdr"]
    return [path]


def _stem_files(path):
    """The sidecars named after ``path``'s stem that writing ``path`` writes or removes: a raster's style (and an
    ENVI raster's header), an ENVI library's header; none for a CSV, a model..."""
    extension = _extension(path)
    stem = os.path.splitext(path)[0]
    styles = [stem + sidecar for sidecar in STEM_SIDECARS] if extension in RASTER_EXTENSIONS else []
    return styles + ([stem + ".hdr"] if extension in _ENVI_EXTENSIONS else [])


def _sidecars(path):
    """Every sidecar writing the output ``path`` writes or removes beside its files."""
    extension = _extension(path)
    candidates = (stale_sidecars(raster_data_path(path)) if extension in RASTER_EXTENSIONS else []) + _stem_files(path)
    return [file for file in dict.fromkeys(candidates) if file not in _files(path)]


def _stems(path):
    """(folder, stem) keys of ``path``: as given and resolved (a symbolic link's sidecars are beside each)."""
    keys = set()
    for each in (os.path.abspath(path), os.path.realpath(path)):
        folder, name = os.path.split(each)
        keys.add((os.path.normcase(os.path.realpath(folder)), os.path.normcase(os.path.splitext(name)[0])))
    return keys


def _same_file(a, b):
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:     # one of them does not exist (yet)
        return False


def _same(a, b):
    return any(_same_file(x, y) for x in _files(a) for y in _files(b))


def _names(paths):
    return ", ".join(os.path.basename(path) for path in paths)


def _check_stems(inputs, outputs):
    """Refuse an output whose stem-named sidecars would be another file's too (see the module docstring)."""
    owners = [(name, path, "input") for name, path in inputs.items()]
    run_files = {os.path.realpath(file) for path in outputs.values() for file in _files(path) + _sidecars(path)}
    for name, path in outputs.items():
        owned = _stem_files(path)
        header = [file for file in owned if file.endswith(".hdr")]
        if header and os.path.lexists(header[0]) and not os.path.lexists(_files(path)[0]):
            raise DeepGUError("%s '%s' would replace the ENVI header '%s', which is not an older %s's: choose "
                              "another name for %s" % (name, path, header[0], name, name))
        styles = [file for file in owned if file.endswith(STEM_SIDECARS)]
        if not styles:
            continue
        stems = _stems(path)
        for other, other_path, role in owners:
            if stems & _stems(other_path):
                raise DeepGUError("%s '%s' has the name of the %s %s '%s' (without extension): its sidecars (%s) "
                                  "would be %s's too; choose another name for %s"
                                  % (name, path, role, other, other_path, _names(owned), other, name))
        owners.append((name, path, "output"))
        folder, stem = os.path.split(os.path.splitext(os.path.abspath(path))[0])
        with os.scandir(folder) as entries:
            for entry in entries:
                base, extension = os.path.splitext(entry.name)
                if (os.path.normcase(base) == os.path.normcase(stem) and not entry.is_dir()
                        and extension.lower() not in _SIDECAR_EXTENSIONS
                        and os.path.realpath(entry.path) not in run_files):
                    raise DeepGUError("%s '%s' has the name of the existing file '%s' (without extension): its "
                                      "sidecars (%s) would replace that file's; choose another name for %s"
                                      % (name, path, entry.path, _names(owned), name))


def check_paths(inputs, outputs):
    """``inputs``, ``outputs``: dicts parameter name -> path (None/"" = not given). Raise :class:`DeepGUError`
    naming both parameters when an output is an input or another output, or would own one's sidecars, or
    naming the output when it cannot be written (with its sidecars)."""
    inputs = {name: path for name, path in inputs.items() if path}
    outputs = {name: path for name, path in outputs.items() if path}
    seen = list(inputs.items())
    for name, path in outputs.items():
        for other, other_path in seen:
            if _same(path, other_path):
                role = "input" if other in inputs else "output"
                raise DeepGUError("%s '%s' is the same file as the %s %s: choose another path for %s"
                                  % (name, path, role, other, name))
        for file in _files(path):
            check_target(file, name, _sidecars(path) if file == _files(path)[0] else ())
        seen.append((name, path))
    _check_stems(inputs, outputs)
