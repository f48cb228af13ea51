"""DeepGU core: the numerics of the plugin, free of QGIS.

Arrays follow one convention throughout: an image is ``(bands, rows, cols)``;
a set of pixels is ``(bands, pixels)``; endmembers are ``(bands, materials)``;
abundances are ``(materials, pixels)`` or ``(materials, rows, cols)``.

Rooms by role (each imports only rooms below it): ``jobs`` (file-to-file steps), ``pipeline``
(the whole method in memory), ``extraction`` (references, bundles), ``solvers`` (FCLS, DeepGU's
steps, ELMM/GLMM/PLMM), ``models`` (the VAEs and their file), ``evaluation`` (synthetic scenes,
metrics), ``checks`` (between files), ``files`` (rasters, libraries, atomic output), ``running``
(tiles, threads, clusters); ``defaults``, ``errors``, ``feedback``, ``validation`` and
``dependencies`` underneath all.
"""
