"""QGIS entry point of the DeepGU plugin."""


def classFactory(iface):
    """Called by QGIS (and qgis_process, with iface None) to create the plugin."""
    from .plugin import DeepGUPlugin

    return DeepGUPlugin(iface)
