"""File names as the operating system gives them: bytes, not always valid UTF-8.

On Linux a file name is any sequence of bytes. Python hands names that are not valid
UTF-8 over as text with "surrogate escapes" (``os.fsdecode``), which SQLite, the
terminal and most libraries refuse. photolab handles them in three ways:

- :func:`shown` is how such a name appears in messages, reports and the catalog's
  text keys (``gather_log.source_rel``, ``import_state.path``): each undecodable byte is
  written as ``\\xff``, as Python's ``ascii()`` does. Valid names are unchanged.
- :func:`library_name` is the name a gathered copy gets in the library: every
  undecodable byte becomes the character it stands for in Windows-1252 / Latin-1 (the
  usual origin of such names: ``Caf\\xe9.jpg`` becomes ``Café.jpg``), so every name inside
  the library is valid UTF-8 and the catalog can hold it. The source file is found
  again by its :func:`shown` name, so a re-run never copies it twice.
- :func:`fit` shortens a name to the 255-byte limit of one folder entry, keeping its
  extension.
"""

from __future__ import annotations

import os

NAME_MAX = 255   # bytes in one folder entry on every common Linux filesystem


def is_clean(text: str) -> bool:
    """True when ``text`` is valid Unicode (no surrogate escapes of undecodable bytes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(path) -> str:
    """``path`` as printable text: bytes that are not UTF-8 are written ``\\xNN``."""
    if isinstance(path, bytes):
        raw = path
    else:
        text = os.fspath(path)
        if is_clean(text):
            return text
        raw = text.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def _byte_char(b: int) -> str:
    if b >= 0xA0:
        return chr(b)   # Latin-1
    try:
        return bytes([b]).decode("cp1252")
    except UnicodeDecodeError:
        return "_"


def library_name(name: str) -> str:
    """A valid UTF-8 name for ``name`` (a single component), within :data:`NAME_MAX` bytes."""
    if not is_clean(name):
        name = "".join(_byte_char(ord(c) - 0xDC00) if 0xDC80 <= ord(c) <= 0xDCFF else
                       (c if is_clean(c) else "_") for c in name)
    return fit(name)


def fit(name: str, tail: str = "") -> str:
    """``name`` (with ``tail`` inserted before its extension, e.g. ``_1``) shortened to fit one
    folder entry: the stem loses characters from its end, the extension is kept."""
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    if len(ext.encode("utf-8", "surrogateescape")) > 16:
        stem, ext = name, ""
    out = stem + tail + ext
    while len(out.encode("utf-8", "surrogateescape")) > NAME_MAX and stem:
        stem = stem[:-1]
        out = stem + tail + ext
    return out


__all__ = ["NAME_MAX", "fit", "is_clean", "library_name", "shown"]
