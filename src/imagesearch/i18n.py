"""Languages and countries as users type them, normalised with babel and pycountry.

Catalog titles are stored under normalised tags (``en``, ``pt_BR``); queries are
normalised the same way, so ``EN``, ``en-us`` and ``en_US`` meet.
"""

from __future__ import annotations

from collections.abc import Mapping

import pycountry
from babel import Locale, UnknownLocaleError

from .errors import ErrorCode, RequestError

#: AliExpress accepts UK for the United Kingdom; ISO 3166 says GB.
COUNTRY_ALIASES = {"UK": "GB"}


def normalize_language(tag: str) -> str | None:
    """Return ``tag`` as babel's canonical ``lang`` or ``lang_TERRITORY``, or None if unknown."""
    cleaned = tag.strip().replace("-", "_")
    if not cleaned or len(cleaned) > 35:
        return None
    parts = cleaned.split("_")
    parts[0] = parts[0].lower()
    if len(parts) > 1 and len(parts[-1]) == 2:
        parts[-1] = parts[-1].upper()
    try:
        locale = Locale.parse("_".join(parts))
    except (UnknownLocaleError, ValueError, TypeError):
        return None
    return f"{locale.language}_{locale.territory}" if locale.territory else locale.language


def parse_language(tag: str, param: str = "lang") -> str:
    """Normalise a requested language or raise ``InvalidLanguage``."""
    normalized = normalize_language(tag)
    if normalized is None:
        raise RequestError(ErrorCode.InvalidLanguage, param, value=tag)
    return normalized


def pick_text(texts: Mapping[str, str], lang: str | None, default_lang: str) -> str:
    """The text in ``lang``, else its base language, else the default language, else any.

    ``texts`` maps normalised tags to strings; a base-language text also serves a
    regional request (``pt`` for ``pt_BR``) and a regional one serves its base
    (``pt_BR`` for ``pt``) when nothing closer exists.
    """
    if not texts:
        return ""
    for wanted in (lang, default_lang):
        if not wanted:
            continue
        if wanted in texts:
            return texts[wanted]
        base = wanted.split("_")[0]
        if base in texts:
            return texts[base]
        for tag in sorted(texts):
            if tag.split("_")[0] == base:
                return texts[tag]
    return texts[sorted(texts)[0]]


def normalize_country(code: str) -> str | None:
    """Return the ISO 3166-1 alpha-2 code for ``code`` (``UK`` -> ``GB``), or None."""
    cleaned = code.strip().upper()
    cleaned = COUNTRY_ALIASES.get(cleaned, cleaned)
    if len(cleaned) != 2 or not cleaned.isalpha():
        return None
    return cleaned if pycountry.countries.get(alpha_2=cleaned) is not None else None


def parse_country(code: str, param: str = "ship_to") -> str:
    """Normalise a country or raise ``InvalidShipTo``."""
    normalized = normalize_country(code)
    if normalized is None:
        raise RequestError(ErrorCode.InvalidShipTo, param, value=code)
    return normalized
