"""DeepGU core: the numerics of the plugin, free of QGIS.

Arrays follow one convention throughout: an image is ``(bands, rows, cols)``;
a set of pixels is ``(bands, pixels)``; endmembers are ``(bands, materials)``;
abundances are ``(materials, pixels)`` or ``(materials, rows, cols)``.
"""
