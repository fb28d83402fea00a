"""Organize: move photos and videos into year/month/event folders by tag-based rules.

A standalone clip is filed like a photo, by its own capture time (its event is
the one of the photos taken with it) and tags; ``kind:video`` in a rule picks
clips out.

``plan`` reads the rules (``.photolab/rules.txt``, created from the shipped,
documented default), groups the events in memory, finds each photo's folder and
returns the moves as a :class:`~photolab.plans.Plan`; it changes nothing, the
catalog included. ``apply`` stores the plan's events (grouped again if the catalog
changed meanwhile) and carries the moves out
through :mod:`photolab.core.fileops` (journaled, never overwriting, crash-safe,
catalog updated with each move); ``undo`` reverses a batch.

A photo travels with its companions: sidecars (``IMG_1.jpg.xmp``,
``IMG_1.xmp``), iOS edits (``.aae``), live-photo videos and the other half of
a RAW+JPEG pair keep their folder and their shared stem.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from photolab.core.errors import PhotolabError
from photolab.core.taxonomy import read_text_file
from photolab.store.catalog import STATE_DIR
from photolab.stages.events import EventOptions, capture_time
from photolab.core.fileops import BatchReport, Move, clean_component, execute, new_batch, recover, undo
from photolab.stages.index import USABLE
from photolab.core.library import open_library
from photolab.features.media import companions
from photolab.plans import Plan, library_and_plan, rows_of
from photolab.store import events as store

log = logging.getLogger(__name__)

RULES_FILE = "rules.txt"
PLAN_COLUMNS = ["source", "target", "rule", "reason"]
FIELDS = {"year", "month", "day", "event", "tag", "camera", "make", "model", "place", "kind"}
KEYS = {"tag", "category", "event", "camera", "date", "place", "gps", "kind"}
KINDS = ("photo", "raw", "video")   # what is filed on its own (companions travel with it)
# what a kind: term can name: the catalog's kinds (rules files written before videos named live, sidecar
# and other too; those never match a filed file, but they must not stop organize)
RULE_KINDS = KINDS + ("live", "sidecar", "other")
#: fields the unsorted folder may use: it holds photos without a capture date, so no date or event
UNSORTED_FIELDS = FIELDS - {"year", "month", "day", "event"}
MAX_FOLDER = 200         # characters for the whole target folder


class RulesError(PhotolabError, ValueError):
    """The rules file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Term:
    key: str
    value: str
    negate: bool = False


@dataclass(frozen=True)
class Rule:
    terms: tuple[Term, ...]          # empty: matches every photo
    target: str
    line: int
    text: str


@dataclass
class Rules:
    rules: list[Rule]
    unsorted: str = "Unsorted"
    events: EventOptions = field(default_factory=EventOptions)
    path: str | None = None
    places: str = "confirmed"        # place: and {place} use confirmed places, or "suggested" ones too


# -- the rules file -----------------------------------------------------------
def default_rules_text() -> str:
    return resources.files("photolab").joinpath("data", RULES_FILE).read_text(encoding="utf-8")


