"""The query language of :func:`photolab.find`, parsed into a small tree.

::

    query   := or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*          AND is the default between terms
    unary   := ("NOT" | "-") unary | primary
    primary := "(" query ")" | term
    term    := [field ":"] (word | "quoted phrase")

Fields: tag, person, place, event, camera, date, rating, kind, format, quality, status, thing,
like. A term without a field is a bare word, resolved later against the library (a tag or alias,
a person, a place, an event, then any thing WordNet names). Adjacent bare words that together
name something known ("musical instrument", "New York") are read as one phrase.

Every error is a :class:`QueryError` whose one-line message names the bad term and its column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from photolab.core.errors import PhotolabError

FIELDS = ("tag", "person", "place", "event", "camera", "date", "rating", "kind", "format", "quality", "status",
          "thing", "like")
HELP = "see `photolab find --help` or the README's table of query terms"


class QueryError(PhotolabError, ValueError):
    """A query cannot be read or names something unknown; the message names the term and what to do."""


@dataclass(frozen=True)
class Term:
    field: str | None        # None: a bare word
    value: str
    col: int                 # 1-based column in the query text
    text: str                # as written


@dataclass(frozen=True)
class Not:
    child: object


@dataclass(frozen=True)
class And:
    children: tuple


@dataclass(frozen=True)
class Or:
    children: tuple


@dataclass
class _Tok:
    kind: str                # ( ) NOT AND OR - TERM
    col: int
    text: str = ""
    field: str | None = None
    value: str = ""
    quoted: bool = False


_WORD_END = set(' \t\n()"')


def _tokens(q: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(q)
    while i < n:
        c = q[i]
        if c.isspace():
            i += 1
            continue
        if c in "()":
            out.append(_Tok(c, i + 1, c))
            i += 1
            continue
        if c == "-" and i + 1 < n and not q[i + 1].isspace():   # only ever at a word's start here
            out.append(_Tok("-", i + 1, "-"))
            i += 1
            continue
        start = i
        if c == '"':
            value, i = _quoted(q, i)
            out.append(_Tok("TERM", start + 1, q[start:i], None, value, True))
            continue
        while i < n and q[i] not in _WORD_END:
            i += 1
        word = q[start:i]
        name, sep, rest = word.partition(":")
        if sep and name.lower() in FIELDS:
            quoted = False
            if not rest and i < n and q[i] == '"':
                rest, i = _quoted(q, i)
                quoted = True
            if not rest:
                raise QueryError(f'query term "{word}" (column {start + 1}) has nothing after "{name}:"; '
                                 f'write e.g. {name}:VALUE, {HELP}')
            out.append(_Tok("TERM", start + 1, q[start:i], name.lower(), rest, quoted))
        elif sep and name and name.isalpha() and not name.lower().startswith("http") and len(rest) and "/" not in word:
            close = ", ".join(f"{f}:" for f in _close(name.lower(), FIELDS)) or ", ".join(f"{f}:" for f in FIELDS)
            raise QueryError(f'query term "{word}" (column {start + 1}): unknown field "{name}:"; '
                             f"known fields: {close} ({HELP})")
        elif word in ("AND", "OR", "NOT"):
            out.append(_Tok(word, start + 1, word))
        else:
            out.append(_Tok("TERM", start + 1, word, None, word))
    return out


def _quoted(q: str, i: int) -> tuple[str, int]:
    end = q.find('"', i + 1)
    if end < 0:
        raise QueryError(f'query: the quote opened at column {i + 1} ({q[i:i + 20]}…) is never closed; '
                         f'add the closing "')
    value = q[i + 1:end]
    if not value.strip():
        raise QueryError(f'query: empty quotes at column {i + 1}; put a phrase between them or remove them')
    return value, end + 1


def _close(word: str, choices) -> list[str]:
    import difflib

    return difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)


def parse(query: str, *, known_phrase: Callable[[str, str | None], bool] | None = None):
    """The tree of ``query``: :class:`Term`, :class:`Not`, :class:`And` or :class:`Or` nodes.

    Args:
        query: the text a person typed.
        known_phrase: ``known_phrase(phrase, field)`` says whether several adjacent words name one known
            thing (``field`` None: a bare word); such words are read as one phrase, longest first.

    Raises:
        QueryError: on an empty query, a dangling operator, unbalanced parentheses or an unknown field.
    """
    if not query or not query.strip():
        raise QueryError(f"empty query; type what to find, e.g. dog, person:Anna, date:2019 ({HELP})")
    toks = _tokens(query)
    p = _Parser(toks, query, known_phrase)
    tree = p.parse_or()
    if p.i < len(toks):
        t = toks[p.i]
        if t.kind == ")":
            raise QueryError(f'query: ")" at column {t.col} has no "(" before it; remove it or add the "("')
        raise QueryError(f'query: unexpected "{t.text}" at column {t.col}; {HELP}')
    return tree


class _Parser:
    def __init__(self, toks, text, known_phrase):
        self.toks, self.i, self.text, self.known = toks, 0, text, known_phrase

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def parse_or(self):
        parts = [self.parse_and()]
        while (t := self.peek()) is not None and t.kind == "OR":
            self.i += 1
            if self.peek() is None or self.peek().kind in (")", "OR", "AND"):
                raise QueryError(f'query: "OR" at column {t.col} has nothing after it; add a term or remove "OR"')
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def parse_and(self):
        parts = []
        while (t := self.peek()) is not None and t.kind not in (")", "OR"):
            if t.kind == "AND":
                if not parts:
                    raise QueryError(f'query: "AND" at column {t.col} has nothing before it; add a term or remove it')
                self.i += 1
                nxt = self.peek()
                if nxt is None or nxt.kind in (")", "OR", "AND"):
                    raise QueryError(f'query: "AND" at column {t.col} has nothing after it; add a term or remove it')
                continue
            parts.append(self.parse_unary())
        if not parts:
            t = self.peek()
            where = f'before "{t.text}" at column {t.col}' if t else "at the end"
            raise QueryError(f"query: a term is missing {where}; {HELP}")
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def parse_unary(self):
        t = self.peek()
        if t.kind in ("NOT", "-"):
            self.i += 1
            nxt = self.peek()
            if nxt is None or nxt.kind in (")", "OR", "AND"):
                raise QueryError(f'query: "{t.text}" at column {t.col} has nothing after it; write e.g. -cat '
                                 f'or NOT cat')
            return Not(self.parse_unary())
        if t.kind == "(":
            self.i += 1
            if (nxt := self.peek()) is not None and nxt.kind == ")":
                raise QueryError(f'query: empty parentheses at column {t.col}; put terms inside or remove them')
            inner = self.parse_or()
            close = self.peek()
            if close is None or close.kind != ")":
                raise QueryError(f'query: the "(" at column {t.col} is never closed; add a ")"')
            self.i += 1
            return inner
        return self.parse_term()

    def parse_term(self):
        t = self.toks[self.i]
        if t.field in ("person", "place", "event", "thing", "tag") and not t.quoted and \
                self.known is not None:   # person:Eileen Collins, when that is one known name
            run = []
            j = self.i + 1
            while j < len(self.toks) and len(run) < 3 and self.toks[j].kind == "TERM" and \
                    self.toks[j].field is None and not self.toks[j].quoted:
                run.append(self.toks[j])
                j += 1
            for k in range(len(run), 0, -1):
                phrase = " ".join([t.value] + [x.value for x in run[:k]])
                if self.known(phrase, t.field):
                    self.i += k + 1
                    end = run[k - 1].col - 1 + len(run[k - 1].text)
                    return Term(t.field, phrase, t.col, self.text[t.col - 1:end])
        if t.field is None and not t.quoted and self.known is not None:
            # the longest run of adjacent bare words that names one known thing
            run = []
            j = self.i
            while j < len(self.toks) and len(run) < 4 and self.toks[j].kind == "TERM" and \
                    self.toks[j].field is None and not self.toks[j].quoted:
                run.append(self.toks[j])
                j += 1
            for k in range(len(run), 1, -1):
                phrase = " ".join(x.value for x in run[:k])
                if self.known(phrase, None):
                    self.i += k
                    end = run[k - 1].col - 1 + len(run[k - 1].text)
                    return Term(None, phrase, t.col, self.text[t.col - 1:end])
        self.i += 1
        return Term(t.field, t.value, t.col, t.text)


def terms(tree, *, negated: bool = False) -> list[tuple[Term, bool]]:
    """Every term of a tree with whether it sits under an odd number of NOTs."""
    if isinstance(tree, Term):
        return [(tree, negated)]
    if isinstance(tree, Not):
        return terms(tree.child, negated=not negated)
    out = []
    for c in tree.children:
        out += terms(c, negated=negated)
    return out


__all__ = ["And", "FIELDS", "Not", "Or", "QueryError", "Term", "parse", "terms"]
