"""Plan, then apply: what a stage would change, as data, before anything changes.

A stage that moves files or changes what a person decided (organize, dedupe, events, writing
metadata, confirming places and faces) first returns a :class:`Plan`: its ``rows`` (a DataFrame, one row per file or
item it would change), what it leaves as it is and why (``kept``), how many items it could not
check (``unchecked``), and a line saying what applying it does (``why``). Making a plan writes
nothing, neither the catalog nor a file: a dry run is just the plan. :func:`apply` (or the stage's
own ``apply``) carries it out, journaled where files move.

For code written against the DataFrames the stages returned before, a plan answers ``len(plan)``,
``plan["column"]``, iteration and the DataFrame's methods through its ``rows``; choosing rows (``plan[mask]``,
``head``, ``query``, ``copy``, ``loc``/``iloc`` slices, ``sort_values``) gives a plan again, so applying the
choice still does what the stage's apply does besides the rows (organize still stores its events).

A plan is applied to the library it was made for: given another library, apply refuses. A plan that is
pickled or copied keeps its library as the library's root; apply opens the library again by that root.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from photolab.core.errors import PhotolabError

#: stage -> the module whose ``apply(plan)`` carries its plans out
APPLIERS = {
    "organize": "photolab.stages.organize",
    "dedupe": "photolab.stages.dedupe",
    "events": "photolab.stages.events",
    "places": "photolab.stages.places",
    "faces": "photolab.stages.faces",
    "metadata": "photolab.stages.metadata",
}

#: DataFrame methods that choose (or order) rows: on a plan they give a plan with the rows they chose
ROW_METHODS = frozenset({"head", "tail", "query", "copy", "sort_values", "sort_index", "drop_duplicates", "sample",
                         "nlargest", "nsmallest", "dropna", "drop", "take", "filter", "truncate"})


class PlanLibraryError(PhotolabError):
    """A plan applied to a library other than the one it was made for."""


class Applied(int):
    """How many items an apply changed (an int), with ``skipped``: ``(item, reason)`` of the planned items it
    left as they are because they changed since the plan was made."""

    skipped: list

    def __new__(cls, n: int, skipped=()):
        out = super().__new__(cls, n)
        out.skipped = list(skipped)
        return out


class _Rows:
    """``plan.loc`` / ``plan.iloc``: rows chosen come back as a plan; assignment goes to the plan's rows."""

    def __init__(self, plan: "Plan", name: str):
        self._plan, self._name = plan, name

    def __getitem__(self, key):
        return self._plan._wrap(getattr(self._plan.rows, self._name)[key])

    def __setitem__(self, key, value) -> None:
        getattr(self._plan.rows, self._name)[key] = value


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
        library: the library it was made for (``apply(plan)`` needs no other argument); in a plan unpickled
            or deep-copied, that library's root (apply opens it again).
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
        return self._wrap(self.rows[key])

    def __setitem__(self, key, value) -> None:
        self.rows[key] = value

    def __iter__(self):
        return iter(self.rows)

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("rows", "stage", "kept", "unchecked", "why", "library", "events",
                                             "detail"):
            raise AttributeError(name)
        if name in ("loc", "iloc"):
            return _Rows(self, name)
        got = getattr(self.rows, name)
        if name in ROW_METHODS and callable(got):
            return lambda *a, **k: self._wrap(got(*a, **k))
        return got

    def _wrap(self, result):
        """``result`` of choosing rows: a plan with those rows when it is a DataFrame of the same columns (a
        subclass, such as metadata's plan, whose apply does not go by its rows, gives the DataFrame)."""
        import pandas as pd

        if (type(self) is Plan and isinstance(result, pd.DataFrame) and isinstance(self.rows, pd.DataFrame)
                and list(result.columns) == list(self.rows.columns)):
            return self.with_rows(result)
        return result

    @property
    def attrs(self) -> dict:
        """``{"kept": …, "unchecked": …}``, as the DataFrame's ``attrs`` carried them before plans."""
        return {"kept": self.kept, "unchecked": self.unchecked}

    def with_rows(self, rows) -> "Plan":
        """The same plan with other rows (a subset a person or a caller chose)."""
        return replace(self, rows=rows, kept=list(self.kept))

    # -- pickling and copying: the library travels as its root ----------------------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["library"] = root_of(self.library)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

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


def root_of(library) -> Path | None:
    """The root folder of a library (a Library or its path; None: none)."""
    if library is None:
        return None
    if isinstance(library, (str, os.PathLike)):
        return Path(library).expanduser().resolve()
    return Path(library.root)


def _is_open(library) -> bool:
    """Whether ``library`` is a Library whose catalog is still open."""
    catalog = getattr(library, "catalog", None)
    if catalog is None:
        return False
    try:
        catalog.conn.in_transaction
    except (sqlite3.ProgrammingError, AttributeError):
        return False
    return True


def library_for(plan, library=None):
    """The library to apply ``plan`` to: ``library`` (refused with :class:`PlanLibraryError` when it is not the
    one the plan was made for), else the plan's own; a closed Library is given as its root, to be opened
    again."""
    made_for = root_of(plan.library) if isinstance(plan, Plan) else None
    if library is None:
        if made_for is None:
            raise TypeError("apply needs a library: this plan carries none; use apply(library, plan)")
        library = plan.library
    elif made_for is not None and root_of(library) != made_for:
        raise PlanLibraryError(f"{root_of(library)}: this {plan.stage} plan was made for the library at {made_for}; "
                               "make the plan again for this library (or apply it to that one)")
    if _is_open(library):
        return library
    if isinstance(plan, Plan) and _is_open(plan.library) and root_of(plan.library) == root_of(library):
        return plan.library
    return root_of(library)


def library_and_plan(library, plan):
    """(library, plan) of a stage's ``apply(plan)`` or ``apply(library, plan)``: the library checked against the
    plan's (:func:`library_for`), ready for ``open_library``."""
    if plan is None:
        if not isinstance(library, Plan):
            raise TypeError("apply needs a plan: apply(plan) or apply(library, plan)")
        return library_for(library), library
    return library_for(plan, library), plan


def apply(plan: Plan, **kwargs):
    """Carry out ``plan`` with its stage's ``apply`` (see :data:`APPLIERS`); returns what that returns."""
    if not isinstance(plan, Plan):
        raise TypeError(f"apply takes a Plan (as a stage's plan function returns), not {type(plan).__name__}")
    if plan.stage not in APPLIERS:
        raise ValueError(f"no stage {plan.stage!r} applies plans; known: {', '.join(sorted(APPLIERS))}")
    return importlib.import_module(APPLIERS[plan.stage]).apply(plan, **kwargs)


__all__ = ["APPLIERS", "Applied", "Plan", "PlanLibraryError", "apply", "library_and_plan", "library_for", "root_of",
           "rows_of"]