def parse_rules(text: str, *, path: str | os.PathLike | None = None, taxonomy=None) -> Rules:
    """Parse rules text; raise :class:`RulesError` naming the line on any problem."""
    from photolab.core.taxonomy import CATEGORIES, load_taxonomy

    where = str(path) if path else "<rules>"
    tax = taxonomy or load_taxonomy()
    rules: list[Rule] = []
    settings: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue

        def fail(msg: str):
            raise RulesError(f"{where}:{lineno}: {msg}: {raw.strip()!r}")

        if line.lower().startswith("set "):
            key, eq, value = line[4:].partition("=")
            key = key.strip().lower()
            if not eq or key not in ("unsorted", "use_file_dates", "gap_hours", "max_km", "places"):
                fail("a setting is 'set NAME = VALUE' with NAME one of unsorted, use_file_dates, gap_hours, max_km, "
                     "places")
            settings[key] = value.strip()
            if key == "unsorted":
                _check_target(settings[key], fail)
                dated = sorted({name for _, name, _, _ in string.Formatter().parse(settings[key])
                                if name is not None} - UNSORTED_FIELDS)
                if dated:
                    fail(f"the unsorted folder holds photos without a capture date, so {{{dated[0]}}} cannot be "
                         f"used there; use {', '.join('{' + f + '}' for f in sorted(UNSORTED_FIELDS))} or plain text")
            elif key in ("gap_hours", "max_km"):
                try:
                    if float(settings[key]) <= 0:
                        raise ValueError
                except ValueError:
                    fail(f"{key} must be a positive number")
            elif key == "places":
                if settings[key].lower() not in ("confirmed", "suggested"):
                    fail("places is confirmed (only places a person confirmed) or suggested (photolab's "
                         "suggestions too)")
            elif settings[key].lower() not in ("yes", "no", "true", "false"):
                fail("use_file_dates is yes or no")
            continue
        if "->" not in line:
            fail("a rule is 'CONDITION -> TARGET'")
        cond, _, target = (part.strip() for part in line.partition("->"))
        if not cond or not target:
            fail("a rule needs a condition and a target")
        terms: list[Term] = []
        if cond != "*":
            for part in re.split(r"\s+and\s+", cond, flags=re.IGNORECASE):
                part = part.strip()
                negate = part.lower().startswith("not ")
                if negate:
                    part = part[4:].strip()
                key, colon, value = part.partition(":")
                key, value = key.strip().lower(), value.strip()
                if not colon or key not in KEYS or not value:
                    fail(f"a condition term is KEY:VALUE with KEY one of {', '.join(sorted(KEYS))}")
                if key == "tag":
                    name = tax.resolve(value)
                    if name is None:
                        fail(f"unknown tag {value!r}")
                    value = name
                elif key == "category" and value.lower() not in CATEGORIES:
                    fail(f"unknown category {value!r}; use one of {', '.join(CATEGORIES)}")
                elif key == "gps" and value.lower() not in ("yes", "no"):
                    fail("gps is yes or no")
                elif key == "kind" and value.lower() not in RULE_KINDS:
                    fail(f"kind is one of {', '.join(KINDS)}")
                elif key == "date" and not _DATE_RE.fullmatch(value):
                    fail("a date is YYYY, YYYY-MM, YYYY-MM-DD or a range FROM..TO")
                terms.append(Term(key, value.lower() if key != "tag" else value, negate))
        _check_target(target, fail)
        rules.append(Rule(tuple(terms), target, lineno, " ".join(line.split())))
    if not rules:
        raise RulesError(f"{where}: no rules; the last rule is usually '* -> {{year}}/{{month:02}}'")
    yes = settings.get("use_file_dates", "no").lower() in ("yes", "true")
    ev = EventOptions(gap_hours=float(settings.get("gap_hours", EventOptions.gap_hours)),
                      max_km=float(settings.get("max_km", EventOptions.max_km)), use_file_dates=yes)
    return Rules(rules, unsorted=settings.get("unsorted", "Unsorted").strip("/"), events=ev,
                 path=str(path) if path else None, places=settings.get("places", "confirmed").lower())


_DATE = r"\d{4}(-\d{2}(-\d{2})?)?"
_DATE_RE = re.compile(rf"{_DATE}(\.\.{_DATE})?")


def _check_target(target: str, fail) -> None:
    if target.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", target):
        fail("a target is a folder inside the library, not an absolute path")
    literal = re.sub(r"\{[^{}]*\}", "x", target)
    if any(part in ("..", ".") for part in re.split(r"[/\\]", literal)):
        fail("a target may not contain '..' or '.' folders")
    if "\\" in literal:
        fail("use '/' between folders")
    try:
        parsed = list(string.Formatter().parse(target))
    except ValueError as exc:
        fail(f"bad braces in the target ({exc})")
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if name not in FIELDS:
            fail(f"unknown field {{{name}}}; use {', '.join('{' + f + '}' for f in sorted(FIELDS))}")
        if conv:
            fail("conversions like !r are not allowed")
        if spec and not re.fullmatch(r"0?\d{1,2}d?", spec):
            fail(f"unsupported format {{{name}:{spec}}}; only widths such as {{month:02}}")


