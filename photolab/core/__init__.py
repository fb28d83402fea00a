"""photolab.core: what every stage stands on.

``library`` (open or create a library), ``fileops`` (every move, rewrite and removal: planned,
journaled, atomic, undoable), ``backup`` (snapshots before bulk changes), ``errors`` (the
:class:`~photolab.core.errors.PhotolabError` base), ``taxonomy`` (the tags file), ``names`` (file names
as bytes), ``privacy`` (telemetry off, offline hubs), ``health`` and ``repair`` (``photolab check`` /
``repair``). The catalog's schema and every SQL query live in :mod:`photolab.store`.
"""
