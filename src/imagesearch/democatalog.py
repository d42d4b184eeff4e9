"""Demo catalogs: plausible, deterministic listings for generated pictures or a folder of photos.

``imagesearch demo-catalog DIR`` (and ``imagesearch demo`` without ``--images``)
writes product-like pictures and ``catalog.jsonl`` so a new user can try the
service with no photos of their own; about one design in six is sold by three
shops, so "same" searches return several sellers.  ``imagesearch demo --images
DIR`` lists the photos of DIR instead, one product per photo, its class
subfolder becoming the category.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")
FIRST_PRODUCT_ID = 1005007000000000


def _listing(rng: np.random.Generator, number: int, base_price: float, title: dict[str, str], category: dict[str, Any], image: str) -> dict[str, Any]:
    """One shop's listing: price around ``base_price``, orders, rating and shipping drawn from ``rng``."""
    sale = round(base_price * float(rng.uniform(0.8, 1.2)), 2)
    ships = sorted(set(rng.choice(COUNTRIES, size=int(rng.integers(3, len(COUNTRIES))), replace=False).tolist()))
    product_id = str(FIRST_PRODUCT_ID + number)
    return {
        "product_id": product_id,
        "shop_id": 1103000000 + int(rng.integers(1, 500)),
        "title": title,
        "category": category,
        "price": {"sale": f"{sale:.2f}", "original": f"{sale * float(rng.uniform(1.2, 6)):.2f}", "currency": "USD"},
        "volume": int(rng.integers(0, 5000)),
        "evaluate_rate": f"{rng.uniform(3.8, 5.0):.1f}",
        "ship_from": "CN",
        "ship_to": "*" if rng.random() < 0.3 else ships,
        "product_detail_url": f"https://shop.example/item/{product_id}.html",
        "images": [image],
    }


def write_demo_catalog(folder: Path, count: int = 60, seed: int = 2024) -> Path:
    """Write ``count`` generated designs into ``folder``; returns the JSONL path."""
    rng = np.random.default_rng(seed)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    path = folder / "catalog.jsonl"
    number = 0
    with open(path, "w", encoding="utf-8") as handle:
        for design in range(count):
            product_image(seed + design).save(images / f"{design}.jpg", format="JPEG", quality=90)
            noun_en, noun_fr, cat_en, cat_fr, cat_id, sub_en, sub_fr, sub_id = NOUNS[design % len(NOUNS)]
            adjective = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
            title = {"en": f"{adjective} {noun_en} #{design}", "fr": f"{noun_fr} {adjective.lower()} n°{design}"}
            category = {
                "first_level": {"id": cat_id, "name": {"en": cat_en, "fr": cat_fr}},
                "second_level": {"id": sub_id, "name": {"en": sub_en, "fr": sub_fr}},
            }
            base = float(rng.uniform(2, 60))
            for _ in range(3 if design % 6 == 0 else 1):
                handle.write(json.dumps(_listing(rng, number, base, title, category, f"images/{design}.jpg"), ensure_ascii=False) + "\n")
                number += 1
    return path


def write_folder_catalog(images_dir: Path, path: Path, seed: int = 2024) -> Path:
    """List every photo under ``images_dir`` (class subfolders become categories) into ``path``."""
    rng = np.random.default_rng(seed)
    photos = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    classes = sorted({p.parent.relative_to(images_dir).as_posix() for p in photos})
    with open(path, "w", encoding="utf-8") as handle:
        for number, photo in enumerate(photos):
            label = photo.parent.relative_to(images_dir).as_posix()
            name = label.replace("_", " ").replace("-", " ").replace("/", " ").strip().title() or "Product"
            adjective = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
            category = {
                "first_level": {"id": "1", "name": {"en": "Catalog", "fr": "Catalogue"}},
                "second_level": {"id": str(100 + classes.index(label)), "name": name},
            }
            title = {"en": f"{adjective} {name} #{number}"}
            image = photo.relative_to(images_dir).as_posix()
            handle.write(json.dumps(_listing(rng, number, float(rng.uniform(2, 60)), title, category, image), ensure_ascii=False) + "\n")
    return path
