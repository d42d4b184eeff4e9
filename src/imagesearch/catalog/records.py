"""What one product looks like on the way in: the validated import record.

Both import formats (JSON Lines and CSV) are turned into the same dict shape and
validated by :class:`ProductRecord`; any field error becomes a message naming
the field, reported with the line number by the reader.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from babel.numbers import is_currency
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..i18n import normalize_country, normalize_language

PRODUCT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_IMAGES = 20
EVERYWHERE = frozenset({"*", "ALL", "WORLDWIDE"})

Texts = dict[str, str]


def _default_lang(info: ValidationInfo) -> str:
    """The catalog's default language, passed in the validation context."""
    return str((info.context or {}).get("default_lang", "en"))


def _texts(value: Any, default_lang: str, what: str) -> Texts:
    """A string (in the default language) or a {language: text} mapping, normalised."""
    if isinstance(value, str):
        value = {default_lang: value}
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{what} must be a non-empty string or a {{language: text}} object")
    texts: Texts = {}
    for tag, text in value.items():
        lang = normalize_language(str(tag))
        if lang is None:
            raise ValueError(f"{what}: {tag!r} is not a known language code")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{what} in {tag!r} must be a non-empty string")
        if len(text) > 1000:
            raise ValueError(f"{what} in {tag!r} is longer than 1000 characters")
        texts[lang] = text.strip()
    return texts


class CategoryRecord(BaseModel):
    """A category level: an id and its names per language."""

    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, Field(min_length=1, max_length=64)]
    name: Texts

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("name", mode="before")
    @classmethod
    def _names(cls, value: Any, info: ValidationInfo) -> Texts:
        return _texts(value, _default_lang(info), "name")


class PriceRecord(BaseModel):
    """Sale and original price in one currency, as exact decimals."""

    model_config = ConfigDict(extra="forbid")
    sale: Decimal = Field(gt=0, max_digits=18, decimal_places=6)
    original: Decimal | None = Field(default=None, gt=0, max_digits=18, decimal_places=6)
    currency: str

    @field_validator("sale", "original", mode="before")
    @classmethod
    def _no_float(cls, value: Any) -> Any:
        # Floats would have been rounded through binary already; readers parse numbers as Decimal.
        return Decimal(repr(value)) if isinstance(value, float) else value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        code = value.strip().upper()
        if not is_currency(code):
            raise ValueError(f"{value!r} is not an ISO 4217 currency code")
        return code

    @model_validator(mode="after")
    def _sale_not_above_original(self) -> PriceRecord:
        # A sale price above the "original" would be shown struck through as if it were a discount.
        if self.original is not None and self.sale > self.original:
            raise ValueError(f"sale {self.sale} is above original {self.original}; omit original when there is no discount")
        return self


class ProductRecord(BaseModel):
    """One product as imported; see the README for the file formats."""

    model_config = ConfigDict(extra="forbid")
    product_id: str
    shop_id: int = Field(ge=0, le=2**63 - 1)
    title: Texts
    category: dict[str, CategoryRecord] = Field(default_factory=dict)
    price: PriceRecord
    volume: int = Field(default=0, ge=0, le=10**12)
    evaluate_rate: Decimal | None = Field(default=None, ge=0, le=5, max_digits=4, decimal_places=2)
    ship_from: str | None = None
    ship_to: list[str] | None = None
    product_detail_url: str = ""
    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES)

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, value: Any, info: ValidationInfo) -> Texts:
        return _texts(value, _default_lang(info), "title")

    @field_validator("product_id", mode="before")
    @classmethod
    def _product_id(cls, value: Any) -> str:
        value = str(value) if isinstance(value, int) else value
        if not isinstance(value, str) or not PRODUCT_ID.fullmatch(value):
            raise ValueError("product_id must be 1-64 characters of letters, digits, '_', '.', ':' or '-'")
        return value

    @field_validator("category")
    @classmethod
    def _levels(cls, value: dict[str, CategoryRecord]) -> dict[str, CategoryRecord]:
        unknown = set(value) - {"first_level", "second_level"}
        if unknown:
            raise ValueError(f"category levels are first_level and second_level, not {sorted(unknown)}")
        return value

    @field_validator("ship_from")
    @classmethod
    def _ship_from(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        code = normalize_country(value)
        if code is None:
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
        return code

    @field_validator("ship_to", mode="before")
    @classmethod
    def _ship_to(cls, value: Any) -> list[str] | None:
        """None, "*" or "ALL" mean every country; otherwise a list of alpha-2 codes."""
        if value is None or (isinstance(value, str) and value.strip().upper() in EVERYWHERE):
            return None
        if isinstance(value, str):
            value = [part for part in re.split(r"[\s,|;]+", value) if part]
        if not isinstance(value, list) or not value:
            raise ValueError('ship_to must be a list of country codes, or "*" for every country')
        codes = [normalize_country(str(item)) for item in value]
        bad = [repr(item) for item, code in zip(value, codes, strict=True) if code is None]
        if bad:
            what = "is not an ISO 3166-1 alpha-2 country code" if len(bad) == 1 else "are not ISO 3166-1 alpha-2 country codes"
            raise ValueError(f"{', '.join(bad)} {what}")
        return sorted({code for code in codes if code})

    @field_validator("product_detail_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not re.match(r"^https?://\S+$", value):
            raise ValueError("product_detail_url must be an http(s) URL")
        return value

    @field_validator("images")
    @classmethod
    def _images(cls, value: list[str]) -> list[str]:
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise ValueError("each image must be a non-empty path or URL")
        return [item.strip() for item in value]


def validate_record(data: Any, default_lang: str) -> ProductRecord:
    """Validate one product dict; raises ValueError with every problem in one message."""
    try:
        return ProductRecord.model_validate(data, context={"default_lang": default_lang})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "product"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        raise ValueError("; ".join(problems)) from None
