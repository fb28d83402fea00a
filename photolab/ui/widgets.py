"""Notebook widgets: thin classes over package functions.

State lives in traitlets, actions are plain methods, so a test (or a script)
sets a value, calls a method and checks the result without a browser; the
widget tree (``.widget``) only shows that state.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

import anywidget
import ipywidgets as W
import numpy as np
import traitlets

from photolab.stages import dedupe, review
from photolab.core.library import open_library
from photolab.store import review as store
from photolab.stages.tagging import SCORE_MEANING
from photolab.core.taxonomy import load_taxonomy

THUMB = 220


def _thumb_bytes(path: str | None, fallback: Path, size: int = THUMB) -> bytes:
    """The labeling pass's thumbnail, or one made now from the file (or a grey square)."""
    if path and Path(path).is_file():
        return Path(path).read_bytes()
    from PIL import Image

    from photolab.features.media import register_heif

    register_heif()
    buf = io.BytesIO()
    try:
        with Image.open(fallback) as im:
            im.draft("RGB", (size, size))
            im = im.convert("RGB")
            im.thumbnail((size, size))
            im.save(buf, "JPEG", quality=85)
    except Exception:   # unreadable: a placeholder, the card still says what the file is
        Image.new("RGB", (size, size), (200, 200, 200)).save(buf, "JPEG")
    return buf.getvalue()


KEY_JS = """
const KEYS = new Set(["a", "n", "p", "u", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
function typing(target) {
  return !!(target && target.closest && target.closest("input, textarea, select, [contenteditable=''], [contenteditable='true']"));
}
function render({ model, el }) {
  el.style.display = "none";
  let box = null;
  const onKey = (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || !KEYS.has(e.key) || typing(e.target)) return;
    e.preventDefault();
    e.stopPropagation();
    model.send({ key: e.key });
  };
  const attach = () => {
    box = el.closest(".photolab-review-grid");
    if (!box) { requestAnimationFrame(attach); return; }
    if (!box.hasAttribute("tabindex")) box.setAttribute("tabindex", "0");
    box.addEventListener("keydown", onKey);
  };
  attach();
  return () => { if (box) box.removeEventListener("keydown", onKey); };
}
export default { render };
"""


class GridKeys(anywidget.AnyWidget):
    """Listens for the review grid's shortcut keys on the grid's own element (bubbling keydown), so a
    key typed into a text box of the grid (the add-tag box) is never taken, and nothing outside the
    grid is heard. Each key arrives as a message ``{"key": ...}``."""

    CONTAINER = "photolab-review-grid"
    _esm = traitlets.Unicode(KEY_JS).tag(sync=True)
    _css = traitlets.Unicode(".photolab-review-grid:focus { outline: 2px solid #4c78a8; }").tag(sync=True)


