"""The error enumeration: every code documented, every template fillable, the README in step."""

from __future__ import annotations

import string
from pathlib import Path

from imagesearch.errors import SPECS, ErrorCode, RequestError, write_readme_tables

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_error_tables_match_the_enumeration() -> None:
    text = README.read_text(encoding="utf-8")
    assert write_readme_tables(text) == text, "run: python -m imagesearch.errors README.md"


def test_every_code_has_a_spec_and_a_status() -> None:
    assert set(SPECS) == set(ErrorCode)
    for code, spec in SPECS.items():
        assert code.value == code.name and spec.when and spec.surfaces
        assert spec.status in (200, 400, 401, 403, 404, 405, 409, 410, 413, 422, 429, 500, 503)


def test_every_template_is_filled_by_its_named_values() -> None:
    for code, spec in SPECS.items():
        names = {name for _, name, _, _ in string.Formatter().parse(spec.template) if name and name != "param"}
        error = RequestError(code, "p", **{name: "x" for name in names})
        assert error.code is code and "{" not in error.message and error.status == spec.status
