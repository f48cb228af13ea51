"""Print one line naming the stack the tests run on: Debian release, QGIS, Qt, Python, GDAL, numpy, scipy, torch.

Run by scripts/run_tests.sh with the Python of the tests, so the log of every stack (.ci/run) says what it tested.
"""

import platform


def version(module):
    try:
        return __import__(module).__version__
    except ImportError:
        return "missing"


def main():
    from osgeo import gdal
    from qgis.core import Qgis
    from qgis.PyQt.QtCore import QT_VERSION_STR
    try:
        with open("/etc/debian_version") as f:
            system = "Debian " + f.read().strip()
    except OSError:
        system = platform.platform()
    print("[stack] %s, QGIS %s, Qt %s, Python %s, GDAL %s, numpy %s, scipy %s, torch %s" % (
        system, Qgis.QGIS_VERSION, QT_VERSION_STR, platform.python_version(), gdal.__version__, version("numpy"),
        version("scipy"), version("torch")))


if __name__ == "__main__":
    main()
