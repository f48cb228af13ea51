"""What the command lines of the jobs share (``python -m core.jobs.unmix``, ``python -m core.jobs.fcls``).

Bad input ends in one line ``error: ...`` and exit status 2, a Ctrl-C in ``canceled: ...`` and
status 130; neither leaves an output behind (the jobs write atomically).
"""

import argparse
import sys

from ..errors import Canceled, DeepGUError
from ..feedback import ConsoleFeedback


def job_parser(description, operand, operand_help):
    """A parser for ``INPUT OPERAND OUTPUT``: the hyperspectral image, the job's second input, the abundance raster."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("input", metavar="INPUT", help="hyperspectral image")
    parser.add_argument(operand.lower(), metavar=operand, help=operand_help)
    parser.add_argument("output", metavar="OUTPUT", help="abundance raster to write")
    return parser


def add_common_arguments(parser, memory_mb):
    """MEMORY_MB and CLUSTER, as the algorithms' advanced parameters."""
    parser.add_argument("--memory-mb", type=int, default=memory_mb,
                        help="working memory per block or tile, MB (%d)" % memory_mb)
    parser.add_argument("--cluster", default="",
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
