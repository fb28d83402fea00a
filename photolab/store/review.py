"""The catalog queries of review: samples, a person's labels and review marks, thresholds and ratings, and
the scores they are measured against. Each reads by photo id or tag through an index, except where its
text says it reads a whole (small) table."""

from __future__ import annotations

import sqlite3

from photolab.stages.index import USABLE
from photolab.store import rows_in

KINDS = ("photo", "raw", "video")


def _marks(values) -> str:
    return ", ".join("?" * len(values))


# -- samples ------------------------------------------------------------------------------------------
def strata_photos(conn: sqlite3.Connection):
    """(photo_id, path, captured_at, camera_make) of every usable photo with features, in id order (a DataFrame)."""
    import pandas as pd

    return pd.read_sql_query(
        "SELECT p.id AS photo_id, p.path, p.captured_at, p.camera_make FROM photos p "
        "JOIN features f ON f.photo_id = p.id "
        f"WHERE p.kind IN ({_marks(KINDS)}) AND p.status IN ({_marks(USABLE)}) ORDER BY p.id", conn,
        params=(*KINDS, *USABLE))


def first_pass_top_tags(conn: sqlite3.Connection):
    """Each photo's highest first-pass score (the prior's or the starter head's) and its tag (a DataFrame)."""
    import pandas as pd

    return pd.read_sql_query("SELECT photo_id, tag, max(score) AS score FROM scores "
                             "WHERE source IN ('prior', 'starter') GROUP BY photo_id", conn)


def stored_sample(conn: sqlite3.Connection, name: str):
    """The photos of the sample ``name`` (photo_id, path, stratum, seed), in id order (a DataFrame)."""
    import pandas as pd

    return pd.read_sql_query("SELECT s.photo_id, p.path, s.stratum, s.seed FROM samples s "
                             "JOIN photos p ON p.id = s.photo_id WHERE s.name = ? ORDER BY s.photo_id", conn,
                             params=(name,))


def replace_sample(db: sqlite3.Connection, name: str, rows) -> None:
    """Store the sample ``name`` as ``rows`` of (photo_id, stratum, seed, created), dropping what it held."""
    db.execute("DELETE FROM samples WHERE name = ?", (name,))
    db.executemany("INSERT INTO samples(name, photo_id, stratum, seed, created) VALUES (?,?,?,?,?)",
                   [(name, *r) for r in rows])


def sample_ids(conn: sqlite3.Connection, name: str) -> set[int]:
    """The photo ids of the sample ``name``."""
    return {r[0] for r in conn.execute("SELECT photo_id FROM samples WHERE name = ?", (name,))}


# -- labels, reviews, ratings -------------------------------------------------------------------------
def label_rows(conn: sqlite3.Connection):
    """Every label a person gave (photo_id, tag, value): a DataFrame."""
    import pandas as pd

    return pd.read_sql_query("SELECT photo_id, tag, value FROM labels", conn)


def scored_labels(conn: sqlite3.Connection, tag: str) -> list[tuple]:
    """(photo_id, label value, score) of the photos labeled for ``tag`` that have a score for it."""
    return conn.execute("SELECT l.photo_id, l.value, s.score FROM labels l JOIN scores s "
                        "ON s.photo_id = l.photo_id AND s.tag = l.tag WHERE l.tag = ? AND s.score IS NOT NULL",
                        (tag,)).fetchall()


def scored_labels_all(conn: sqlite3.Connection) -> list[tuple]:
    """(tag, photo_id, label value, score) of every label whose photo has a score for its tag, by tag: what
    :func:`scored_labels` gives for every tag, in one pass over the labels."""
    return conn.execute("SELECT l.tag, l.photo_id, l.value, s.score FROM labels l JOIN scores s "
                        "ON s.photo_id = l.photo_id AND s.tag = l.tag WHERE s.score IS NOT NULL "
                        "ORDER BY l.tag").fetchall()


def put_labels(db: sqlite3.Connection, rows) -> None:
    """Store labels (photo_id, tag, value, who, at), replacing a photo's earlier label for the tag."""
    db.executemany("INSERT OR REPLACE INTO labels(photo_id, tag, value, who, at) VALUES (?,?,?,?,?)", rows)


def mark_reviewed(db: sqlite3.Connection, photo_id: int, who: str, at: str) -> None:
    db.execute("INSERT OR REPLACE INTO reviews(photo_id, who, at) VALUES (?,?,?)", (int(photo_id), who, at))


