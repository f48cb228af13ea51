"""Helpers shared by the tests: a recording feedback, qgis_process runners and a small scene with its model."""

import json

from core.feedback import Feedback


class Recorder(Feedback):
    """Records progress, messages and how many cancellation checks were made (``checks``); cancels once
    ``cancel_after`` reports of the kind ``counting`` (``"progress"``, ``"messages"`` or ``"checks"``) have
    arrived (``cancel_after=0``: canceled from the start)."""

    def __init__(self, cancel_after=None, counting="progress"):
        self.messages, self.progress, self.checks = [], [], 0
        self.cancel_after, self.counting = cancel_after, counting

    def info(self, message):
        self.messages.append(message)

    def set_progress(self, percent):
        self.progress.append(percent)

    def is_canceled(self):
        reports = self.checks if self.counting == "checks" else len(getattr(self, self.counting))
        self.checks += 1
        return self.cancel_after is not None and reports >= self.cancel_after


def run_json(qgis_process, algorithm, **parameters):
    """Run an algorithm, assert success and return its JSON results."""
    done = qgis_process("run", algorithm, "--json", "--", *["%s=%s" % kv for kv in parameters.items()])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout[done.stdout.index("{"):])["results"]


def run_fails(qgis_process, algorithm, **parameters):
    """Run an algorithm expected to fail; return its combined output."""
    done = qgis_process.run(algorithm, **parameters)
    assert done.returncode != 0, done.stdout[-2000:]
    return done.stdout + done.stderr


def scene_and_model(folder, side, seed, epochs, library=None):
    """A ``side`` x ``side`` DC2 scene written to ``folder/scene.tif`` and a VAE model trained on the 30 pixels
    most abundant in each of its 3 materials, saved to ``folder/model.pt``.

    ``library``: as :func:`core.evaluation.synthetic.make_scene` takes it. Torch runs on one thread from here on (the
    models are tiny). Returns ``(scene, image path, model path)``.
    """
    import numpy as np
    import torch

    from core.models.model_file import save_model
    from core.files.raster_io import georeference, write_raster
    from core.evaluation.synthetic import make_scene
    from core.models.vae import train_endmember_model

    torch.set_num_threads(1)
    scene = make_scene("DC2", side, side, seed=seed, library=library)
    image = str(folder / "scene.tif")
    write_raster(image, scene.image, georeference(side, side), wavelengths=scene.wavelengths)
    A = scene.abundances.reshape(3, -1)
    Y = scene.image.reshape(scene.image.shape[0], -1)
    bundles = [Y[:, np.argsort(-A[p])[:30]] for p in range(3)]
    model = str(folder / "model.pt")
    save_model(train_endmember_model(bundles, scene.reference, scene.names, wavelengths=scene.wavelengths,
                                     epochs=epochs), model)
    return scene, image, model


def processing_script(body):
    """A Python program for a subprocess: ``body`` after qgis.core's application and Processing are started and the
    plugin is loaded as QGIS loads it (package ``deepgu``, ``classFactory(None)``, ``initProcessing``); ``sys``,
    ``QgsApplication``, ``processing`` and ``deepgu`` are imported."""
    import os

    from conftest import ROOT

    return """
import sys
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
sys.path.insert(0, '/usr/share/qgis/python/plugins')
from processing.core.Processing import Processing
Processing.initialize()
import importlib.util
spec = importlib.util.spec_from_file_location('deepgu', %r, submodule_search_locations=[%r])
deepgu = importlib.util.module_from_spec(spec); sys.modules['deepgu'] = deepgu; spec.loader.exec_module(deepgu)
plugin = deepgu.classFactory(None); plugin.initProcessing()
import processing
""" % (os.path.join(ROOT, "__init__.py"), ROOT) + body
