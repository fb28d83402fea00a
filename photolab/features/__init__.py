"""photolab.features: what photolab computes from pixels and files, shared by the stages.

``imaging`` (one decode at reduced scale, quality and colour measures), ``backbone`` (the image model,
its per-user cache and engines), ``starter`` (the shipped tag head), ``things`` (ImageNet classes as
English nouns), ``exif``, ``media`` and ``video`` (what a file is and what it says), ``cluster`` (the
pixel work on a Dask cluster).
"""