def photo_state(conn: sqlite3.Connection, photo_id: int) -> dict:
    """A photo's labels (tag, value, who, at), review mark (who, at) and rating (rating, source, at) rows."""
    pid = int(photo_id)
    return {"labels": [tuple(r) for r in conn.execute("SELECT tag, value, who, at FROM labels WHERE photo_id = ?",
                                                      (pid,))],
            "review": [tuple(r) for r in conn.execute("SELECT who, at FROM reviews WHERE photo_id = ?", (pid,))],
            "rating": [tuple(r) for r in conn.execute("SELECT rating, source, at FROM ratings WHERE photo_id = ?",
                                                      (pid,))]}


def restore_photo_state(db: sqlite3.Connection, photo_id: int, labels, review, rating) -> None:
    """Put back a photo's labels, review mark and rating rows as :func:`photo_state` read them."""
    pid = int(photo_id)
    db.execute("DELETE FROM labels WHERE photo_id = ?", (pid,))
    db.executemany("INSERT INTO labels(photo_id, tag, value, who, at) VALUES (?,?,?,?,?)", [(pid, *r) for r in labels])
    db.execute("DELETE FROM reviews WHERE photo_id = ?", (pid,))
    db.executemany("INSERT INTO reviews(photo_id, who, at) VALUES (?,?,?)", [(pid, *r) for r in review])
    db.execute("DELETE FROM ratings WHERE photo_id = ?", (pid,))
    db.executemany("INSERT INTO ratings(photo_id, rating, source, at) VALUES (?,?,?,?)", [(pid, *r) for r in rating])


def reviewed_with_features(conn: sqlite3.Connection) -> list[int]:
    """The reviewed photos that have features (an embedding)."""
    return [r[0] for r in conn.execute("SELECT r.photo_id FROM reviews r JOIN features f ON f.photo_id = r.photo_id")]


def progress_counts(conn: sqlite3.Connection, sample_name: str | None = None) -> tuple[int, int]:
    """(photos reviewed, photos with features), or with ``sample_name`` (its photos reviewed, its photos)."""
    if sample_name:
        return tuple(conn.execute(
            "SELECT (SELECT count(*) FROM samples s JOIN reviews r ON r.photo_id = s.photo_id WHERE s.name = ?1), "
            "(SELECT count(*) FROM samples WHERE name = ?1)", (sample_name,)).fetchone())
    return tuple(conn.execute("SELECT (SELECT count(*) FROM reviews), (SELECT count(*) FROM features)").fetchone())


def disputed_labels(conn: sqlite3.Connection, low: float, high: float):
    """Labels 1 scored below ``low`` and labels 0 scored above ``high``, the widest gap first (a DataFrame)."""
    import pandas as pd

    return pd.read_sql_query(
        "SELECT l.photo_id, p.path, l.tag, l.value AS label, round(s.score, 3) AS score, s.source, l.who, l.at "
        "FROM labels l JOIN scores s ON s.photo_id = l.photo_id AND s.tag = l.tag JOIN photos p ON p.id = l.photo_id "
        "WHERE s.score IS NOT NULL AND ((l.value = 1 AND s.score < ?1) OR (l.value = 0 AND s.score > ?2)) "
        "ORDER BY abs(l.value - s.score) DESC", conn, params=(low, high))


# -- thumbnails and paths -----------------------------------------------------------------------------
def thumbs(conn: sqlite3.Connection, photo_ids) -> dict[int, str]:
    """photo_id -> its thumbnail (relative to the features folder), for those of ``photo_ids`` that have one."""
    return {r[0]: r[1] for r in rows_in(conn, "SELECT photo_id, thumb FROM features WHERE photo_id IN {in} "
                                              "AND thumb IS NOT NULL", [int(i) for i in photo_ids])}


def photo_path(conn: sqlite3.Connection, photo_id: int) -> str | None:
    row = conn.execute("SELECT path FROM photos WHERE id = ?", (int(photo_id),)).fetchone()
    return None if row is None else row[0]


__all__ = ["disputed_labels", "first_pass_top_tags", "label_rows", "mark_reviewed", "photo_path", "photo_state",
           "progress_counts", "put_labels", "replace_sample", "restore_photo_state", "reviewed_with_features",
           "sample_ids", "scored_labels", "scored_labels_all", "stored_sample", "strata_photos", "thumbs"]
