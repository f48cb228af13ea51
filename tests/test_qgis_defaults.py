"""One source of truth: every deepgu algorithm's parameter defaults are core/defaults.py's, and its help says so."""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from core import defaults

#: what the plugin's algorithms look like inside QGIS: per algorithm, its help, and per parameter its default,
#: whether it is a destination and (enums) the choice names behind its options.
DUMP = """
import json, sys
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
sys.path.insert(0, sys.argv[1])
from build_workflow_model import load_plugin
plugin = load_plugin()
provider = QgsApplication.processingRegistry().providerById("deepgu")
print(json.dumps({a.name(): {"help": a.shortHelpString(), "parameters": {d.name(): {
    "default": d.defaultValue(), "destination": d.isDestination(), "label": d.description(),
    "choices": d.metadata().get("deepgu_choices", d.options()) if d.type() == "enum" else None}
    for d in a.parameterDefinitions()}} for a in provider.algorithms()}))
"""
CHOICE_LISTS = {defaults.SCENE_KINDS, defaults.ENDMEMBER_METHODS, defaults.BUNDLE_METHODS, defaults.LOSSES,
                defaults.TV_KINDS, defaults.BRIGHTNESS_KINDS, defaults.DEVICES}


@pytest.fixture(scope="module")
def algorithms(qgis_process, tmp_path_factory):
    env = dict(qgis_process.env, QGIS_CUSTOM_CONFIG_PATH=str(tmp_path_factory.mktemp("config")))
    done = subprocess.run([sys.executable, "-c", DUMP, os.path.join(ROOT, "scripts")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout[done.stdout.index("{"):])


def _shown(value):
    """How a default reads in the help: numbers as written (0.001, 0.333333, 30), None 'auto', '' 'empty'."""
    if value is None:
        return "auto"
    if value == "":
        return "empty"
    return ("%g" % value) if isinstance(value, float) else str(value)


def _entry(text, key, label):
    """The help of one parameter: the line ``KEY (notes): ...`` of the algorithms' help, or the paragraph under the
    parameter's label in a model's HTML help."""
    line = re.search(r"^%s( \([a-z, ]+\))?: .*$" % key, text, re.MULTILINE)
    if line:
        return line.group(0)
    html = re.search(r"<h3>%s</h3>\s*<p>(.*?)</p>" % re.escape(label), text, re.DOTALL)
    assert html, "no help for %s" % key
    return html.group(1)


def test_every_algorithm_has_a_defaults_table(algorithms):
    assert sorted(algorithms) == sorted(defaults.ALGORITHMS)


@pytest.mark.parametrize("name", sorted(defaults.ALGORITHMS))
def test_parameter_defaults_are_those_of_core_defaults(algorithms, name):
    parameters, table = algorithms[name]["parameters"], defaults.ALGORITHMS[name]
    for key, expected in table.items():
        assert key in parameters, "%s: no parameter %s" % (name, key)
        parameter = parameters[key]
        if parameter["choices"] is not None:        # an enum: its options are a core choice list, default by name
            assert tuple(parameter["choices"]) in CHOICE_LISTS, (name, key, parameter["choices"])
            assert parameter["choices"][parameter["default"]] == expected, (name, key)
        else:
            assert parameter["default"] == expected, (name, key, parameter["default"], expected)
    # and no default is set anywhere else: every input that has one is in the table
    others = [key for key, parameter in parameters.items()
              if not parameter["destination"] and parameter["default"] is not None and key not in table]
    assert others == [], "%s: defaults not in core/defaults.py: %s" % (name, others)


@pytest.mark.parametrize("name", sorted(defaults.ALGORITHMS))
def test_help_states_every_default(algorithms, name):
    text, parameters = algorithms[name]["help"], algorithms[name]["parameters"]
    for key, value in defaults.ALGORITHMS[name].items():
        assert _entry(text, key, parameters[key]["label"]).endswith("Default: %s." % _shown(value)), (name, key)


def test_unmix_offers_every_tv_kind_of_the_core(algorithms):
    from core.solvers.astep import TV_KINDS
    assert algorithms["unmix"]["parameters"]["TV"]["choices"] == list(TV_KINDS) == ["anisotropic", "isotropic", "group"]
