"""QGIS entry point of the DeepGU plugin."""


def classFactory(iface):
    """Called by QGIS (and qgis_process, with iface None) to create the plugin.

    First puts ``<QGIS profile>/python/dependencies`` (where deepgu:install_dependencies installs) on Python's
    path, before anything imports scipy, torch or dask."""
    from qgis.core import QgsApplication

    from .core.dependencies import add_to_path, dependencies_folder

    add_to_path(dependencies_folder(QgsApplication.qgisSettingsDirPath()))
    from .plugin import DeepGUPlugin

    return DeepGUPlugin(iface)
