"""Form bodies: a field-count cap for both encodings, malformed bodies refused with the caller's code."""

from __future__ import annotations

import pytest

from imagesearch.errors import ErrorCode, RequestError
from imagesearch.http.forms import MAX_FIELDS, parse_form


def multipart(fields: int, boundary: str = "b0undary") -> tuple[bytes, str]:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nv\r\n' for i in range(fields)]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


def test_forms_within_the_cap_parse() -> None:
    body, content_type = multipart(MAX_FIELDS)
    assert len(parse_form(body, content_type, ErrorCode.InvalidRequest)[0]) == MAX_FIELDS
    urlencoded = "&".join(f"f{i}=v" for i in range(MAX_FIELDS)).encode()
    assert len(parse_form(urlencoded, "application/x-www-form-urlencoded", ErrorCode.InvalidParameter)[0]) == MAX_FIELDS


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
def test_a_form_of_too_many_fields_is_refused(encoding: str) -> None:
    if encoding == "multipart":
        body, content_type = multipart(MAX_FIELDS + 1)
    else:
        body, content_type = ("&".join(["a=1"] * 200_000)).encode(), "application/x-www-form-urlencoded"
    with pytest.raises(RequestError) as error:
        parse_form(body, content_type, ErrorCode.InvalidParameter)
    assert error.value.code == ErrorCode.InvalidParameter and f"more than {MAX_FIELDS} fields" in error.value.message


@pytest.mark.parametrize(("body", "content_type"), [
    (b"\xff\xfe=1", "application/x-www-form-urlencoded"),
    (b"--x\r\nnot a part", "multipart/form-data; boundary=x"),
    (b"{}", "text/plain"),
])
def test_malformed_forms_get_the_callers_code(body: bytes, content_type: str) -> None:
    with pytest.raises(RequestError) as error:
        parse_form(body, content_type, ErrorCode.InvalidRequest)
    assert error.value.code == ErrorCode.InvalidRequest
