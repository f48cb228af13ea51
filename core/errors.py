"""Errors the core raises on purpose.

Every problem caused by the user's input (file, parameter, model) is a
:class:`DeepGUError` whose message names the problem in one line; the QGIS
layer turns it into a ``QgsProcessingException`` and the command line prints it
without a traceback.
"""


class DeepGUError(ValueError):
    """Bad input: the message says what is wrong and, where possible, how to fix it."""


class Canceled(RuntimeError):
    """The user canceled the run; whatever was being written has been removed."""
