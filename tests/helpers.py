"""Helpers shared by the tests: a recording feedback and qgis_process runners."""

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
