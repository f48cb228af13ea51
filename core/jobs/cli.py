"""What the command lines of the jobs share (``python -m core.jobs.unmix``, ``python -m core.jobs.fcls``).

Bad input ends in one line ``error: ...`` and exit status 2, a Ctrl-C in ``canceled: ...`` and
status 130; neither leaves an output behind (the jobs write atomically).
"""

import argparse
import sys

from ..errors import Canceled, DeepGUError
from ..feedback import ConsoleFeedback
from ..files.raster_io import open_raster
from ..files.window import extent_window


def job_parser(description, positionals):
    """An argument parser for a job: ``positionals`` are ``(NAME, help)`` pairs (INPUT first), read as
    ``args.name``."""
    parser = argparse.ArgumentParser(description=description)
    for name, text in positionals:
        parser.add_argument(name.lower(), metavar=name, help=text)
    return parser


def window(args):
    """The pixel window of INPUT that ``--extent`` covers (:func:`core.files.window.extent_window`), or None."""
    if args.extent is None:
        return None
    info = open_raster(args.input, "INPUT")
    return extent_window(info.transform, info.rows, info.cols, args.extent, "--extent")


def add_common_arguments(parser, defaults):
    """EXTENT, MEMORY_MB and CLUSTER, as the algorithms' parameters, with their ``defaults`` (e.g.
    :data:`core.defaults.UNMIX`)."""
    parser.add_argument("--extent", type=float, nargs=4, metavar=("XMIN", "YMIN", "XMAX", "YMAX"),
                        help="process only the pixels covering this extent, in INPUT's CRS (default: all of INPUT)")
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
