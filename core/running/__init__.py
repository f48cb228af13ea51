"""Running in tiles, on threads of this process, and on a Dask cluster."""
