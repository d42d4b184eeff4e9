"""Request bodies: read under a byte cap while streaming, parsed off the event loop.

Both edges (``/sync`` and ``/v1``) read bodies here: :func:`read_body` stops as
soon as the cap is passed (a declared ``Content-Length`` over it is refused
before reading), and :func:`parse_form` turns a urlencoded or multipart body
into text fields and file parts.  Parsing is plain CPU work, so handlers run
it in a worker thread, never on the event loop.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import create_form_parser
from starlette.requests import Request

from ..errors import ErrorCode, RequestError, format_bytes

#: More fields than any request of ours has; a form of millions of tiny fields is refused.
MAX_FIELDS = 1000


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with ``RequestEntityTooLarge`` as soon as it passes ``limit`` bytes."""
    too_large = RequestError(ErrorCode.RequestEntityTooLarge, limit=format_bytes(limit))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise too_large
    return bytes(received)


def parse_form(body: bytes, content_type: str, error: ErrorCode) -> tuple[dict[str, str], dict[str, bytes]]:
    """Text fields and file parts of a urlencoded or multipart ``body``; ``error`` is the code for a malformed one."""
    if not body:
        return {}, {}
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            # parse_qsl is several times faster than a generic form parser on a large param0.
            pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
        except UnicodeDecodeError:
            raise RequestError(error, reason="the form body is not valid UTF-8") from None
        except ValueError:
            raise RequestError(error, reason=f"the form has more than {MAX_FIELDS} fields") from None
        return dict(pairs), {}
    if content_type.startswith("multipart/form-data"):
        return _parse_multipart(body, content_type, error)
    raise RequestError(error, reason="the body must be a urlencoded or multipart form")


def _parse_multipart(body: bytes, content_type: str, error: ErrorCode) -> tuple[dict[str, str], dict[str, bytes]]:
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    count = 0

    def on_field(field: Any) -> None:
        nonlocal count
        count += 1
        if count > MAX_FIELDS:
            raise RequestError(error, reason=f"the form has more than {MAX_FIELDS} fields")
        try:
            fields[field.field_name.decode("utf-8")] = (field.value or b"").decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(error, reason="a form field is not valid UTF-8") from None

    def on_file(file: Any) -> None:
        nonlocal count
        count += 1
        if count > MAX_FIELDS:
            raise RequestError(error, reason=f"the form has more than {MAX_FIELDS} fields")
        file.file_object.seek(0)
        files[file.field_name.decode("utf-8", "replace")] = file.file_object.read()

    headers = {"Content-Type": content_type.encode("latin-1"), "Content-Length": str(len(body)).encode()}
    try:
        # Everything stays in memory: the body is already capped and in memory.
        parser = create_form_parser(headers, on_field, on_file, config={"MAX_MEMORY_FILE_SIZE": len(body) + 1})
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError):
        raise RequestError(error, reason="the multipart body is malformed") from None
    return fields, files
