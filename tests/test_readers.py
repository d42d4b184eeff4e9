"""Catalog files: JSON Lines and CSV, validated, with every error and its line number."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from imagesearch.catalog.readers import read_catalog_file

GOOD = {
    "product_id": "1005007857219128",
    "shop_id": 1103576287,
    "title": {"en": "Cat scratcher", "fr": "Griffoir"},
    "category": {"first_level": {"id": "15", "name": "Home & Garden"}, "second_level": {"id": 100006664, "name": {"en": "Pet Products"}}},
    "price": {"sale": 0.99, "original": "7.95", "currency": "usd"},
    "volume": 712,
    "evaluate_rate": 4.9,
    "ship_from": "CN",
    "ship_to": ["US", "UK"],
    "product_detail_url": "https://www.aliexpress.com/item/1005007857219128.html",
    "images": ["a.jpg", "https://img.example/b.jpg"],
}


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(row if isinstance(row, str) else json.dumps(row) for row in rows) + "\n")
    return path


def test_valid_jsonl_row(tmp_path: Path) -> None:
    rows, errors = read_catalog_file(write_jsonl(tmp_path / "c.jsonl", [GOOD]), "en")
    assert errors == []
    record = rows[0].record
    assert record.price.sale == Decimal("0.99") and record.price.currency == "USD"
    assert record.ship_to == ["GB", "US"]
    assert record.category["second_level"].id == "100006664"
    assert record.title == {"en": "Cat scratcher", "fr": "Griffoir"}
    assert record.category["first_level"].name == {"en": "Home & Garden"}


def test_every_error_is_reported_with_its_line(tmp_path: Path) -> None:
    rows = [
        GOOD,
        "{not json",
        {**GOOD, "product_id": "bad id!"},
        {**GOOD, "product_id": "x2", "price": {"sale": "-1", "currency": "USD"}},
        {**GOOD, "product_id": "x3", "ship_to": ["XX", "US", "YY"]},
        {**GOOD, "product_id": "x4", "images": []},
        {**GOOD, "product_id": "x5", "evaluate_rate": 7},
        {**GOOD, "product_id": "x6", "colour": "red"},
        GOOD,
    ]
    valid, errors = read_catalog_file(write_jsonl(tmp_path / "c.jsonl", rows), "en")
    assert [row.line for row in valid] == [1]
    assert [error.line for error in errors] == [2, 3, 4, 5, 6, 7, 8, 9]
    reasons = {error.line: error.reason for error in errors}
    assert reasons[2] == "not valid JSON: Expecting property name enclosed in double quotes at column 2"
    assert "product_id" in reasons[3]
    assert "price.sale" in reasons[4]
    assert "ship_to" in reasons[5] and "'XX', 'YY' are not" in reasons[5]
    assert "images" in reasons[6]
    assert "evaluate_rate" in reasons[7]
    assert "colour" in reasons[8]
    assert "already appears on line 1" in reasons[9]


def test_csv_flat_columns(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "product_id,shop_id,title,title_fr,first_level_category_id,first_level_category_name,sale_price,original_price,currency,volume,ship_to,images\n"
        "p1,7,Hat,Chapeau,15,Clothing,1.50,3.00,EUR,12,US|FR,a.jpg|b.png\n"
        "p2,7,Cap,,15,Clothing,abc,,EUR,1,*,c.jpg\n"
    )
    rows, errors = read_catalog_file(path, "en")
    assert len(rows) == 1 and rows[0].record.title == {"en": "Hat", "fr": "Chapeau"}
    assert rows[0].record.images == ["a.jpg", "b.png"] and rows[0].record.ship_to == ["FR", "US"]
    assert rows[0].record.price.original == Decimal("3.00")
    assert errors[0].line == 3 and "price.sale" in errors[0].reason


def test_csv_without_header(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("a,b\n1,2\n")
    rows, errors = read_catalog_file(path, "en")
    assert rows == [] and "header" in errors[0].reason


def test_plain_title_is_in_default_language(tmp_path: Path) -> None:
    rows, _ = read_catalog_file(write_jsonl(tmp_path / "c.jsonl", [{**GOOD, "title": "Griffoir"}]), "fr")
    assert rows[0].record.title == {"fr": "Griffoir"}


def test_json_errors_point_at_the_column_of_the_line(tmp_path: Path) -> None:
    line = json.dumps(GOOD)[:-1]  # the closing brace is missing: the error is at the end of the line
    _, errors = read_catalog_file(write_jsonl(tmp_path / "c.jsonl", [GOOD, line]), "en")
    assert errors[0].line == 2 and errors[0].reason.endswith(f"at column {len(line) + 1}")


def test_a_sale_price_above_the_original_is_refused(tmp_path: Path) -> None:
    rows = [{**GOOD, "price": {"sale": "12.00", "original": "9.99", "currency": "USD"}},
            {**GOOD, "product_id": "x1", "price": {"sale": "9.99", "original": "9.99", "currency": "USD"}}]
    valid, errors = read_catalog_file(write_jsonl(tmp_path / "c.jsonl", rows), "en")
    assert [row.line for row in valid] == [2]
    assert errors[0].line == 1 and "sale 12.00 is above original 9.99" in errors[0].reason
