"""What the command lines of the jobs share (``python -m core.jobs.unmix``, ``python -m core.jobs.fcls``).

Bad input ends in one line ``error: ...`` and exit status 2, a Ctrl-C in ``canceled: ...`` and
status 130; neither leaves an output behind (the jobs write atomically).
"""

import sys

from ..errors import Canceled, DeepGUError
from ..feedback import ConsoleFeedback


def add_common_arguments(parser, defaults):
    """MEMORY_MB and CLUSTER, as the algorithms' advanced parameters, with their ``defaults`` (e.g.
    :data:`core.defaults.UNMIX`)."""
    parser.add_argument("--memory-mb", type=int, default=defaults["MEMORY_MB"],
                        help="working memory per block or tile, MB (%d)" % defaults["MEMORY_MB"])
    parser.add_argument("--cluster", default=defaults["CLUSTER"],
                        help="empty: this process; local:N: N worker processes on this machine; "
                             "tcp://host:port: an existing Dask scheduler")


def run_command(parser, argv, job):
    """Parse ``argv`` and call ``job(args, feedback)`` with a console progress bar; returns the exit status."""
    args = parser.parse_args(argv)
    try:
        job(args, ConsoleFeedback())
    except DeepGUError as error:
        print("error: %s" % error, file=sys.stderr)
        return 2
    except (Canceled, KeyboardInterrupt):
        print("canceled: no output was written", file=sys.stderr)
        return 130
    return 0
