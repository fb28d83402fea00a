"""Build photolab/data/thing_words.json: which English nouns name which ImageNet classes.

A word is any noun lemma of WordNet 3.0 whose synset is an ImageNet class or one
of its hypernyms ("pizza", "guitar", "dog", "musical instrument", "dessert").
A word maps to every such synset it names (an ambiguous word such as "crane"
names both the bird and the machine), and a synset to the ImageNet classes under
it. ``photolab.find`` scores a photo for a word by the summed probability of
those classes, from the photo's cached embedding through the backbone's own
classifier. Irregular plurals (noun.exc: "mice", "geese") map like their singular.

Users have no WordNet at run time, so this runs once, at build time. Needs
Debian's `wordnet-base` (/usr/share/wordnet) and timm's ImageNet synset list.

    python scripts/build_thing_words.py [OUT.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from wordnet import WORDNET_DIR, ancestors, load_index, load_nouns


def _word(lemma: str) -> str:
    return lemma.replace("_", " ").lower()


def build() -> dict:
    from photolab.features.backbone import imagenet_classes

    hypernyms, lemmas = load_nouns()
    senses = load_index()
    classes = imagenet_classes()
    assert len(classes) == 1000, len(classes)
    under: dict[str, set[int]] = {}
    for index, wnid in enumerate(classes):
        for a in ancestors(wnid, hypernyms):
            under.setdefault(a, set()).add(index)
    words: dict[str, list[str]] = {}
    for lemma, wnids in senses.items():
        covered = [w for w in wnids if w in under]   # WordNet's sense order
        if covered:
            words[_word(lemma)] = covered
    plurals = 0
    with open(WORDNET_DIR / "noun.exc", encoding="latin-1") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and _word(parts[0]) not in words and _word(parts[1]) in words:
                words[_word(parts[0])] = words[_word(parts[1])]
                plurals += 1
    used = sorted({w for ws in words.values() for w in ws})
    return {
        "about": "Built by scripts/build_thing_words.py from WordNet 3.0 (Princeton University, WordNet licence) "
                 "and the ImageNet-1k class list; do not edit by hand.",
        "synsets": {w: [_word(lemmas[w][0]), sorted(under[w])] for w in used},
        "words": dict(sorted(words.items())),
        "irregular_plurals": plurals,
    }


def main(out: Path) -> None:
    data = build()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":"), sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(f"{out}: {len(data['words'])} words ({data['irregular_plurals']} irregular plurals) "
          f"over {len(data['synsets'])} synsets, {out.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "photolab" / "data" / "thing_words.json")