class DedupeReview(W.VBox):
    """Duplicate groups side by side: change the keeper, split a group or dismiss it, then apply.

    Attributes (traitlets):
        plan: the dedupe plan as edited so far (a DataFrame, as :func:`photolab.stages.dedupe.plan` returns).
        position: index of the group on screen in :attr:`groups`.

    Methods ``next``, ``previous``, ``keep(path)``, ``split(paths)`` and ``dismiss()`` change
    the state; ``dedupe.apply(library, review.plan)`` carries out the result.
    """

    plan = traitlets.Any()
    position = traitlets.Int(0)

    def __init__(self, library, plan_df=None, **kwargs):
        super().__init__(**kwargs)
        self.lib = open_library(library)
        self._title = W.HTML()
        self._cards = W.HBox(layout=W.Layout(flex_flow="row wrap"))
        prev_b, next_b = W.Button(description="◀ previous"), W.Button(description="next ▶")
        dismiss_b = W.Button(description="not duplicates: keep all", button_style="warning")
        prev_b.on_click(lambda _: self.previous())
        next_b.on_click(lambda _: self.next())
        dismiss_b.on_click(lambda _: self.dismiss())
        self._status = W.HTML()
        self.children = [self._title, self._cards, W.HBox([prev_b, next_b, dismiss_b]), self._status]
        self.plan = plan_df if plan_df is not None else dedupe.plan(self.lib)

    # -- state ------------------------------------------------------------------------------
    @property
    def groups(self) -> list[int]:
        return sorted(int(g) for g in self.plan["group"].unique()) if len(self.plan) else []

    @property
    def current(self) -> int | None:
        g = self.groups
        return g[self.position] if g else None

    @traitlets.observe("plan")
    def _plan_changed(self, change) -> None:
        n = len(self.groups)
        self.position = min(self.position, max(0, n - 1))
        self._render()

    @traitlets.observe("position")
    def _position_changed(self, change) -> None:
        self._render()

    # -- actions ----------------------------------------------------------------------------
    def next(self) -> None:
        if self.position + 1 < len(self.groups):
            self.position += 1

    def previous(self) -> None:
        if self.position > 0:
            self.position -= 1

    def keep(self, path: str) -> None:
        """Make ``path`` its group's keeper."""
        self.plan = dedupe.set_keeper(self.plan, path)

    def split(self, paths) -> None:
        """Take ``paths`` out of their group: they are not copies of the rest."""
        self.plan = dedupe.split_group(self.plan, paths)

    def dismiss(self, group: int | None = None) -> None:
        """Drop a group (default: the one on screen): nothing in it is set aside."""
        g = self.current if group is None else group
        if g is not None:
            self.plan = dedupe.dismiss_group(self.plan, g)

    # -- view -------------------------------------------------------------------------------
    def _render(self) -> None:
        g = self.current
        if g is None:
            self._title.value = "<b>No duplicate groups.</b>"
            self._cards.children = []
            self._status.value = ""
            return
        rows = dedupe.review_table(self.lib, self.plan[self.plan["group"] == g])
        tier = "similar scene (never set aside)" if (rows["tier"] == "similar").all() else rows["tier"].iloc[-1]
        self._title.value = f"<b>Group {g}</b> ({self.position + 1} of {len(self.groups)}) · {tier}"
        cards = []
        for r in rows.itertuples():
            img = W.Image(value=_thumb_bytes(r.thumb, self.lib.abs(r.path)), format="jpeg",
                          layout=W.Layout(max_width=f"{THUMB}px", max_height=f"{THUMB}px"))
            verdict = "<b style='color:green'>keep</b>" if r.keep else "<b style='color:#b36b00'>set aside</b>"
            info = W.HTML(f"{verdict}<br><code>{r.path}</code><br>{r.resolution} · {r.size / 1e6:.2f} MB · "
                          f"{r.format}<br>{r.captured_at or 'no capture time'}<br><small>{r.reason}</small>")
            keep_b = W.Button(description="keep this one", disabled=bool(r.keep) or r.tier == "similar")
            keep_b.on_click(lambda _, p=r.path: self.keep(p))
            split_b = W.Button(description="not a copy: split off")
            split_b.on_click(lambda _, p=r.path: self.split([p]))
            cards.append(W.VBox([img, info, keep_b, split_b],
                                layout=W.Layout(width=f"{THUMB + 30}px", margin="4px", border="1px solid #ddd")))
        self._cards.children = cards
        aside = int((~self.plan["keep"].astype(bool)).sum())
        self._status.value = f"{len(self.groups)} groups; {aside} files would go to quarantine"


