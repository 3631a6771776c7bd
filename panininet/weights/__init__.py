"""Weight files in: one reader, the converters of official, GPEN and GFPGAN files, releases and their download.

A weights file travels one way: :mod:`~panininet.weights.releases` finds (or downloads) the file,
:mod:`~panininet.weights.checkpoint` reads it, a converter (:mod:`~panininet.weights.official`,
:mod:`~panininet.weights.gpen_checkpoint`) renames its keys, and a family or arch loads the result.
"""
from panininet._old_paths import old_names_getattr

__getattr__ = old_names_getattr(__name__)  # 0.1.0's panininet.weights module: its names, for one release
