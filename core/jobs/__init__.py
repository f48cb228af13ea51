"""File-to-file steps: what a Processing algorithm or the command line runs.

Each module has one ``run(...)`` that reads rasters/libraries, calls the
numerics in ``core`` block by block, and writes its outputs atomically.
"""
