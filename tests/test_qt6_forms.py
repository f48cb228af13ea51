"""No Qt5-only form in the plugin's Python sources (QGIS 4 builds on Qt6 reject them).

The rules are those of QGIS's own migration script (``scripts/pyqt5_to_pyqt6/pyqt5_to_pyqt6.py`` in QGIS's
repository) that can apply to this plugin, on the syntax tree of each file:

- imports come from ``qgis.PyQt``, never ``PyQt5``/``PyQt6``/``sip`` directly; no ``QRegExp``, no ``resources_rc``;
- ``exec_`` (called or defined) is ``exec`` in Qt6;
- ``QVariant.<X>`` (type constants) is ``QMetaType.Type.<X>``; ``QVariant()`` is ``NULL``; ``qApp`` is
  ``QApplication.instance()``;
- enum members renamed in Qt6 (``Qt.MidButton`` ...);
- an enum member read from its class (``QgsProcessingParameterNumber.Double``) instead of from its enum
  (``QgsProcessingParameterNumber.Type.Double``): the script finds these among every Qt and QGIS class; here
  every ``Name.attribute`` whose name is a class of ``qgis.core``, ``qgis.gui`` or ``qgis.PyQt``'s QtCore, QtGui
  and QtWidgets and whose attribute is an enum member there, with that enum reachable from the class.
"""

import ast
import os

import pytest

from conftest import ROOT, require_qgis

#: Qt5 enum members that Qt6 renamed (the script's ``deprecated_renamed_enums``).
RENAMED = {("Qt", "MidButton"): "Qt.MouseButton.MiddleButton",
           ("Qt", "TextColorRole"): "Qt.ItemDataRole.ForegroundRole",
           ("Qt", "BackgroundColorRole"): "Qt.ItemDataRole.BackgroundRole",
           ("QPainter", "HighQualityAntialiasing"): "QPainter.RenderHint.Antialiasing"}
#: folders whose Python files are not the plugin's or its tools' (virtual environments, builds).
SKIP = {".venv", "dist", "__pycache__", ".git"}


def qt_classes():
    """Name -> class of every class in the Qt and QGIS modules the plugin imports from."""
    require_qgis()
    import qgis.core
    import qgis.gui
    from qgis.PyQt import QtCore, QtGui, QtWidgets

    return {name: value for module in (QtCore, QtGui, QtWidgets, qgis.core, qgis.gui)
            for name, value in vars(module).items() if isinstance(value, type)}


def _is_enum_member(value):
    """A member of a sip (PyQt5) or Python (PyQt6) enum."""
    return type(type(value)).__name__ in ("enumtype", "EnumType", "EnumMeta")


def _scoped(classes, owner, member):
    """``Owner.Enum.member`` when ``owner.member`` is an enum member whose enum is reachable from the class
    (the form Qt6 needs); None when it is not an enum member, or 3.22 offers no scoped form."""
    cls = classes.get(owner)
    value = getattr(cls, member, None) if cls is not None else None
    if value is None or isinstance(value, type) or not _is_enum_member(value):
        return None
    enum = type(value)
    for name in dir(cls):
        if getattr(cls, name, None) is enum:
            return "%s.%s.%s" % (owner, name, member)
    return None