class ReviewGrid(W.VBox):
    """Pages of thumbnails from the review queue; every click is stored in the catalog at once.

    Each photo shows its tags (accepted ones pressed) with scores; clicking a tag toggles it, the box
    under it adds any taxonomy tag (aliases complete: "bday" finds birthday), the dropdown sets a
    rating, "open" shows the photo large. "Accept page" confirms every photo on the page as it now
    stands (each tag labeled 1 or 0, the photo marked reviewed). Keys: ``a`` accept page, ``n``/``p``
    next/previous page, ``u`` undo, ``1``-``9`` toggle the first photo's n-th tag.

    Attributes (traitlets): ``queue`` (photo ids in review order), ``page`` (index), ``page_size``.
    Methods: ``toggle``, ``add_tag``, ``rate``, ``accept_page``, ``undo``, ``next_page``,
    ``previous_page``, ``show_large``, ``refresh``.
    """

    queue = traitlets.List()
    page = traitlets.Int(0)
    page_size = traitlets.Int(24)

    def __init__(self, library, *, page_size: int = 24, cut: float = review.REVIEW_CUT,
                 sample_name: str | None = None, who: str = "me", **kwargs):
        super().__init__(**kwargs)
        if not 1 <= page_size <= 96:
            raise ValueError(f"page_size must be 1-96, got {page_size}")
        self.lib = open_library(library)
        self.tax = load_taxonomy(self.lib)
        self.cut, self.sample_name, self.who = cut, sample_name, who
        self._undo: list[list[dict]] = []
        self._progress = W.HTML()
        self._grid = W.GridBox(layout=W.Layout(grid_template_columns="repeat(auto-fill, 210px)", grid_gap="6px"))
        self._large = W.Image(format="jpeg", layout=W.Layout(max_width="900px", display="none"))
        buttons = []
        for label, fn in (("◀ page", self.previous_page), ("page ▶", self.next_page),
                          ("accept page (a)", self.accept_page), ("undo (u)", self.undo)):
            b = W.Button(description=label)
            b.on_click(lambda _, f=fn: f())
            buttons.append(b)
        self._keys()
        self.children = [self._progress, W.HTML(f"<small>{SCORE_MEANING}</small>"), W.HBox(buttons), self._grid,
                         self._large, self._keys_widget]
        self.page_size = page_size
        self.refresh()

    def _keys(self) -> None:
        """Shortcut keys, heard only while the grid (not a text box in it) has the focus."""
        self._keys_widget = GridKeys()
        self._keys_widget.on_msg(lambda _w, content, _b: self._on_key(content))
        self.add_class(GridKeys.CONTAINER)

    def _on_key(self, event: dict) -> None:
        key = event.get("key", "")
        actions = {"a": self.accept_page, "n": self.next_page, "p": self.previous_page, "u": self.undo}
        if key in actions:
            actions[key]()
        elif key.isdigit() and key != "0" and self.page_ids:
            pid = self.page_ids[0]
            shown = self._shown_tags(pid)
            if int(key) <= len(shown):
                self.toggle(pid, shown[int(key) - 1])

    # -- state ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild the queue from the catalog (photos reviewed since drop out)."""
        q = review.review_queue(self.lib, cut=self.cut, sample_name=self.sample_name)
        self._rows = q
        self.queue = [int(i) for i in q.index]
        self.page = 0
        self._render()

    @property
    def page_ids(self) -> list[int]:
        return self.queue[self.page * self.page_size:(self.page + 1) * self.page_size]

    @traitlets.observe("page")
    def _page_changed(self, change) -> None:
        self._render()

    def tags_of(self, photo_id: int) -> set[str]:
        """The photo's tags as they stand now (scores at thresholds, then the labels on top)."""
        from photolab.stages.tagging import accepted_tags

        return accepted_tags(self.lib, photo_ids=[int(photo_id)]).get(int(photo_id), set())

    def _page_tags(self) -> dict[int, set[str]]:
        """The tags of every photo on the page as they stand now: the thresholds and labels read once."""
        from photolab.stages.tagging import accepted_tags

        return accepted_tags(self.lib, photo_ids=self.page_ids)

    def _shown_tags(self, pid: int, have: set[str] | None = None) -> list[str]:
        row = self._rows.loc[pid] if pid in self._rows.index else None
        have = self.tags_of(pid) if have is None else have
        near = []
        if row is not None:
            scored = [(abs(float(row[f"confidence:{t}"])), t) for t in self.tax.names
                      if row.get(f"confidence:{t}") == row.get(f"confidence:{t}")]
            near = [t for _, t in sorted(scored)[:4]]
        return [t for t in self.tax.names if t in have or t in near]

    # -- actions ----------------------------------------------------------------------------
    def _label(self, pid: int, tag: str, value: int) -> None:
        from photolab.stages.tagging import set_labels

        self._undo.append([review.snapshot(self.lib, pid)])
        set_labels(self.lib, [(pid, tag, value)], who=self.who)

    def toggle(self, photo_id: int, tag: str) -> None:
        """Flip one tag of one photo (stored at once as a label)."""
        pid = int(photo_id)
        name = self.tax.resolve(tag) or tag
        self._label(pid, name, 0 if name in self.tags_of(pid) else 1)
        self._render()

    def add_tag(self, photo_id: int, text: str) -> str:
        """Give a photo a tag named by its name or an alias; returns the tag."""
        name = self.tax.resolve(text)
        if name is None:
            raise KeyError(f"{text!r} is no tag or alias; close: {', '.join(self.tax.complete(text[:2])) or '-'}")
        self._label(int(photo_id), name, 1)
        self._render()
        return name

    def rate(self, photo_id: int, rating: int | None) -> None:
        from photolab.stages.metadata import set_rating

        pid = int(photo_id)
        self._undo.append([review.snapshot(self.lib, pid)])
        set_rating(self.lib, pid, rating)
        self._render()

    def accept_page(self) -> int:
        """Confirm every photo on the page as it now stands; the queue moves on. Returns how many."""
        ids = self.page_ids
        self._undo.append([review.confirm(self.lib, pid, self.tags_of(pid), who=self.who) for pid in ids])
        done = set(ids)
        self.queue = [p for p in self.queue if p not in done]
        self._render()
        return len(ids)

    def undo(self) -> None:
        """Take back the last action (a toggle, an added tag, a rating or a whole accepted page)."""
        if not self._undo:
            return
        states = self._undo.pop()
        for st in states:
            review.restore_labels(self.lib, st)
        back = [st["photo_id"] for st in states if st["photo_id"] not in self.queue]
        if back:
            self.queue = back + self.queue
            self.page = 0
        self._render()

    def next_page(self) -> None:
        if (self.page + 1) * self.page_size < len(self.queue):
            self.page += 1

    def previous_page(self) -> None:
        if self.page > 0:
            self.page -= 1

    def show_large(self, photo_id: int) -> None:
        """Show the photo large under the grid."""
        path = store.photo_path(self.lib.catalog.conn, int(photo_id))
        if path is not None:
            self._large.value = _thumb_bytes(None, self.lib.abs(path), size=900)
            self._large.layout.display = ""

    # -- view -------------------------------------------------------------------------------
    def _render(self) -> None:
        done, total = review.progress(self.lib, sample_name=self.sample_name)
        pages = max(1, -(-len(self.queue) // self.page_size))
        self._progress.value = (f"<b>{done} reviewed</b> · {len(self.queue)} in the queue · page {self.page + 1} "
                                f"of {pages} · keys (click the grid first; never while typing in a box): "
                                "a accept page, n/p pages, u undo, 1-9 toggle the first photo's tags")
        if not self.queue:
            self._progress.value = (f"<b>{done} reviewed</b> · nothing waiting for review: every tag is confident "
                                    "or confirmed. Next: retrain on your corrections (04_retrain), or lower the "
                                    "confidence cut to see more photos.")
        tags = self._page_tags()   # one read of the thresholds and labels for the page, not one per card
        self._grid.children = [self._card(pid, tags.get(pid, set())) for pid in self.page_ids]

    def _card(self, pid: int, have: set[str]):
        row = self._rows.loc[pid]
        img = W.Image(value=_thumb_bytes(row["thumb"], self.lib.abs(row["path"])), format="jpeg",
                      layout=W.Layout(max_width="200px", max_height="200px"))
        toggles = []
        for tag in self._shown_tags(pid, have):
            score = row.get(f"score:{tag}")
            label = tag if score != score or score is None else f"{tag} {float(score):.2f}"
            b = W.ToggleButton(value=tag in have, description=label, layout=W.Layout(width="auto"))
            b.observe(lambda ch, t=tag: self.toggle(pid, t) if ch["new"] != (t in self.tags_of(pid)) else None,
                      "value")
            toggles.append(b)
        add = W.Combobox(placeholder="add tag…", options=tuple(self.tax.names), ensure_option=False,
                         continuous_update=False, layout=W.Layout(width="190px"))
        # the value arrives on Enter or when the box loses focus, not per keystroke
        add.observe(lambda ch: self.add_tag(pid, ch["new"]) if self.tax.resolve(ch["new"]) else None, "value")
        rating = W.Dropdown(options=[("rating", None)] + [(str(i), i) for i in range(6)], layout=W.Layout(width="90px"))
        rating.observe(lambda ch: self.rate(pid, ch["new"]), "value")
        big = W.Button(description="open", layout=W.Layout(width="60px"))
        big.on_click(lambda _: self.show_large(pid))
        text = W.HTML(f"<small><code>{row['path']}</code><br>{row['reason']}</small>")
        return W.VBox([img, text, W.HBox(toggles, layout=W.Layout(flex_flow="row wrap")), add, W.HBox([rating, big])],
                      layout=W.Layout(border="1px solid #ddd", padding="3px"))


class ThresholdTuner(W.VBox):
    """A slider per tag; moving one updates, live, the photos above/below it, a strip of the photos
    just above and just below the threshold, and the precision-recall curve from the reviewed photos.
    Thresholds are stored in the library as they change (``autosave``) or by :meth:`save`.

    Attributes (traitlets): ``thresholds`` (tag -> value), ``tag`` (the one shown in detail).
    Methods: ``set``, ``suggest``, ``save``.
    """

    thresholds = traitlets.Dict()
    tag = traitlets.Unicode()

    def __init__(self, library, *, tags=None, sample_name: str | None = None, autosave: bool = True,
                 strip: int = 6, **kwargs):
        super().__init__(**kwargs)
        from photolab.store.scores import score_matrix
        from photolab.stages.tagging import thresholds as stored

        self.lib = open_library(library)
        tax = load_taxonomy(self.lib)
        self.autosave, self.strip = autosave, strip
        conn = self.lib.catalog.conn
        ids = store.sample_ids(conn, sample_name) if sample_name else None
        self._ids = ids
        # every tag's scores from the library's score matrix (kept current through the catalog's change log),
        # not a read of every score row of every tag
        m = score_matrix(self.lib)
        col = {t: j for j, t in enumerate(m.tags)}
        scored = {t for t, j in col.items() if len(m.ids) and not np.isnan(m.S[:, j]).all()}
        self.tags = [t for t in (tags or tax.names) if t in scored]
        in_sample = None if ids is None else np.isin(m.ids, np.fromiter(ids, dtype=np.int64, count=len(ids)))
        self._scores: dict[str, tuple] = {}
        for t in self.tags:
            s = m.S[:, col[t]]
            have = ~np.isnan(s) if in_sample is None else ~np.isnan(s) & in_sample
            pids, s = m.ids[have], s[have]
            order = np.lexsort((pids, s))   # as the (tag, score) index gives them: by score
            self._scores[t] = (pids[order], s[order])
        cur = stored(self.lib)
        self._sliders, self._counts = {}, {}
        rows = []
        for t in self.tags:
            sl = W.FloatSlider(value=cur[t], min=0.01, max=0.99, step=0.01, description=t, continuous_update=False,
                               readout_format=".2f", style={"description_width": "120px"},
                               layout=W.Layout(width="480px"))
            sl.observe(lambda ch, tag=t: self.set(tag, ch["new"]), "value")
            show = W.Button(description="show", layout=W.Layout(width="60px"))
            show.on_click(lambda _, tag=t: setattr(self, "tag", tag))
            self._sliders[t], self._counts[t] = sl, W.HTML()
            rows.append(W.HBox([sl, self._counts[t], show]))
        self._curve = W.Image(format="png", layout=W.Layout(width="500px"))
        self._curve_note = W.HTML()
        self._strip = W.VBox()
        empty = ([W.HTML("<b>No tag has scores yet:</b> run the labeling pass first (01_tag_library).")]
                 if not self.tags else [])
        self.children = empty + [W.VBox(rows), W.HTML("<b>Detail</b>"), self._curve_note, self._curve, self._strip]
        self.thresholds = {t: cur[t] for t in self.tags}
        for t in self.tags:
            self._update_counts(t)
        if self.tags:   # the detail starts on the tag that the most reviewed photos have: its curve says most
            labeled = review._scored_labels_by_tag(self.lib, self._ids)   # one read of the labels, not one per tag
            have = {t: int(labeled[t][0].sum()) if t in labeled else 0 for t in self.tags}
            self.tag = max(self.tags, key=lambda t: (have[t], -self.tags.index(t)))

    def reviewed(self, tag: str) -> tuple[int, int]:
        """(reviewed photos with a score for ``tag``, how many of them have the tag): the curve's data."""
        y, _ = review._scored_labels(self.lib, tag, self._ids)
        return int(len(y)), int(y.sum())

    def counts(self, tag: str) -> tuple[int, int]:
        """(photos at or above the threshold, photos below)."""
        _, s = self._scores[tag]
        above = int((s >= self.thresholds[tag]).sum())
        return above, int(len(s) - above)

    def set(self, tag: str, value: float) -> None:
        value = float(np.clip(value, 0.01, 0.99))
        self.thresholds = {**self.thresholds, tag: value}
        if abs(self._sliders[tag].value - value) > 1e-9:
            self._sliders[tag].value = value
        if self.autosave:
            review.set_thresholds(self.lib, {tag: value})
        self._update_counts(tag)
        if tag == self.tag:
            self._detail()
        else:
            self.tag = tag

    def suggest(self, *, target_precision: float | None = None):
        """Move every slider to the suggested threshold (see :func:`photolab.stages.review.suggest_thresholds`)."""
        df = review.suggest_thresholds(self.lib, target_precision=target_precision, photo_ids=self._ids)
        for t in self.tags:
            if df.at[t, "positives"] >= 3:
                self.set(t, df.at[t, "suggested"])
        return df.loc[self.tags]

    def save(self) -> None:
        review.set_thresholds(self.lib, self.thresholds)

    @traitlets.observe("tag")
    def _tag_changed(self, change) -> None:
        self._detail()

    def _update_counts(self, tag: str) -> None:
        above, below = self.counts(tag)
        self._counts[tag].value = f"&nbsp;{above} above · {below} below"

    def _detail(self) -> None:
        tag = self.tag
        if not tag:
            return
        from photolab.ui import plots

        curve = review.pr_curve(self.lib, tag, photo_ids=self._ids)
        self.curve = curve
        self.figure = plots.pr_curve(curve, self.thresholds[tag], tag)
        self._curve.value = plots.png(self.figure)
        n, k = self.reviewed(tag)
        if k:
            basis = f"the curve is measured on {n} reviewed photos, {k} with the tag"
        else:
            basis = ("no curve yet: " + (f"none of the {n} reviewed photos has {tag}" if n else "no photo is reviewed yet")
                     + ", so its precision cannot be measured; confirm photos with the tag in the review grid "
                     "(above, or 03_review), then click show again")
        self._curve_note.value = (f"<b class='photolab-detail-tag'>{tag}</b> at threshold {self.thresholds[tag]:.2f} · "
                                  f"<span class='photolab-curve-basis'>{basis}</span><br><small>{SCORE_MEANING}</small>")
        ids, s = self._scores[tag]
        t = self.thresholds[tag]
        order = np.argsort(s)
        above = order[s[order] >= t][: self.strip].tolist()
        rev = order[::-1]
        below = rev[s[rev] < t][: self.strip].tolist()
        thumbs = store.thumbs(self.lib.catalog.conn, [int(ids[i]) for i in above + below])   # the strip's only
        rows = []
        for title, picks in ((f"just above {t:.2f} (tagged {tag})", above), (f"just below {t:.2f} (not tagged)", below)):
            cards = []
            for i in picks:
                f = str(self.lib.state / "features" / thumbs[int(ids[i])]) if thumbs.get(int(ids[i])) else None
                if not f or not Path(f).is_file():
                    continue
                cards.append(W.VBox([W.Image(value=Path(f).read_bytes(), format="jpeg",
                                             layout=W.Layout(max_width="120px", max_height="120px")),
                                     W.HTML(f"<small>score {s[i]:.2f}</small>")], layout=W.Layout(margin="2px")))
            rows.append(W.HTML(f"<b>{title}</b>" + ("" if cards else ": <i>no photo</i>")))
            rows.append(W.HBox(cards, layout=W.Layout(flex_flow="row wrap")))
        self._strip.children = rows


class ApplyButton(W.VBox):
    """A bulk change that waits for a person's click: writing metadata into files, quarantining
    copies, moving files, an import pass, maintenance.

    Making the widget (and so running its cell, or Run All) changes nothing. Its button, or
    :meth:`click` from code, runs ``action`` once and shows what it did; the undo button, or
    :meth:`undo`, reverses it when an ``undo`` was given. An error a user can cause shows as one
    line in the widget (the button stays clickable, e.g. after making the backup it asked for).

    Args:
        description: the button's text, saying what a click changes ("write keywords into 12 files").
        action: called with no arguments on the click; its return value is :attr:`report`.
        undo: called with the report to reverse the change (None: no undo button).
        undo_description: the undo button's text.
        nothing: a sentence saying there is nothing to do; the button is then disabled.
        describe: turns the report into what the widget shows (default: ``report.summary()``).
        note: a line above the button (default: that nothing changes until it is clicked).

    Attributes:
        report: what ``action`` returned (None until clicked); ``undone``: what ``undo`` returned.
        button, undo_button: the buttons (``button.click()`` is what a person's click does).
        state (traitlet): ``waiting``, ``nothing``, ``running``, ``done``, ``undoing``, ``undone`` or ``failed``.
    """

    state = traitlets.Unicode("waiting")

    def __init__(self, description: str, action, *, undo=None, undo_description: str = "undo",
                 nothing: str | None = None, describe=None, note: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self._action, self._undo_action, self._describe = action, undo, describe
        self.report = self.undone = None
        self.error: str | None = None
        self.button = W.Button(description=description, button_style="primary", icon="check",
                               layout=W.Layout(width="auto"), disabled=bool(nothing))
        self.undo_button = W.Button(description=undo_description, button_style="warning", icon="undo",
                                    layout=W.Layout(width="auto", display="none"))
        self.button.on_click(lambda _: self._clicked(self.click))
        self.undo_button.on_click(lambda _: self._clicked(self.undo))
        self._note = W.HTML(f"<i>{html.escape(nothing)}</i>" if nothing else
                            f"<small>{html.escape(note or 'Nothing changes until you click the button.')}</small>")
        self.output = W.Output()
        self.children = [self._note, W.HBox([self.button, self.undo_button]), self.output]
        if nothing:
            self.state = "nothing"
        self.add_class("photolab-apply")

    def _clicked(self, fn) -> None:
        try:
            fn()
        except Exception:   # noqa: BLE001 - already shown in the widget; a click has no caller to raise to
            pass

    def _run(self, fn, busy: str, done: str):
        from IPython.display import display

        from photolab.core.errors import PhotolabError
        from photolab.ui.notebook import show_error

        before = self.state
        self.state, self.error = busy, None
        self.button.disabled = self.undo_button.disabled = True
        failed = None
        with self.output:
            try:
                result = fn()
            except PhotolabError as exc:
                show_error(str(exc))
                failed = exc
            except Exception as exc:   # noqa: BLE001 - shown, then raised to a caller from code
                show_error(f"{type(exc).__name__}: {exc}")
                failed = exc
            else:
                shown = (self._describe(result) if self._describe else
                         result.summary() if hasattr(result, "summary") else result)
                if shown is not None:
                    display(shown)
        if failed is not None:
            self.error = str(failed)
            self.state = "failed"
            self.button.disabled = before != "waiting" and before != "failed"
            self.undo_button.disabled = before != "done"
            raise failed
        self.state = done
        return result

    def click(self):
        """What the button does: run the change once; returns its report."""
        if self.state not in ("waiting", "failed") or self.report is not None:
            raise RuntimeError(f"{self.button.description!r}: already {'done' if self.report is not None else self.state}")
        self.report = self._run(self._action, "running", "done")
        self._note.value = "<small>Done" + ("; the undo button reverses it" if self._undo_action else "") + ".</small>"
        if self._undo_action is not None:
            self.undo_button.layout.display = None
            self.undo_button.disabled = False
        return self.report

    def undo(self):
        """What the undo button does: reverse the change; returns the undo's report."""
        if self._undo_action is None or self.report is None or self.undone is not None:
            raise RuntimeError(f"{self.button.description!r}: nothing to undo")
        self.undone = self._run(lambda: self._undo_action(self.report), "undoing", "undone")
        self._note.value = "<small>Done, then undone.</small>"
        return self.undone


class FaceNamer(W.VBox):
    """Name faces a cluster at a time: type a name (known names complete), take out the faces
    that are someone else (select, then "split off"), reject what is not a face, merge two
    clusters of the same person; or accept photolab's confident suggestions in bulk.

    Attributes (traitlets):
        position: index of the cluster on screen in :attr:`cluster_ids`.
        selected: face ids ticked on screen (for split, reject, or to leave out when naming).

    Methods ``name(text)``, ``split()``, ``reject()``, ``merge(other)``, ``select(face_id)``,
    ``confirm_suggestions()``, ``next()`` and ``previous()`` act at once on the catalog
    (through :mod:`photolab.stages.faces`): a kernel restart loses nothing.
    """

    position = traitlets.Int(0)
    selected = traitlets.List(traitlets.Int())

    CROP = 96

    def __init__(self, library, *, who: str = "me", **kwargs):
        from photolab.stages import faces as F

        super().__init__(**kwargs)
        self.F = F
        self.lib = open_library(library)
        self.who = who
        self._title = W.HTML()
        self._crops = W.HBox(layout=W.Layout(flex_flow="row wrap"))
        self.name_box = W.Combobox(placeholder="name (e.g. Anna)", ensure_option=False)
        name_b = W.Button(description="name them", button_style="success")
        split_b = W.Button(description="split off selected")
        reject_b = W.Button(description="not a face / don't tag", button_style="warning")
        self.merge_box = W.Dropdown(description="same as", options=[])
        merge_b = W.Button(description="merge")
        prev_b, next_b = W.Button(description="◀ previous"), W.Button(description="next ▶")
        confirm_b = W.Button(description="accept confident suggestions", button_style="info")
        name_b.on_click(lambda _: self.name(self.name_box.value))
        split_b.on_click(lambda _: self.split())
        reject_b.on_click(lambda _: self.reject())
        merge_b.on_click(lambda _: self.merge(self.merge_box.value))
        prev_b.on_click(lambda _: self.previous())
        next_b.on_click(lambda _: self.next())
        confirm_b.on_click(lambda _: self.confirm_suggestions())
        self._status = W.HTML()
        self.children = [self._title, self._crops, W.HBox([self.name_box, name_b, split_b, reject_b]),
                         W.HBox([self.merge_box, merge_b, prev_b, next_b, confirm_b]), self._status]
        self.refresh()

    # -- state ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read clusters and suggestions from the catalog, then redraw."""
        self._faces = self.F.faces(self.lib)
        self._clusters = self.F.clusters(self.lib, table=self._faces)
        self.position = min(self.position, max(0, len(self._clusters) - 1))
        self.selected = [i for i in self.selected if i in self.face_ids]
        self._render()

    @property
    def cluster_ids(self) -> list[int]:
        return [int(c) for c in self._clusters.index]

    @property
    def current(self) -> int | None:
        ids = self.cluster_ids
        return ids[self.position] if ids else None

    @property
    def face_ids(self) -> list[int]:
        c = self.current
        return [] if c is None else list(self._clusters.loc[c, "faces"])

    @traitlets.observe("position")
    def _position_changed(self, change) -> None:
        self.selected = []
        self._render()

    # -- actions ----------------------------------------------------------------------------
    def select(self, face_id: int, value: bool | None = None) -> None:
        """Tick (or untick) a face of the cluster on screen."""
        face_id = int(face_id)
        on = face_id not in self.selected if value is None else value
        rest = [i for i in self.selected if i != face_id]
        self.selected = rest + [face_id] if on else rest

    def name(self, text: str | None = None) -> int:
        """Name the cluster's faces, less the selected ones; returns how many were named."""
        ids = [i for i in self.face_ids if i not in self.selected]
        n = self.F.name_faces(self.lib, ids, text if text is not None else self.name_box.value, who=self.who) if ids else 0
        self.selected = []
        self.refresh()
        return n

    def split(self) -> int | None:
        """Move the selected faces into a cluster of their own."""
        if not self.selected:
            return None
        c = self.F.split_faces(self.lib, self.selected)
        self.selected = []
        self.refresh()
        return c

    def reject(self) -> int:
        """Reject the selected faces (all of the cluster when none is selected)."""
        ids = list(self.selected) or self.face_ids
        n = self.F.reject_faces(self.lib, ids)
        self.selected = []
        self.refresh()
        return n

    def merge(self, other: int | None) -> None:
        """Put cluster ``other``'s faces into the one on screen."""
        if other is None or self.current is None or int(other) == self.current:
            return
        self.F.merge_clusters(self.lib, [self.current, int(other)])
        self.refresh()

    def confirm_suggestions(self, *, confident_only: bool = True) -> int:
        n = self.F.confirm_faces(self.lib, confident_only=confident_only, who=self.who)
        self.refresh()
        return n

    def next(self) -> None:
        if self.position + 1 < len(self.cluster_ids):
            self.position += 1

    def previous(self) -> None:
        if self.position > 0:
            self.position -= 1

    # -- view -------------------------------------------------------------------------------
    def _render(self) -> None:
        known = sorted(set(self._faces["person"].dropna()))
        self.name_box.options = known
        c = self.current
        counts = self._faces["status"].value_counts()
        self._status.value = ", ".join(f"{int(counts.get(k, 0))} {k}" for k in
                                       ("named", "confident", "tentative", "unknown", "rejected")) + " faces"
        if c is None:
            self._title.value = "<b>No unnamed faces.</b> Scan more photos, or accept suggestions."
            self._crops.children = []
            self.merge_box.options = []
            return
        row = self._clusters.loc[c]
        hint = row["suggestion"] if isinstance(row["suggestion"], str) else None
        self._title.value = (f"<b>Cluster {c}</b> ({self.position + 1} of {len(self.cluster_ids)}) · "
                             f"{row['size']} faces in {row['photos']} photos"
                             + (f" · looks like <b>{hint}</b>" if hint else ""))
        self.name_box.value = hint or ""
        self.merge_box.options = [(f"cluster {o}", o) for o in self.cluster_ids if o != c]
        cards = []
        for fid in self.face_ids[:60]:
            f = self._faces.loc[fid]
            img = W.Image(value=Path(f["crop"]).read_bytes() if Path(f["crop"]).is_file() else b"", format="jpeg",
                          layout=W.Layout(width=f"{self.CROP}px", height=f"{self.CROP}px"))
            tick = W.Checkbox(value=fid in self.selected, description=f"#{fid}", indent=False,
                              layout=W.Layout(width=f"{self.CROP}px"))
            tick.observe(lambda ch, i=fid: self.select(i, ch["new"]), names="value")
            cards.append(W.VBox([img, tick], layout=W.Layout(margin="2px")))
        self._crops.children = cards


__all__ = ["ApplyButton", "DedupeReview", "FaceNamer", "ReviewGrid", "ThresholdTuner"]
