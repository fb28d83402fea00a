"""Build photolab/data/imagenet_prior.csv: which ImageNet classes vote for which taxonomy tag.

Each tag has *anchor* synsets in WordNet 3.0; an ImageNet class votes for a tag
with weight 1 when an anchor is among its hypernyms. *Context* anchors vote
with a smaller weight: objects that are not the tag but are seldom
photographed without it (clothing for person, furniture for indoor, street
furniture for city). A photo's prior score for a tag is the sum of its class
probabilities times these weights, capped at 1.

Needs Debian's `wordnet-base` (/usr/share/wordnet) and timm's ImageNet synset list.

    python scripts/build_prior_map.py [OUT.csv]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from wordnet import ancestors, load_index, load_nouns, synset

# tag: (anchors, {context anchor: weight}); names are WordNet 'lemma.sense' (sense 1 when omitted).
ANCHORS: dict[str, tuple[list[str], dict[str, float]]] = {
    "person": (["person"], {"garment": 0.5, "clothing": 0.4, "headdress": 0.4, "neckwear": 0.4,
                            "sunglasses": 0.4, "lipstick": 0.4, "wig": 0.4, "swimsuit": 0.5}),
    "dog": (["dog"], {}),
    "cat": (["domestic_cat"], {}),
    "bird": (["bird"], {}),
    "horse": (["horse"], {"horse_cart": 0.5}),
    "food": (["solid_food", "nutriment", "beverage"], {"foodstuff": 0.5, "plate": 0.3}),
    "flower": (["n11669921"], {"pot.4": 0.3}),  # flower: a plant cultivated for its blooms
    "car": (["car"], {}),
    "vehicle": (["motor_vehicle", "bicycle"], {"airplane": 0.5, "train": 0.5, "locomotive": 0.5,
                                              "passenger_car.1": 0.5, "vessel.2": 0.4, "tramcar": 0.5}),
    "boat": (["boat", "ship"], {"vessel.2": 0.7}),
    "building": (["building", "place_of_business"], {"structure": 0.4, "roof": 0.4, "window": 0.3}),
    "beach": (["seashore"], {"shore": 0.6, "sandbar": 0.6}),
    "mountain": (["mountain", "natural_elevation"], {"geological_formation": 0.4}),
    "landscape": (["geological_formation"], {"land.4": 0.4}),
    "indoor": ([], {"furniture": 0.6, "home_appliance": 0.6, "room": 0.6, "kitchen_utensil": 0.4,
                    "tableware": 0.4, "electronic_equipment": 0.3, "computer": 0.4, "bedclothes": 0.5}),
    "city": ([], {"street_sign": 0.6, "traffic_light": 0.6, "streetcar": 0.6, "cab.3": 0.4,
                  "trolleybus": 0.6, "parking_meter": 0.6, "place_of_business": 0.4, "bus": 0.4}),
}


def main(out: Path) -> None:
    from photolab.features.backbone import imagenet_classes

    hypernyms, lemmas = load_nouns()
    senses = load_index()
    resolved = {tag: ({synset(a, senses) for a in anchors}, {synset(a, senses): w for a, w in context.items()})
                for tag, (anchors, context) in ANCHORS.items()}
    synsets = imagenet_classes()
    assert len(synsets) == 1000, len(synsets)
    rows = []
    for index, wnid in enumerate(synsets):
        up = ancestors(wnid, hypernyms)
        for tag, (anchors, context) in resolved.items():
            weight = 1.0 if up & anchors else max((w for a, w in context.items() if a in up), default=0.0)
            if weight > 0:
                rows.append((index, wnid, lemmas[wnid][0], tag, weight))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        fh.write("# Built by scripts/build_prior_map.py from WordNet 3.0 hypernyms; do not edit by hand.\n")
        w = csv.writer(fh)
        w.writerow(["class_index", "wnid", "lemma", "tag", "weight"])
        w.writerows(rows)
    per_tag: dict[str, int] = {}
    for r in rows:
        per_tag[r[3]] = per_tag.get(r[3], 0) + 1
    print(f"{out}: {len(rows)} class-tag votes; per tag: {per_tag}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "photolab" / "data" / "imagenet_prior.csv")