def qt5_forms(source, classes, filename="<source>"):
    """``(line, message)`` for every Qt5-only form in the Python ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for module in modules:
                if module.split(".")[0] in ("PyQt5", "PyQt6", "sip"):
                    found.append((node.lineno, "import %s: import from qgis.PyQt instead" % module))
            for alias in node.names if isinstance(node, ast.ImportFrom) else ():
                if alias.name in ("QRegExp", "resources_rc"):
                    found.append((node.lineno, "%s does not exist in Qt6" % alias.name))
        elif isinstance(node, ast.FunctionDef) and node.name == "exec_":
            found.append((node.lineno, "def exec_: exec in Qt6"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "QVariant":
            found.append((node.lineno, "QVariant(...): NULL (qgis.core) in Qt6"))
        elif isinstance(node, ast.Name) and node.id == "qApp":
            found.append((node.lineno, "qApp: QApplication.instance() in Qt6"))
        elif isinstance(node, ast.Attribute):
            if node.attr == "exec_":
                found.append((node.lineno, ".exec_: .exec in Qt6"))
            if not isinstance(node.value, ast.Name):
                continue
            owner, member = node.value.id, node.attr
            if owner == "QVariant":
                found.append((node.lineno, "QVariant.%s: QMetaType.Type in Qt6 (algorithms/compat.py)" % member))
            elif (owner, member) in RENAMED:
                found.append((node.lineno, "%s.%s: %s in Qt6" % (owner, member, RENAMED[owner, member])))
            else:
                scoped = _scoped(classes, owner, member)
                if scoped:
                    found.append((node.lineno, "%s.%s: unscoped enum, %s (or algorithms/compat.py)"
                                  % (owner, member, scoped)))
    return found


def plugin_sources():
    """Every Python file of the repository: the plugin, its scripts, benchmarks and tests."""
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = sorted(s for s in subfolders if s not in SKIP)
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)


PLANTED = '''
from PyQt5.QtCore import QRegExp
import sip
from qgis.core import QgsField, QgsProcessing, QgsProcessingParameterNumber, QgsProcessingParameterDefinition, Qgis
from qgis.PyQt.QtCore import Qt, QVariant
field = QgsField("name", QVariant.String)
kind = QgsProcessingParameterNumber.Double
flag = QgsProcessingParameterDefinition.FlagAdvanced
points = QgsProcessing.TypeVectorPoint
level = Qgis.Warning
button = Qt.MidButton
align = Qt.AlignLeft
nothing = QVariant()
dialog.exec_()
app = qApp
def exec_(self):
    pass
'''
#: the Qt5 forms of PLANTED: line -> the start of its message.
PLANTED_FORMS = {2: "import PyQt5.QtCore", 3: "import sip", 6: "QVariant.String",
                 7: "QgsProcessingParameterNumber.Double",
                 8: "QgsProcessingParameterDefinition.FlagAdvanced", 9: "QgsProcessing.TypeVectorPoint",
                 10: "Qgis.Warning", 11: "Qt.MidButton", 12: "Qt.AlignLeft", 13: "QVariant(", 14: ".exec_",
                 15: "qApp", 16: "def exec_"}
SCOPED = '''
from qgis.core import Qgis, QgsProcessing, QgsProcessingParameterNumber, QgsProcessingParameterDefinition
from qgis.PyQt.QtCore import QMetaType, Qt
kind = QgsProcessingParameterNumber.Type.Double
flag = QgsProcessingParameterDefinition.Flag.FlagAdvanced
points = QgsProcessing.SourceType.TypeVectorPoint
level = Qgis.MessageLevel.Warning
align = Qt.AlignmentFlag.AlignLeft
string = QMetaType.Type.QString
output = QgsProcessing.TEMPORARY_OUTPUT
kind_type = QgsProcessingParameterNumber.Type
dialog.exec()
'''


def test_the_scanner_finds_every_planted_qt5_form():
    found = qt5_forms(PLANTED, qt_classes())
    lines = {}
    for line, message in found:
        lines.setdefault(line, []).append(message)
    assert sorted(lines) == sorted(PLANTED_FORMS), found
    for line, start in PLANTED_FORMS.items():
        assert any(message.startswith(start) for message in lines[line]), (line, lines[line])
    assert any("QRegExp" in message for message in lines[2])
    assert any("QgsProcessingParameterNumber.Type.Double" in message for message in lines[7])


def test_the_scanner_accepts_scoped_forms():
    assert qt5_forms(SCOPED, qt_classes()) == []


def test_no_qt5_form_in_the_plugin():
    classes = qt_classes()
    sources = list(plugin_sources())
    assert os.path.join(ROOT, "algorithms", "base.py") in sources and os.path.join(ROOT, "provider.py") in sources
    problems = []
    for path in sources:
        with open(path, encoding="utf-8") as f:
            problems += ["%s:%d: %s" % (os.path.relpath(path, ROOT), line, message)
                         for line, message in qt5_forms(f.read(), classes, path)]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("key", ["qgisMinimumVersion", "qgisMaximumVersion"])
def test_metadata_allows_qgis_3_22_to_4(key):
    import configparser

    metadata = configparser.ConfigParser()
    metadata.read(os.path.join(ROOT, "metadata.txt"))
    assert metadata["general"][key] == {"qgisMinimumVersion": "3.22", "qgisMaximumVersion": "4.99"}[key]