def load_rules(library, *, path: str | os.PathLike | None = None, taxonomy=None) -> Rules:
    """A rules file: ``path``, or the library's ``.photolab/rules.txt`` (created from the default on first use)."""
    from photolab.core.taxonomy import load_taxonomy

    lib = open_library(library)
    if path is None:
        path = lib.state / RULES_FILE
        if not path.exists():
            path.write_text(default_rules_text(), encoding="utf-8")
    path = Path(path)
    return parse_rules(read_text_file(path, RulesError, "rules"), path=path, taxonomy=taxonomy or load_taxonomy(lib))


# -- safe names ---------------------------------------------------------------
def render_target(pattern: str, values: dict) -> str:
    """Fill a target pattern with cleaned values; the result is always a relative folder inside the library."""
    safe = {}
    for k, v in values.items():
        safe[k] = v if isinstance(v, int) else clean_component(v if v is not None else "Unknown")
    text = pattern.format(**safe)
    parts = [clean_component(p) for p in text.split("/") if p.strip()]
    folder = "/".join(parts) or "_"
    while len(folder) > MAX_FOLDER and len(parts) > 1:
        parts[-1] = parts[-1][: max(8, len(parts[-1]) - (len(folder) - MAX_FOLDER))].rstrip(". ") or "_"
        folder = "/".join(parts)
        if len(folder) > MAX_FOLDER:
            parts = parts[:-1]
            folder = "/".join(parts)
    return folder[:MAX_FOLDER].rstrip("/. ") or "_"


# -- matching -----------------------------------------------------------------
def _date_match(value: str, when) -> bool:
    if when is None:
        return False
    day = when.strftime("%Y-%m-%d")
    lo, _, hi = value.partition("..")
    if not hi:
        return day.startswith(lo)
    return day[:len(lo)] >= lo and day[:len(hi)] <= hi


def _term_match(term: Term, p: dict) -> tuple[bool, str | None]:
    """(matches, the tag it matched if any)."""
    v = term.value
    if term.key == "tag":
        ok, tag = v in p["tags"], v
    elif term.key == "category":
        hits = sorted(t for t in p["tags"] if p["categories"].get(t) == v)
        ok, tag = bool(hits), (hits[0] if hits else None)
    elif term.key == "event":
        ok, tag = bool(p["event"]) and fnmatch.fnmatch(p["event"].lower(), v), None
    elif term.key == "camera":
        ok, tag = fnmatch.fnmatch(p["camera"].lower(), v), None
    elif term.key == "place":
        ok, tag = bool(p["place"]) and fnmatch.fnmatch(p["place"].lower(), v), None
    elif term.key == "gps":
        ok, tag = (p["gps"] == (v == "yes")), None
    elif term.key == "kind":
        ok, tag = p["kind"] == v, None
    else:  # date
        ok, tag = _date_match(v, p["when"]), None
    if term.negate:
        return (not ok), None
    return ok, tag


def match(rules: Rules, p: dict) -> tuple[Rule | None, str | None]:
    """The first rule that matches photo facts ``p``, and the tag it matched."""
    for rule in rules.rules:
        matched_tag = None
        for term in rule.terms:
            ok, tag = _term_match(term, p)
            if not ok:
                break
            matched_tag = matched_tag or tag
        else:
            return rule, matched_tag
    return None, None


