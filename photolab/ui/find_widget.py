"""The find widget of notebook 10: a search box with the syntax help beside it, the results as a
grid of cached thumbnails (inline image bytes, never file URLs), and a photo's details with
"more like this". A thin class over :func:`photolab.find`: state in traitlets, actions as methods
(``search``, ``select``, ``more_like_this``), so tests drive it without a browser.
"""

from __future__ import annotations

import html

import ipywidgets as W
import traitlets

from photolab.stages.search import find
from photolab.core.library import open_library
from photolab.stages.query import QueryError

THUMB = 160

SYNTAX_HELP = """
<div class="photolab-find-help" style="font-size:12px;line-height:1.45">
<b>Query terms</b> (AND between terms unless you write OR)<br>
<code>dog</code> <code>bday</code> a tag or alias, a person, a place, an event<br>
<code>pizza</code> <code>"musical instrument"</code> any thing WordNet names<br>
<code>person:Anna</code> <code>place:Italy</code> <code>event:Wedding</code><br>
<code>date:2019</code> <code>date:2019-06..2019-08</code> <code>date:..2010</code><br>
<code>rating:&gt;=3</code> <code>camera:canon</code> <code>kind:raw</code> <code>format:heif</code><br>
<code>quality:blurry</code> <code>status:quarantined</code><br>
<code>like:123</code> <code>like:2019/IMG_0001.jpg</code> photos most like one<br>
<code>dog OR cat</code> <code>-blurry</code> <code>NOT kind:raw</code> <code>(a OR b) c</code>
</div>"""


class FindBrowser(W.VBox):
    """Search the library and look at what was found.

    Attributes (traitlets):
        query: the query text (the search box).
        selected: the photo whose details are shown (None: none).

    Methods: ``search(query=None)`` runs the query (an error is shown as one line, not raised),
    ``select(photo_id)`` shows a photo's tags, people, place and date, ``more_like_this()`` searches
    ``like:<selected>``.
    """

    query = traitlets.Unicode("")
    selected = traitlets.Any(None)

    def __init__(self, library, *, limit: int = 48, columns: int = 6, **kwargs):
        super().__init__(**kwargs)
        self.lib = open_library(library)
        self.limit = limit
        self.results = None
        self.error: str | None = None
        self._box = W.Text(placeholder="dog beach date:2019 -blurry", description="find",
                           layout=W.Layout(width="460px"))
        self._box.add_class("photolab-find-box")
        self._box.continuous_update = False
        self._go = W.Button(description="search", button_style="primary")
        self._go.on_click(lambda _: self.search(self._box.value))
        self._box.observe(lambda ch: self.search(ch["new"]) if ch["new"].strip() else None, "value")
        self._status = W.HTML()
        self._grid = W.GridBox(layout=W.Layout(grid_template_columns=f"repeat({columns}, {THUMB + 20}px)",
                                               grid_gap="6px"))
        self._grid.add_class("photolab-find-grid")
        self._detail = W.HTML()
        self._more = W.Button(description="more like this", disabled=True, icon="images")
        self._more.on_click(lambda _: self.more_like_this())
        search_col = W.VBox([W.HBox([self._box, self._go]), self._status])
        self.children = [W.HBox([search_col, W.HTML(SYNTAX_HELP)]), self._grid,
                         W.HBox([self._detail, self._more])]

    # -- actions ----------------------------------------------------------------------------------
    def search(self, query: str | None = None):
        """Run ``query`` (default: the box's text) and show the results; returns the DataFrame (None on error)."""
        if query is not None:
            self.query = query
            if self._box.value != query:
                self._box.value = query
        self.selected = None
        try:
            self.results = find(self.lib, self.query, limit=self.limit)
        except QueryError as exc:
            self.results, self.error = None, str(exc)
            self._status.value = f'<span style="color:#b00020">{html.escape(self.error)}</span>'
            self._grid.children = []
            return None
        self.error = None
        n = len(self.results)
        more = f" (the first {self.limit})" if n == self.limit else ""
        self._status.value = f"{n} photo{'s' if n != 1 else ''}{more} for <code>{html.escape(self.query)}</code>"
        from photolab.store import find as store

        # the thumbnails of every card in one read, not the photo's details once per card
        rows = store.result_rows(self.lib.catalog.conn, [int(i) for i in self.results["photo_id"]])
        thumbs = {pid: r[2] for pid, r in rows.items()}
        self._grid.children = [self._card(r, thumbs.get(int(r.photo_id))) for r in self.results.itertuples(index=False)]
        return self.results

    def select(self, photo_id: int) -> dict:
        """Show ``photo_id``'s tags, people, place, event, date and rating; returns them as a dict."""
        from photolab.store import find as store
        from photolab.stages.tagging import accepted_tags

        pid = int(photo_id)
        info = store.photo_details(self.lib.catalog.conn, pid)
        if not info:
            raise KeyError(f"photo {pid} is not in {self.lib.root}")
        info["tags"] = sorted(accepted_tags(self.lib, [pid]).get(pid, set()))
        self.selected = pid
        place = info["place"]
        where = ", ".join(x for x in (place["city"], place["region"], place["country"]) if x) if place else "—"
        if place and not place["confirmed"]:
            where += " (suggested)"
        rows = [("path", info["path"]), ("date", info["captured_at"] or "—"), ("tags", ", ".join(info["tags"]) or "—"),
                ("people", ", ".join(info["people"]) or "—"), ("place", where), ("event", info["event"] or "—"),
                ("camera", info["camera"] or "—"),
                ("rating", "—" if info["rating"] is None else str(info["rating"]))]
        self._detail.value = ("<table class='photolab-find-detail'>" + "".join(
            f"<tr><th style='text-align:left;padding-right:8px'>{k}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in rows) + "</table>")
        self._more.disabled = False
        return info

    def more_like_this(self):
        """Search for the photos most like the selected one."""
        if self.selected is None:
            raise ValueError("select a photo first")
        return self.search(f"like:{self.selected}")

    # -- rendering --------------------------------------------------------------------------------
    def thumbnail(self, photo_id: int) -> bytes:
        """The cached thumbnail's bytes (one made from the file where the labeling pass left none)."""
        from photolab.store import find as store

        info = store.photo_details(self.lib.catalog.conn, int(photo_id))
        return self._thumbnail(info.get("thumb"), info["path"])

    def _thumbnail(self, thumb: str | None, path: str) -> bytes:
        from photolab.ui.widgets import _thumb_bytes

        return _thumb_bytes(str(self.lib.state / "features" / thumb) if thumb else None, self.lib.abs(path), THUMB)

    def _card(self, r, thumb: str | None):
        img = W.Image(value=self._thumbnail(thumb, r.path), format="jpeg",
                      layout=W.Layout(max_width=f"{THUMB}px", max_height=f"{THUMB}px", object_fit="contain"))
        img.add_class("photolab-find-thumb")
        name = r.path.rsplit("/", 1)[-1]
        open_btn = W.Button(description=name[:22], tooltip=r.path, layout=W.Layout(width=f"{THUMB}px"))
        open_btn.on_click(lambda _, pid=r.photo_id: self.select(pid))
        why = W.HTML(f"<div style='font-size:11px;line-height:1.2;width:{THUMB}px;overflow:hidden'>"
                     f"{html.escape(r.why)}</div>")
        card = W.VBox([img, open_btn, why], layout=W.Layout(width=f"{THUMB + 14}px"))
        card.add_class("photolab-find-card")
        return card


__all__ = ["FindBrowser", "SYNTAX_HELP"]
