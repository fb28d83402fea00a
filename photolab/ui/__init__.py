"""photolab.ui: what the notebooks show; thin classes and functions over the stages.

``widgets`` (review grid, threshold tuner, duplicate review, face namer, apply button),
``find_widget``, ``plots`` (charts, timeline, map, galleries) and ``notebook`` (``photolab.prepare``, the
set-up cells' helpers, one-line errors).
"""
