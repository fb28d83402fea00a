"""Plan, then apply: what a stage would change, as data, before anything changes.

A stage that moves files or changes what a person decided (organize, dedupe, events, writing
metadata, confirming places and faces) first returns a :class:`Plan`: its ``rows`` (a DataFrame, one row per file or
item it would change), what it leaves as it is and why (``kept``), how many items it could not
check (``unchecked``), and a line saying what applying it does (``why``). Making a plan writes
nothing, neither the catalog nor a file: a dry run is just the plan. :func:`apply` (or the stage's
own ``apply``) carries it out, journaled where files move.

For code written against the DataFrames the stages returned before, a plan answers ``len(plan)``,
``plan["column"]``, iteration and the DataFrame's methods through its ``rows``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any

#: stage -> the module whose ``apply(plan)`` carries its plans out
APPLIERS = {
    "organize": "photolab.organize",
    "dedupe": "photolab.dedupe",
    "events": "photolab.events",
    "places": "photolab.places",
    "faces": "photolab.faces",
    "metadata": "photolab.metadata",
}


@dataclass(eq=False)
class Plan:
    """What a stage would do; making it changed nothing (see the module text).

    Attributes:
        stage: the stage that made it (a key of :data:`APPLIERS`).
        rows: one row per file or item the stage would change (its columns are the stage's).
        kept: ``(path, reason)`` of what the stage leaves where and as it is, for a reason (a photo id
            instead of the path where the item has no file, e.g. a photo asked about that has no place).
        unchecked: how many items the stage could not check (e.g. photos without features yet).
        why: what applying the plan does, in words.
        library: the library it was made for (``apply(plan)`` needs no other argument).
        events: organize: the events grouped in memory for the plan; its apply stores them.
        detail: whatever else the stage's apply needs (e.g. the value places are confirmed with).
    """

    stage: str
    rows: Any
    kept: list = field(default_factory=list)
    unchecked: int = 0
    why: str = ""
    library: Any = field(default=None, repr=False)
    events: "Plan | None" = field(default=None, repr=False)
    detail: dict = field(default_factory=dict, repr=False)

    def __eq__(self, other) -> bool:   # a plan is itself: never compared row by row
        return self is other

    __hash__ = object.__hash__

    # -- the rows, for code that used the DataFrame itself --------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        return self.rows[key]

    def __iter__(self):
        return iter(self.rows)

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("rows", "stage", "kept", "unchecked", "why", "library", "events",
                                             "detail"):
            raise AttributeError(name)
        return getattr(self.rows, name)

    def with_rows(self, rows) -> "Plan":
        """The same plan with other rows (a subset a person or a caller chose)."""
        return replace(self, rows=rows)

    def summary(self) -> str:
        """One line: the stage, how many rows, what is kept and unchecked."""
        parts = [f"{self.stage}: {len(self.rows)} to change"]
        if self.kept:
            parts.append(f"{len(self.kept)} left as they are")
        if self.unchecked:
            parts.append(f"{self.unchecked} not checked")
        return ", ".join(parts) + (f" ({self.why})" if self.why else "")


def rows_of(plan):
    """A plan's rows (a DataFrame given instead of a plan is its own rows)."""
    return plan.rows if isinstance(plan, Plan) else plan


def library_and_plan(library, plan):
    """(library, plan) of a stage's ``apply(plan)`` or ``apply(library, plan)``."""
    if plan is None:
        if not isinstance(library, Plan):
            raise TypeError("apply needs a plan: apply(plan) or apply(library, plan)")
        return library.library, library
    return library, plan


def apply(plan: Plan, **kwargs):
    """Carry out ``plan`` with its stage's ``apply`` (see :data:`APPLIERS`); returns what that returns."""
    if not isinstance(plan, Plan):
        raise TypeError(f"apply takes a Plan (as a stage's plan function returns), not {type(plan).__name__}")
    if plan.stage not in APPLIERS:
        raise ValueError(f"no stage {plan.stage!r} applies plans; known: {', '.join(sorted(APPLIERS))}")
    return importlib.import_module(APPLIERS[plan.stage]).apply(plan, **kwargs)


__all__ = ["APPLIERS", "Plan", "apply", "library_and_plan", "rows_of"]
