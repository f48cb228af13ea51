"""The plugin object: registers the Processing provider; in the desktop, says which Python packages are missing."""

from qgis.core import QgsApplication, QgsMessageLog

from .core.dependencies import INSTALLER, PACKAGES, missing
from .provider import DeepGUProvider


class DeepGUPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None

    def initProcessing(self):
        """Register the provider; qgis_process calls this without a GUI."""
        self.provider = DeepGUProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)
        # The workflow model finds its steps through the registry, which knows the provider only
        # once it is added: load the algorithms again now that it is.
        self.provider.refreshAlgorithms()

    def initGui(self):
        self.initProcessing()
        try:
            self.report_missing(missing())
        except Exception as error:  # a message that cannot be shown must not stop the plugin loading
            QgsMessageLog.logMessage("DeepGU: could not report missing packages: %r" % error, "DeepGU")

    def report_missing(self, names):
        """One message bar naming the missing packages ``names``, with a button that opens the installer."""
        if not names:
            return
        from qgis.PyQt.QtWidgets import QPushButton

        from .algorithms import compat

        bar = self.iface.messageBar()
        message = bar.createMessage("DeepGU", "QGIS's Python lacks %s."
                                    % "; ".join("%s (for %s)" % PACKAGES[name] for name in names))
        button = QPushButton("Install dependencies…", message)
        button.clicked.connect(self.open_installer)
        message.layout().addWidget(button)
        bar.pushWidget(message, compat.MESSAGE_WARNING)

    def open_installer(self):
        import processing

        processing.execAlgorithmDialog(INSTALLER, {})

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
