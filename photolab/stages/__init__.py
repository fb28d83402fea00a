"""The stage chain: gather → index → tag → rescore → dedupe → places → faces → organize → metadata, written once.

Each stage is registered here with :func:`stage`, in the order the chain runs them, with a
function that takes the :class:`Run` (the library, the photos the chain works on, the options
and what earlier stages returned) and returns its stage's plain report (a dataclass or a
DataFrame). A watcher pass (:func:`photolab.automate.run_once`), maintenance
(:func:`photolab.automate.maintain`), the demo (:func:`photolab.demo.run_demo`) and the
notebooks' :func:`photolab.prepare` all call :func:`run_chain` with the names they need::

    out = run_chain(lib, ["index", "tag", "rescore"])        # the library
    out = run_chain(lib, ["tag", "dedupe"], ids=[12, 13])    # only these photos

``ids=None`` is the whole library; a list of ids scopes every stage to those photos (a stage that
sets photos aside, dedupe, drops them from the scope; an empty scope ends the chain).
To add a stage: write its function below, decorate it with ``@stage("name", after="previous",
reads=..., writes=...)`` and add its name to the chains that should run it (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

@dataclass(frozen=True)
class Stage:
    """One named step of the chain: its function and the data it reads and writes."""

    name: str
    run: Callable[["Run"], Any]
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    doc: str = ""


@dataclass
class Run:
    """What a stage's function gets: the library, the photos in scope (None: all), each stage's options
    (``options["tag"]`` is a dict of keyword arguments for the tag stage) and the results so far."""

    lib: Any
    ids: list[int] | None = None
    options: dict[str, dict] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    progress: bool = False
    stopped: bool = False
    names: tuple[str, ...] = ()   # the stages this run runs, in chain order

    def opt(self, stage: str, key: str, default=None):
        """The option ``key`` given to ``stage`` (``default`` when not given)."""
        return self.options.get(stage, {}).get(key, default)


STAGES: dict[str, Stage] = {}   # in chain order


def stage(name: str, *, after: str | None = None, reads=(), writes=()):
    """Register the decorated function as the stage ``name``, placed right after the stage ``after``
    (default: at the end of the chain)."""

    def register(fn: Callable[[Run], Any]) -> Callable[[Run], Any]:
        item = Stage(name, fn, tuple(reads), tuple(writes), (fn.__doc__ or "").strip().splitlines()[0]
                     if fn.__doc__ else "")
        order = [n for n in STAGES if n != name]
        at = order.index(after) + 1 if after in order else len(order)
        order.insert(at, name)
        old = dict(STAGES)
        old[name] = item
        STAGES.clear()
        STAGES.update((n, old[n]) for n in order)
        return fn

    return register


def chain(names=None) -> list[Stage]:
    """The stages named (in chain order, whatever order ``names`` gives them in), or every stage."""
    if names is None:
        return list(STAGES.values())
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise KeyError(f"no stage named {', '.join(unknown)} (stages: {', '.join(STAGES)})")
    wanted = set(names)
    return [s for n, s in STAGES.items() if n in wanted]


def run_chain(lib, names=None, *, ids=None, options: dict | None = None, progress: bool = False,
              should_stop: Callable[[], bool] | None = None,
              on_done: Callable[[str, Any, Run], None] | None = None) -> Run:
    """Run the stages ``names`` (None: all) in chain order on ``lib``, over ``ids`` (None: the library).

    Args:
        options: per stage, its keyword options (``{"tag": {"model": m}, "dedupe": {"apply": False}}``).
        progress: progress bars (a stage's ``progress`` option overrides it).
        should_stop: asked before each stage; True ends the chain there (``Run.stopped``).
        on_done: called as ``on_done(name, result, run)`` after each stage (a caller's report, or
            narrowing ``run.ids`` / setting later stages' options).

    Returns:
        The :class:`Run`: ``results`` holds each stage's report by name.
    """
    from photolab.core.library import open_library

    stages = chain(names)
    run = Run(open_library(lib), None if ids is None else [int(i) for i in ids], dict(options or {}),
              progress=progress, names=tuple(s.name for s in stages))
    for item in stages:
        if run.ids is not None and not run.ids:
            break   # nothing left in scope
        if should_stop is not None and should_stop():
            run.stopped = True
            break
        run.results[item.name] = out = item.run(run)
        if on_done is not None:
            on_done(item.name, out, run)
    return run


def _progress(run: Run, name: str) -> bool:
    return run.opt(name, "progress", run.progress)


# -- the stages, in chain order ---------------------------------------------------------------
@stage("gather", reads=("source folders",), writes=("files", "sources", "gather_log"))
def gather_stage(run: Run):
    """Copy (verified, reading the source only) the option ``sources`` into the library (``only``: those files)."""
    from photolab.stages.gather import gather

    sources = run.opt("gather", "sources")
    if not sources:
        return None
    return gather(list(sources), run.lib, progress=_progress(run, "gather"), only=run.opt("gather", "only"))


@stage("index", after="gather", reads=("files",), writes=("photos",))
def index_stage(run: Run):
    """Read each file's metadata and hashes into the catalog (the option ``paths``: those files only)."""
    from photolab.stages.index import index_library

    return index_library(run.lib, progress=_progress(run, "index"), paths=run.opt("index", "paths"))


@stage("tag", after="index", reads=("photos", "files", "taxonomy"), writes=("features", "scores"))
def tag_stage(run: Run):
    """The labeling pass: features and scores of the photos not done with this model (scoped: those photos,
    and any an earlier pass found but could not tag)."""
    from photolab.stages.index import USABLE
    from photolab.store.watch import without_features
    from photolab.stages.tagging import tag_library

    kw = {k: v for k, v in run.options.get("tag", {}).items() if k != "progress"}
    kw.setdefault("rescore", "rescore" not in run.names)   # the chain's rescore stage does it once, after
    if run.ids is not None:
        kw["photo_ids"] = run.ids + without_features(run.lib.catalog.conn, USABLE)
        run.options.setdefault("rescore", {}).setdefault("photo_ids", kw["photo_ids"])   # what it may tag
    return tag_library(run.lib, progress=_progress(run, "tag"), **kw)


@stage("rescore", after="tag", reads=("features", "heads"), writes=("scores", "scores_stash"))
def rescore_stage(run: Run):
    """Scores from the active trained head for the tags it replaces (scoped: those photos and any the tag stage
    retried, when a head is active; the library: every photo, and the stashed scores of tags no head replaces
    come back). In a chain with this stage the tag stage leaves rescoring to it, so it is done once."""
    from photolab.store.meta import active_head
    from photolab.stages.train import rescore

    if run.ids is None:
        return rescore(run.lib)
    if not active_head(run.lib.catalog.conn):
        return 0
    return rescore(run.lib, photo_ids=run.opt("rescore", "photo_ids", run.ids))


@dataclass
class StageOutcome:
    """A plan-making stage's result: the plan and what applying it did (``report`` None: nothing was applied);
    not :class:`photolab.plans.Applied`, the count a plan's apply returns."""

    plan: Any
    report: Any = None

    @property
    def done(self) -> int:
        return self.report.done if self.report is not None else 0


@stage("dedupe", after="rescore", reads=("features", "photos"), writes=("files", "photos", "journal"))
def dedupe_stage(run: Run) -> StageOutcome:
    """Duplicates grouped (scoped: the photos against the library) and the copies quarantined. Option
    ``apply``: True (when there are copies), False (the plan only) or ``"always"``. Quarantined photos
    leave the scope."""
    from photolab.stages import dedupe
    from photolab.store.watch import quarantined

    plan = dedupe.plan(run.lib) if run.ids is None else dedupe.plan(run.lib, only=run.ids)
    how = run.opt("dedupe", "apply", True)
    out = StageOutcome(plan)
    if how == "always" or (how and len(plan) and not plan["keep"].all()):
        out.report = dedupe.apply(run.lib, plan, progress=_progress(run, "dedupe"))
    if run.ids is not None:
        gone = quarantined(run.lib.catalog.conn, run.ids)
        run.ids = [i for i in run.ids if i not in gone]
    return out


@stage("places", after="dedupe", reads=("photos",), writes=("places",))
def places_stage(run: Run):
    """Places suggested from GPS (scoped: the new photos' look-ups; the library: every suggestion, a table).
    They stay suggestions until a person confirms them."""
    if run.ids is None:
        from photolab.stages.places import suggest_places

        return suggest_places(run.lib)
    from photolab.stages.places import lookup_new

    return lookup_new(run.lib, run.ids)


@stage("faces", after="places", reads=("photos", "files"), writes=("faces",))
def faces_stage(run: Run):
    """Faces found (the library: found and clustered; scoped: found only once a person has named a face, so a
    library nobody names faces in is not slowed by the face model). None when not run."""
    from photolab.stages.faces import cluster_faces, scan_faces
    from photolab.store.meta import any_named_face

    if run.ids is None:
        found = scan_faces(run.lib, progress=_progress(run, "faces"))
        cluster_faces(run.lib)
        return found
    if not any_named_face(run.lib.catalog.conn):
        return None
    return scan_faces(run.lib, photo_ids=run.ids, progress=_progress(run, "faces"))


@stage("organize", after="faces", reads=("photos", "events", "rules"), writes=("files", "photos", "journal"))
def organize_stage(run: Run) -> StageOutcome:
    """Photos filed by the organize rules (scoped: their folders and events only, and only they move)."""
    from photolab.stages.organize import apply, plan

    if run.ids is None:
        df = plan(run.lib)
        return StageOutcome(df, apply(run.lib, df, progress=_progress(run, "organize")))
    from photolab.stages.events import apply as store_events

    p = plan(run.lib, photo_ids=run.ids)           # their folders and events only, not the library
    p = p.with_rows(p.rows[p.rows["photo_id"].isin(run.ids)])
    if not len(p):
        store_events(p.events)                      # nothing to move: their events are stored all the same
        return StageOutcome(p, None)
    return StageOutcome(p, apply(p, progress=_progress(run, "organize")))


@stage("metadata", after="organize", reads=("scores", "labels", "ratings", "faces", "places"),
       writes=("files", "versions", "metadata_written", "journal"))
def metadata_stage(run: Run):
    """Keywords and ratings written into the files or sidecars (after filing, so a new sidecar is made beside
    the photo where it now lives); people and places only once confirmed."""
    from photolab.stages.metadata import write_metadata

    kw = {} if run.ids is None else {"photo_ids": run.ids}
    return write_metadata(run.lib, progress=_progress(run, "metadata"), **kw)


# the chains photolab runs
WATCH_PASS = ("gather", "index", "tag", "rescore", "dedupe", "places", "faces", "organize", "metadata")
MAINTAIN = ("index", "tag", "rescore", "dedupe")
DEMO = WATCH_PASS
PREPARE = ("gather", "index", "tag")   # without the rescore stage, tag_library rescores what it tags

__all__ = ["DEMO", "MAINTAIN", "PREPARE", "Run", "STAGES", "Stage", "StageOutcome", "WATCH_PASS", "chain", "run_chain",
           "stage"]
