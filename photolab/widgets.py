"""Notebook widgets: thin classes over package functions.

State lives in traitlets, actions are plain methods, so a test (or a script)
sets a value, calls a method and checks the result without a browser; the
widget tree (``.widget``) only shows that state.
"""

from __future__ import annotations

import io
from pathlib import Path

import ipywidgets as W
import traitlets

from . import dedupe
from .library import open_library

THUMB = 220


def _thumb_bytes(path: str | None, fallback: Path) -> bytes:
    """The labeling pass's thumbnail, or one made now from the file (or a grey square)."""
    if path and Path(path).is_file():
        return Path(path).read_bytes()
    from PIL import Image

    from .media import register_heif

    register_heif()
    buf = io.BytesIO()
    try:
        with Image.open(fallback) as im:
            im.draft("RGB", (THUMB, THUMB))
            im = im.convert("RGB")
            im.thumbnail((THUMB, THUMB))
            im.save(buf, "JPEG", quality=80)
    except Exception:   # unreadable: a placeholder, the card still says what the file is
        Image.new("RGB", (THUMB, THUMB), (200, 200, 200)).save(buf, "JPEG")
    return buf.getvalue()


class DedupeReview(W.VBox):
    """Duplicate groups side by side: change the keeper, split a group or dismiss it, then apply.

    Attributes (traitlets):
        plan: the dedupe plan as edited so far (a DataFrame, as :func:`photolab.dedupe.plan` returns).
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


__all__ = ["DedupeReview"]
