"""Exchange-rate tables: our JSON file, or the ECB's daily reference-rate XML.

A table holds, for one date, how many units of each currency one unit of the
base currency buys.  Rates are kept as :class:`~decimal.Decimal` from the text
of the file, so nothing is ever rounded through a binary float.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path

from babel.numbers import is_currency

from ..errors import ImageSearchError

RATES_FILE = "rates.json"


class RatesError(ImageSearchError):
    """A rates file that cannot be read or makes no sense."""


@dataclass(frozen=True)
class RatesTable:
    """Rates for one date: 1 ``base`` = ``rates[code]`` units of ``code``."""

    base: str
    date: dt.date
    rates: dict[str, Decimal] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        self.rates.setdefault(self.base, Decimal(1))

    def to_json(self) -> str:
        """Serialise in our JSON format (rates as strings: exact)."""
        return json.dumps(
            {
                "base": self.base,
                "date": self.date.isoformat(),
                "source": self.source,
                "rates": {code: str(rate) for code, rate in sorted(self.rates.items())},
            },
            indent=2,
        )


def _checked(base: str, date: dt.date, raw: dict[str, object], source: str) -> RatesTable:
    """Validate codes (ISO 4217, per babel) and rates (positive decimals)."""
    if not is_currency(base):
        raise RatesError(f"base currency {base!r} is not an ISO 4217 code")
    rates: dict[str, Decimal] = {}
    for code, value in raw.items():
        code = str(code).upper()
        if not is_currency(code):
            raise RatesError(f"{code!r} is not an ISO 4217 currency code")
        try:
            rate = Decimal(str(value))
        except InvalidOperation as exc:
            raise RatesError(f"rate for {code} is not a number: {value!r}") from exc
        if not rate.is_finite() or rate <= 0:
            raise RatesError(f"rate for {code} must be a positive number, got {value!r}")
        rates[code] = rate
    if len(rates) < 1:
        raise RatesError("the rates file lists no currency")
    return RatesTable(base=base.upper(), date=date, rates=rates, source=source)


def parse_rates(data: bytes) -> RatesTable:
    """Parse our JSON format or the ECB ``eurofxref-daily.xml`` format."""
    text = data.lstrip()
    if text.startswith(b"<"):
        return _parse_ecb_xml(data)
    try:
        document = json.loads(data)
        return _checked(
            str(document["base"]),
            dt.date.fromisoformat(str(document["date"])),
            dict(document["rates"]),
            str(document.get("source", "")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise RatesError(f"not a rates file (JSON with base, date, rates; or ECB XML): {exc}") from exc


def _parse_ecb_xml(data: bytes) -> RatesTable:
    """The ECB file: ``Cube time="YYYY-MM-DD"`` holding ``Cube currency=.. rate=..``, base EUR."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise RatesError(f"not valid XML: {exc}") from exc
    for cube in root.iter():
        if cube.tag.endswith("Cube") and "time" in cube.attrib:
            raw = {child.attrib["currency"]: child.attrib["rate"] for child in cube if "currency" in child.attrib}
            try:
                date = dt.date.fromisoformat(cube.attrib["time"])
            except ValueError as exc:
                raise RatesError(f"bad date in ECB file: {cube.attrib['time']!r}") from exc
            return _checked("EUR", date, raw, "European Central Bank euro foreign exchange reference rates")
    raise RatesError("no <Cube time=...> element found: not an ECB reference-rates file")


def packaged_rates() -> RatesTable:
    """The table shipped with the package (see its ``date`` and ``source``)."""
    return parse_rates(resources.files("imagesearch.data").joinpath(RATES_FILE).read_bytes())


def load_rates(data_dir: Path) -> RatesTable:
    """The data directory's imported table if any, else the packaged one."""
    path = data_dir / RATES_FILE
    return parse_rates(path.read_bytes()) if path.exists() else packaged_rates()


def save_rates(table: RatesTable, data_dir: Path) -> Path:
    """Write ``table`` as the data directory's rates, atomically (temp file, fsync, rename)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / RATES_FILE
    fd, tmp = tempfile.mkstemp(prefix=".rates-", dir=data_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(table.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