# -- plan ---------------------------------------------------------------------
class _Known(dict):
    """Lower-case path -> sha256 of the catalog's files, read a target folder at a time when first asked."""

    def __init__(self, conn):
        super().__init__()
        self.conn, self.folders = conn, set()

    def __contains__(self, key) -> bool:
        self._read(key.rpartition("/")[0])
        return dict.__contains__(self, key)

    def get(self, key, default=None):
        self._read(key.rpartition("/")[0])
        return dict.get(self, key, default)

    def _read(self, folder: str) -> None:
        if folder in self.folders:
            return
        self.folders.add(folder)
        for r in store.paths_below(self.conn, folder):
            if r["path"].lower().rpartition("/")[0] == folder:
                dict.__setitem__(self, r["path"].lower(), r["sha256"])


def plan(library, *, rules: Rules | None = None, photo_ids=None) -> Plan:
    """What organizing would move, and why; changes nothing (no file, no catalog row).

    Events are grouped in memory for the plan (:func:`photolab.stages.events.plan`); :func:`apply`
    stores them with the moves.

    With ``photo_ids`` (new photos, as the watcher has them): events are grouped
    again only where those photos can change them, only the folders holding them
    are read, and only their moves (with their companions) are listed — the
    library-wide plan restricted to them, for a library otherwise in place.

    Returns:
        A :class:`~photolab.plans.Plan` whose ``rows`` hold one row per file to move: ``source`` and
        ``target`` (relative to the library), ``rule`` (the rules file line that decided), ``reason``
        (in words), plus ``photo_id``, ``role`` (``photo`` or the companion's relation) and ``sha256``.
        Photos already in place are not listed; photos left where they are for a reason are
        ``(path, reason)`` pairs in ``plan.kept``; ``plan.events`` is the events plan.
    """
    import pandas as pd

    from photolab.stages.events import plan as plan_events
    from photolab.stages.tagging import accepted_tags
    from photolab.core.taxonomy import load_taxonomy

    lib = open_library(library)
    recover(lib)
    tax = load_taxonomy(lib)
    rules = rules or load_rules(lib, taxonomy=tax)
    scope = None if photo_ids is None else {int(i) for i in photo_ids}
    grouped = plan_events(lib, options=rules.events, photo_ids=scope)
    conn = lib.catalog.conn
    cats = {t.name: t.category for t in tax.tags}
    if scope is None:
        all_rows = store.filed_rows(conn)
        tags = accepted_tags(lib)
        sha_at = {r["path"].lower(): r["sha256"] for r in all_rows}
    else:
        folders = {p.rpartition("/")[0] for p in store.paths_of(conn, scope)}
        all_rows = sorted(store.filed_rows_in(conn, folders), key=lambda r: r["path"])
        tags = accepted_tags(lib, photo_ids=[r["id"] for r in all_rows])
        sha_at = _Known(conn)
    event_of = _events_after(grouped)
    from photolab.stages.places import place_names

    # library-wide: one read of the places table, not chunks of every photo id
    place_of = place_names(lib, None if scope is None else [r["id"] for r in all_rows],
                           suggested=rules.places == "suggested")
    by_folder: dict[str, dict[str, dict]] = {}
    for r in all_rows:
        folder, _, name = r["path"].rpartition("/")
        row = dict(r)
        row["event"], row["dominant"] = event_of(row)
        by_folder.setdefault(folder, {})[name] = row
    reserved: dict[str, str | None] = {}  # planned target (lower case) -> its sha256
    moves, kept = [], []

    for folder, files in sorted(by_folder.items()):
        if folder.split("/", 1)[0] == STATE_DIR:
            continue
        names = set(files)
        claimed: set[str] = set()
        # primaries: JPEG/HEIC first, so a RAW+JPEG pair follows the photo that carries the tags; then clips
        primaries = sorted((n for n, r in files.items() if r["kind"] in KINDS),
                           key=lambda n: (KINDS.index(files[n]["kind"]), n))
        for name in primaries:
            if name in claimed:
                continue
            r = files[name]
            stem = name.rsplit(".", 1)[0]
            members = [name]
            if r["kind"] != "video":
                members += [n for n in names - claimed - {name}
                            if files[n]["kind"] in ("photo", "raw") and n.rsplit(".", 1)[0].lower() == stem.lower()]
            for m in list(members):
                members += [c for c in companions(Path(m), names) if c not in members and c not in claimed
                            and files[c]["kind"] not in ("photo", "raw")]
            claimed.update(members)
            if scope is not None and not scope & {files[m]["id"] for m in members}:
                continue   # not one of the photos asked about
            if r["status"] not in USABLE:
                kept.append((r["path"], f"not organized: status {r['status']}"))
                continue
            when = capture_time(r, rules.events)
            camera = " ".join(x for x in (r["camera_make"], r["camera_model"]) if x)
            facts = {"tags": tags.get(r["id"], set()), "categories": cats, "event": r["event"] or "",
                     "camera": camera, "place": place_of.get(r["id"], ("", ""))[0], "gps": r["gps_lat"] is not None,
                     "kind": r["kind"], "when": when}
            rule, matched = match(rules, facts)
            if rule is None:
                kept.append((r["path"], "no rule matches"))
                continue
            uses_date = any(f in rule.target for f in ("{year", "{month", "{day", "{event"))
            values = {"year": when.year if when else 0, "month": when.month if when else 0,
                      "day": when.day if when else 0, "event": r["event"] or "No event",
                      "tag": (matched or r["dominant"] or "untagged").replace("_", " ").title(),
                      "camera": camera or "Unknown camera", "make": r["camera_make"] or "Unknown",
                      "model": r["camera_model"] or "Unknown", "place": place_of.get(r["id"], ("", "Unknown place"))[1],
                      "kind": r["kind"]}
            if when is None and uses_date:
                target_folder = render_target(rules.unsorted, {k: values[k] for k in UNSORTED_FIELDS})
                why = "no capture date"
            else:
                target_folder = render_target(rule.target, values)
                why = ", ".join(x for x in (
                    f"tag {matched}" if matched else None,
                    f"captured {when:%Y-%m-%d} ({r['captured_source']})" if when else None,
                    f"event {r['event']}" if r["event"] and "{event" in rule.target else None) if x) or "every photo"
            if target_folder == folder:
                continue
            # one free stem for the whole unit, so the pair and its sidecars stay together
            n = 0
            while True:
                new_stem = stem if n == 0 else f"{stem} ({n})"
                targets = {m: f"{target_folder}/{new_stem}{m[len(stem):]}" if m.lower().startswith(stem.lower())
                           else f"{target_folder}/{m if n == 0 else _suffixed(m, n)}" for m in members}
                clash = [t for t in targets.values()
                         if t.lower() in sha_at or t.lower() in reserved or lib.abs(t).exists()]
                if not clash:
                    break
                if n == 0 and all(files[m]["sha256"] and files[m]["sha256"] in
                                  (sha_at.get(t.lower()), reserved.get(t.lower())) for m, t in targets.items()):
                    break
                n += 1
            if clash:  # identical files already there: leave this copy for dedupe to decide
                kept.append((r["path"], f"identical file already at {targets[name]}; left for dedupe"))
                continue
            for m in sorted(members, key=lambda x: x != name):
                reserved[targets[m].lower()] = files[m]["sha256"]
                role = "photo" if m == name else ("pair" if files[m]["kind"] in ("photo", "raw") else "companion")
                moves.append({"source": files[m]["path"], "target": targets[m],
                              "rule": f"line {rule.line}: {rule.text}",
                              "reason": why if m == name else f"{role} of {name}",
                              "photo_id": files[m]["id"], "role": role, "sha256": files[m]["sha256"]})
    df = pd.DataFrame(moves, columns=PLAN_COLUMNS + ["photo_id", "role", "sha256"])
    return Plan("organize", df, kept=kept, library=lib, events=grouped,
                why=f"move the files by {rules.path or 'the rules given'} (journaled; `undo` reverses the batch), "
                    "after storing the events grouped for it")


