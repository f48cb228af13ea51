"""Put first on PYTHONPATH by tests/test_dependencies.py: the packages named in DEEPGU_HIDE (comma-separated)
become unimportable for this Python, as if they were not installed (their finder raises ModuleNotFoundError, so
``importlib.util.find_spec`` does not find them either)."""

import os
import sys


class HidePackages:
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError("No module named '%s'" % name, name=name)
        return None


HIDDEN = {name for name in os.environ.get("DEEPGU_HIDE", "").split(",") if name}
if HIDDEN:
    sys.meta_path.insert(0, HidePackages(HIDDEN))
