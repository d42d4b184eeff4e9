"""Languages and countries, as users type them."""

from __future__ import annotations

import pytest

from imagesearch.errors import RequestError
from imagesearch.i18n import (
    normalize_language,
    parse_country,
    parse_language,
    pick_text,
)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [("en", "en"), ("EN", "en"), ("en_US", "en_US"), ("en-us", "en_US"), ("pt-BR", "pt_BR"), ("PT_br", "pt_BR"), ("fr", "fr")],
)
def test_language_forms(tag: str, expected: str) -> None:
    assert normalize_language(tag) == expected


@pytest.mark.parametrize("tag", ["zz", "english", "", "xx-YY", "e"])
def test_unknown_language(tag: str) -> None:
    assert normalize_language(tag) is None


def test_parse_language_error_names_parameter() -> None:
    with pytest.raises(RequestError) as error:
        parse_language("klingon")
    assert error.value.code == "InvalidLanguage"
    assert "lang" in error.value.message


def test_fallback_chain() -> None:
    texts = {"en": "Hat", "pt": "Chapéu", "fr_CA": "Tuque"}
    assert pick_text(texts, "pt_BR", "en") == "Chapéu"  # base language
    assert pick_text(texts, "fr", "en") == "Tuque"  # regional variant of the base
    assert pick_text(texts, "de", "en") == "Hat"  # catalog default
    assert pick_text({"es": "Gorro"}, "de", "en") == "Gorro"  # anything rather than nothing
    assert pick_text({}, "de", "en") == ""
    assert pick_text(texts, None, "en") == "Hat"


@pytest.mark.parametrize(("code", "expected"), [("US", "US"), ("us", "US"), ("UK", "GB"), ("gb", "GB"), (" fr ", "FR")])
def test_countries(code: str, expected: str) -> None:
    assert parse_country(code) == expected


@pytest.mark.parametrize("code", ["XX", "EU", "USA", "1", ""])
def test_invalid_country(code: str) -> None:
    with pytest.raises(RequestError) as error:
        parse_country(code)
    assert error.value.code == "InvalidShipTo"
