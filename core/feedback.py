"""Progress, logging and cancellation, without QGIS.

Core functions take an optional ``feedback`` object with this small interface
(a QGIS adapter lives in ``algorithms/base.py``; :class:`ConsoleFeedback`
draws a progress bar on a terminal):

- ``set_progress(percent)``  float in [0, 100]
- ``is_canceled()``          True once the user asked to stop
- ``info(message)``          one line of log
"""

import sys

from .errors import Canceled


class Feedback:
    """Silent feedback: never canceled, logs nothing. Base class for adapters."""

    def set_progress(self, percent):
        pass

    def is_canceled(self):
        return False

    def info(self, message):
        pass

    def check_canceled(self):
        """Raise :class:`Canceled` if the user asked to stop."""
        if self.is_canceled():
            raise Canceled("canceled by the user")


class ConsoleFeedback(Feedback):
    """A text progress bar on stderr and log lines on stdout."""

    def __init__(self, stream=None, width=40):
        self.stream = stream or sys.stderr
        self.width = width
        self._last = -1

    def set_progress(self, percent):
        step = int(percent)
        if step == self._last:
            return
        self._last = step
        filled = int(self.width * min(max(percent, 0.0), 100.0) / 100.0)
        self.stream.write("\r[%s%s] %3d%%" % ("#" * filled, "." * (self.width - filled), step))
        if step >= 100:
            self.stream.write("\n")
        self.stream.flush()

    def info(self, message):
        print(message, flush=True)


class SubFeedback(Feedback):
    """Maps progress of a sub-step onto ``[start, stop]`` percent of a parent feedback."""

    def __init__(self, parent, start, stop):
        self.parent = parent or Feedback()
        self.start = start
        self.stop = stop

    def set_progress(self, percent):
        self.parent.set_progress(self.start + (self.stop - self.start) * percent / 100.0)

    def is_canceled(self):
        return self.parent.is_canceled()

    def info(self, message):
        self.parent.info(message)


def ensure(feedback):
    """Return ``feedback`` or a silent :class:`Feedback` when it is None."""
    return feedback if feedback is not None else Feedback()
