"""Run inside the QGIS desktop (``qgis --code``) by tests/test_desktop.py: inspect the toolbox, open the
deepgu:unmix dialog, save screenshots and a JSON report to $DEEPGU_DESKTOP_OUT, then quit."""

import json
import os

from qgis.core import QgsApplication
from qgis.gui import QgsProcessingToolboxTreeView
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QDockWidget
from qgis.utils import iface

OUT = os.environ["DEEPGU_DESKTOP_OUT"]


def toolbox_entries(tree):
    """Display texts of the leaves under the toolbox's 'DeepGU' provider node (expanded on screen)."""
    model = tree.model()

    def leaves(index):
        tree.expand(index)
        children = [model.index(row, 0, index) for row in range(model.rowCount(index))]
        return [index.data()] if not children else [text for child in children for text in leaves(child)]

    for row in range(model.rowCount()):
        provider = model.index(row, 0)
        if provider.data() == "DeepGU":
            return leaves(provider)
    return []


def check():
    report = {}
    try:
        import processing

        provider = QgsApplication.processingRegistry().providerById("deepgu")
        report["algorithms"] = sorted(a.id() for a in provider.algorithms()) if provider else []
        dock = iface.mainWindow().findChild(QDockWidget, "ProcessingToolbox")
        dock.show()
        report["toolbox"] = toolbox_entries(dock.findChild(QgsProcessingToolboxTreeView))
        QApplication.processEvents()
        iface.mainWindow().grab().save(os.path.join(OUT, "desktop.png"))
        dialog = processing.createAlgorithmDialog("deepgu:unmix")
        dialog.show()
        QApplication.processEvents()
        report["dialog_title"] = dialog.windowTitle()
        dialog.grab().save(os.path.join(OUT, "unmix_dialog.png"))
    except Exception as error:  # reported to the test, which fails with it
        report["error"] = repr(error)
    with open(os.path.join(OUT, "report.json"), "w") as f:
        json.dump(report, f)
    os._exit(0)


QTimer.singleShot(3000, check)