def _events_after(grouped: Plan):
    """``row -> (event name, dominant tag)`` as they will be once ``grouped`` (an events plan) is stored:
    the grouped photos and the members of the events it replaces from the plan, the rest as stored."""
    name_of = {int(eid): (r.name, r.dominant if isinstance(r.dominant, str) else None)
               for eid, r in zip(grouped.rows.index, grouped.rows.itertuples())}
    new_event = dict(grouped.detail["members"])
    photos, events = grouped.detail["photos"], grouped.detail["events"]
    replaced_photos = None if photos is None else set(photos)
    replaced_events = set(events or ())

    def event_of(row) -> tuple[str | None, str | None]:
        if replaced_photos is None or row["id"] in replaced_photos or row["event_id"] in replaced_events:
            return name_of.get(new_event.get(row["id"]), (None, None))
        return row["event"], row["dominant"]

    return event_of


def _suffixed(name: str, n: int) -> str:
    """``name`` with `` (n)`` before its extension, shortened to fit one folder entry (255 bytes)."""
    from photolab.core.names import fit

    return fit(name, f" ({n})")


def write_plan_csv(plan_df, out: str | os.PathLike) -> Path:
    """Write a plan's ``source, target, rule, reason`` columns as CSV (UTF-8, atomically)."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    rows_of(plan_df)[PLAN_COLUMNS].to_csv(tmp, index=False, encoding="utf-8")
    os.replace(tmp, out)
    return out


def preview_tree(plan_df, *, max_lines: int = 60) -> str:
    """The target folders of a plan as an indented tree with photo counts."""
    counts: dict[str, int] = {}
    plan_df = rows_of(plan_df)
    for t, role in zip(plan_df["target"], plan_df["role"]):
        if role != "photo":
            continue
        parts = PurePosixPath(t).parent.parts
        for i in range(1, len(parts) + 1):
            key = "/".join(parts[:i])
            counts[key] = counts.get(key, 0) + 1
    lines = [f"{'  ' * (k.count('/'))}{k.rsplit('/', 1)[-1]}/  ({n})" for k, n in sorted(counts.items())]
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... {len(lines) - max_lines} more folders"]
    return "\n".join(lines)


def apply(library, plan=None, *, progress: bool = True) -> BatchReport:
    """Carry out a plan from :func:`plan` as one journaled batch (see :mod:`photolab.core.fileops`): first the
    events grouped for it are stored, then the files move.

    Called as ``apply(plan)`` or ``apply(library, plan)`` (the library the plan was made for; another is
    refused); ``plan`` may also be its rows alone (a DataFrame with ``source``, ``target``, ``rule`` and
    ``sha256``: only the moves are made). The moves are the plan's; the events stored are the plan's, or,
    when the catalog changed since the plan was made, the events grouped again from it (see
    :func:`photolab.stages.events.apply`)."""
    from tqdm.auto import tqdm

    from photolab.core.backup import guard
    from photolab.stages.events import apply as store_events

    library, plan = library_and_plan(library, plan)
    lib = open_library(library)
    guard(lib, "organize --apply")
    if isinstance(plan, Plan) and plan.events is not None:
        store_events(lib, plan.events)   # grouped again if the catalog changed since the plan
    moves = [Move(src=r.source, dst=r.target, sha256=r.sha256 if isinstance(r.sha256, str) else None,
                  detail={"rule": r.rule}) for r in rows_of(plan).itertuples()]
    bar = tqdm(total=len(moves), desc="organize", unit="file", disable=not progress or not moves)
    report = execute(lib, moves, batch=new_batch("organize"), op="organize", on_progress=bar.update)
    bar.close()
    return report


def organize(library, *, do_apply: bool = False, rules: Rules | None = None, progress: bool = True):
    """Plan (and with ``do_apply=True`` apply) the organization of the library; returns (plan, report)."""
    p = plan(library, rules=rules)
    report = apply(p, progress=progress) if do_apply else None
    return p, report


__all__ = ["PLAN_COLUMNS", "Rules", "RulesError", "apply", "clean_component", "default_rules_text", "load_rules",
           "organize", "parse_rules", "plan", "preview_tree", "render_target", "undo", "write_plan_csv"]
