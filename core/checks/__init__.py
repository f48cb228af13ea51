"""Checks between files: no aliasing of inputs and outputs, companion grids, units that agree."""
