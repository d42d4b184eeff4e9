"""A generated example catalog: product-like pictures with plausible, deterministic listings.

``imagesearch demo-catalog DIR`` writes ``DIR/images/*.jpg`` and
``DIR/catalog.jsonl`` so a new user can try import and search at once, with
no photos of their own.  Some products share a photo across shops (as on
AliExpress), so "same" searches return several sellers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .vision.synthetic import product_image

ADJECTIVES = ["Classic", "Modern", "Vintage", "Compact", "Deluxe", "Soft", "Portable", "Handmade", "Minimal", "Bold"]
NOUNS = [
    ("Cushion", "Coussin", "Home & Garden", "Maison et jardin", "15", "Home Decor", "Décoration", "3710"),
    ("Handbag", "Sac à main", "Luggage & Bags", "Bagages et sacs", "1524", "Women's Bags", "Sacs femme", "152401"),
    ("Toy Blocks", "Jeu de cubes", "Toys & Hobbies", "Jouets et loisirs", "26", "Building Toys", "Jeux de construction", "100001625"),
    ("Lamp", "Lampe", "Lights & Lighting", "Luminaires", "39", "Table Lamps", "Lampes de table", "150401"),
    ("Pet Bed", "Panier pour animal", "Home & Garden", "Maison et jardin", "15", "Pet Products", "Animalerie", "100006664"),
]
COUNTRIES = ["US", "FR", "DE", "GB", "ES", "IT", "BR", "JP", "KW", "CA"]


def write_demo_catalog(folder: Path, count: int = 60, seed: int = 2024) -> Path:
    """Write ``count`` products (about one in six sold by three shops) into ``folder``; returns the JSONL path."""
    rng = np.random.default_rng(seed)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    path = folder / "catalog.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        product = 0
        for design in range(count):
            picture = images / f"{design}.jpg"
            product_image(seed + design).save(picture, format="JPEG", quality=90)
            sellers = 3 if design % 6 == 0 else 1
            noun_en, noun_fr, cat_en, cat_fr, cat_id, sub_en, sub_fr, sub_id = NOUNS[design % len(NOUNS)]
            adjective = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
            base = float(rng.uniform(2, 60))
            for _ in range(sellers):
                sale = round(base * float(rng.uniform(0.8, 1.2)), 2)
                ships = sorted(set(rng.choice(COUNTRIES, size=int(rng.integers(3, len(COUNTRIES))), replace=False).tolist()))
                record = {
                    "product_id": f"{1005007000000000 + product}",
                    "shop_id": 1103000000 + int(rng.integers(1, 500)),
                    "title": {"en": f"{adjective} {noun_en} #{design}", "fr": f"{noun_fr} {adjective.lower()} n°{design}"},
                    "category": {
                        "first_level": {"id": cat_id, "name": {"en": cat_en, "fr": cat_fr}},
                        "second_level": {"id": sub_id, "name": {"en": sub_en, "fr": sub_fr}},
                    },
                    "price": {"sale": f"{sale:.2f}", "original": f"{sale * float(rng.uniform(1.2, 6)):.2f}", "currency": "USD"},
                    "volume": int(rng.integers(0, 5000)),
                    "evaluate_rate": f"{rng.uniform(3.8, 5.0):.1f}",
                    "ship_from": "CN",
                    "ship_to": "*" if rng.random() < 0.3 else ships,
                    "product_detail_url": f"https://shop.example/item/{1005007000000000 + product}.html",
                    "images": [f"images/{design}.jpg"],
                }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                product += 1
    return path
