"""The rooms of core/ (docs/design.md, "Layout") import only rooms below them, and the core never imports QGIS.

Order, top to bottom: jobs, pipeline, extraction, solvers, models, evaluation, checks, files, running, then the
top-level modules every room stands on (defaults, errors, feedback, validation, dependencies). Read from the
source text (every relative import resolved to its room), so a new module in the wrong room fails here.
"""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORDER = ["jobs", "pipeline", "extraction", "solvers", "models", "evaluation", "checks", "files", "running", "ground"]
RELATIVE_IMPORT = re.compile(r"^\s*from (\.+)([\w.]*) import ", re.M)


def _room(parts):
    """The room of a module given as path parts below the plugin root, e.g. ('core', 'solvers', 'fcls')."""
    if len(parts) >= 3:
        return parts[1]
    return "pipeline" if parts[1] == "pipeline" else "ground"


def _core_modules():
    for top, _, names in os.walk(os.path.join(ROOT, "core")):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(top, name)
                yield path, tuple(os.path.relpath(path, ROOT)[:-3].split(os.sep))


def test_every_room_is_known():
    rooms = {_room(parts) for _, parts in _core_modules()}
    assert rooms <= set(ORDER), rooms - set(ORDER)


def test_no_room_imports_a_room_above_it():
    upward = []
    for path, parts in _core_modules():
        package = list(parts[:-1])
        source = open(path, encoding="utf-8").read()
        for match in RELATIVE_IMPORT.finditer(source):
            dots, name = match.group(1), match.group(2)
            target = package[:len(package) - (len(dots) - 1)] + (name.split(".") if name else [])
            if len(target) < 2 or target[0] != "core":
                continue
            room, their = _room(parts), _room(tuple(target) + ("x",) if len(target) == 2 and target[1] in ORDER
                                               else tuple(target))
            if room != their and ORDER.index(their) < ORDER.index(room):
                upward.append("%s imports %s" % (os.path.relpath(path, ROOT), ".".join(target)))
    assert not upward, upward


def test_the_core_never_imports_qgis():
    offenders = [os.path.relpath(path, ROOT) for path, _ in _core_modules()
                 if re.search(r"^\s*(import qgis|from qgis)", open(path, encoding="utf-8").read(), re.M)]
    assert not offenders, offenders
