"""QGIS entry point of the DeepGU plugin."""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    """Called by QGIS (and qgis_process, with iface None) to create the plugin."""
    from .plugin import DeepGUPlugin

    return DeepGUPlugin(iface)
