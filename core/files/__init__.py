"""Files: rasters read and written block by block, spectral libraries, and all-or-nothing output."""
