"""Reading catalog files: JSON Lines (the full schema) and CSV (flat columns).

Readers never stop at the first bad row: they return every valid record and
every rejected row with its line number and reason, so a user fixes a file in
one pass.  Numbers are parsed as :class:`~decimal.Decimal`, never float.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from .records import ProductRecord, validate_record

CSV_LIST_SEPARATOR = "|"


@dataclass(frozen=True)
class RowError:
    """A rejected input row."""

    line: int
    reason: str
    product_id: str | None = None
    raw: str = ""

    def describe(self) -> str:
        who = f" (product {self.product_id})" if self.product_id else ""
        return f"line {self.line}{who}: {self.reason}"


@dataclass(frozen=True)
class Row:
    """A valid input row."""

    line: int
    record: ProductRecord


def _jsonl_rows(path: Path) -> Iterator[tuple[int, str, Any]]:
    with open(path, encoding="utf-8-sig") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            line = text.rstrip("\r\n")
            try:
                yield number, line, json.loads(line, parse_float=Decimal)
            except json.JSONDecodeError as exc:
                # The column within this line (the parser counts from the start of what it was given).
                yield number, line, RowError(number, f"not valid JSON: {exc.msg} at column {exc.pos + 1}")


def _csv_to_dict(row: dict[str, str], default_lang: str) -> dict[str, Any]:
    """Map flat CSV columns onto the JSON schema.

    ``title`` / ``title_<lang>``, ``first_level_category_id``,
    ``first_level_category_name[_<lang>]`` (same for ``second_level``),
    ``sale_price``, ``original_price``, ``currency``, ``images`` and ``ship_to``
    separated by ``|``; empty cells are absent values.
    """
    cells = {key.strip(): (value or "").strip() for key, value in row.items() if key is not None}
    product: dict[str, Any] = {}
    titles: dict[str, str] = {}
    price: dict[str, Any] = {}
    category: dict[str, dict[str, Any]] = {}
    for key, value in cells.items():
        if value == "":
            continue
        if key == "title" or key.startswith("title_"):
            titles[key[6:] or default_lang] = value
        elif key in ("sale_price", "original_price"):
            price[key.removesuffix("_price")] = value
        elif key == "currency":
            price["currency"] = value
        elif key.startswith(("first_level_category_", "second_level_category_")):
            level, _, field = key.partition("_category_")
            entry = category.setdefault(level, {"name": {}})
            if field == "id":
                entry["id"] = value
            elif field == "name" or field.startswith("name_"):
                entry["name"][field[5:] or default_lang] = value
            else:
                product[key] = value  # unknown column: let validation name it
        elif key == "images":
            product["images"] = [part.strip() for part in value.split(CSV_LIST_SEPARATOR) if part.strip()]
        elif key == "ship_to":
            product["ship_to"] = value
        elif key in ("shop_id", "volume"):
            product[key] = int(value) if value.lstrip("-").isdigit() else value
        else:
            product[key] = value
    if titles:
        product["title"] = titles
    if price:
        product["price"] = price
    if category:
        product["category"] = category
    return product


def _csv_rows(path: Path, default_lang: str) -> Iterator[tuple[int, str, Any]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "product_id" not in [name.strip() for name in reader.fieldnames]:
            yield 1, "", RowError(1, "the CSV header must name at least product_id, shop_id, title, sale_price, currency and images")
            return
        for row in reader:
            line = reader.line_num
            raw = json.dumps(row, ensure_ascii=False)
            if None in row:
                yield line, raw, RowError(line, "the row has more cells than the header")
                continue
            yield line, raw, _csv_to_dict(row, default_lang)


def iter_catalog_file(path: Path, default_lang: str, file_format: str | None = None) -> Iterator[Row | RowError]:
    """Each row of ``path``, validated, in file order: a file of any size streams through.

    ``file_format`` is "jsonl" or "csv" (default: by extension).  What is kept
    while reading is each product id's line (to refuse a repeated id), not the rows.
    """
    kind = file_format or ("csv" if path.suffix.lower() in (".csv", ".tsv") else "jsonl")
    seen: dict[str, int] = {}
    for line, raw, data in (_csv_rows(path, default_lang) if kind == "csv" else _jsonl_rows(path)):
        if isinstance(data, RowError):
            yield RowError(data.line, data.reason, None, raw)
            continue
        product_id = str(data.get("product_id")) if isinstance(data, dict) and data.get("product_id") is not None else None
        try:
            record = validate_record(data, default_lang)
        except ValueError as exc:
            yield RowError(line, str(exc), product_id, raw)
            continue
        if record.product_id in seen:
            yield RowError(line, f"product_id {record.product_id} already appears on line {seen[record.product_id]}", record.product_id, raw)
            continue
        seen[record.product_id] = line
        yield Row(line, record)


def read_catalog_file(path: Path, default_lang: str, file_format: str | None = None) -> tuple[list[Row], list[RowError]]:
    """Every valid row and every rejected one of ``path`` (see :func:`iter_catalog_file`)."""
    rows: list[Row] = []
    errors: list[RowError] = []
    for item in iter_catalog_file(path, default_lang, file_format):
        (rows if isinstance(item, Row) else errors).append(item)  # type: ignore[arg-type]
    return rows, errors
