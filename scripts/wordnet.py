"""Minimal reader of WordNet 3.0's noun database (Debian's wordnet-base), for building the prior map."""

from __future__ import annotations

from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")


def load_nouns(path: Path = WORDNET_DIR / "data.noun") -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(hypernyms, lemmas) by wnid ('n' + 8-digit offset); hypernyms include instance hypernyms."""
    hypernyms: dict[str, list[str]] = {}
    lemmas: dict[str, list[str]] = {}
    with open(path, encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("  "):
                continue
            fields = line.split(" | ", 1)[0].split()
            offset, n_words = fields[0], int(fields[3], 16)
            words = [fields[4 + 2 * i] for i in range(n_words)]
            i = 4 + 2 * n_words
            n_ptrs = int(fields[i])
            ptrs = []
            for k in range(n_ptrs):
                sym, target, pos = fields[i + 1 + 4 * k: i + 4 + 4 * k]
                if sym in ("@", "@i") and pos == "n":
                    ptrs.append("n" + target)
            hypernyms["n" + offset] = ptrs
            lemmas["n" + offset] = words
    return hypernyms, lemmas


def ancestors(wnid: str, hypernyms: dict[str, list[str]]) -> set[str]:
    """All hypernyms of a synset, itself included."""
    seen = {wnid}
    stack = [wnid]
    while stack:
        for parent in hypernyms.get(stack.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def load_index(path: Path = WORDNET_DIR / "index.noun") -> dict[str, list[str]]:
    """Noun lemma -> its synsets' wnids in WordNet's sense order."""
    senses: dict[str, list[str]] = {}
    with open(path, encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("  "):
                continue
            f = line.split()
            n_synsets, n_ptrs = int(f[2]), int(f[3])
            senses[f[0]] = ["n" + off for off in f[4 + n_ptrs + 2: 4 + n_ptrs + 2 + n_synsets]]
    return senses


def synset(name: str, senses: dict[str, list[str]]) -> str:
    """wnid of 'lemma.N' (N-th noun sense, 1-based; default 1)."""
    if name[:1] == "n" and name[1:].isdigit():
        return name
    lemma, _, n = name.partition(".")
    return senses[lemma.lower()][int(n or 1) - 1]
