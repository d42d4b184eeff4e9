"""Every error a client can see: one enumeration of codes, each with its HTTP status and message.

A code is part of the public contract (listed in the README, which a test
checks against :data:`SPECS`), so it never changes meaning.  Code raises
:class:`RequestError` with an :class:`ErrorCode` and the values its message
template names; the HTTP edge maps it once, by exception handlers, to the
searchV2 ``result`` (``ret=false``, ``code``, ``messages``), to the gateway's
envelope or to ``/v1``'s ``{"error": {...}}`` with the code's status; the CLI
prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

#: Where a code can be answered: a search (searchV2, /v1, CLI), the gateway envelope, or /v1 only.
Surface = Literal["search", "gateway", "v1"]


class ErrorCode(StrEnum):
    """The stable codes; the value is what clients see."""

    # Search requests (searchV2 result, /v1, CLI).
    MissingImage = "MissingImage"
    AmbiguousImage = "AmbiguousImage"
    InvalidBase64 = "InvalidBase64"
    EmptyImage = "EmptyImage"
    ImageTooLarge = "ImageTooLarge"
    ImageTooManyPixels = "ImageTooManyPixels"
    ImageTooSmall = "ImageTooSmall"
    InvalidImage = "InvalidImage"
    UnsupportedImageFormat = "UnsupportedImageFormat"
    InvalidParam0 = "InvalidParam0"
    UnknownParameter = "UnknownParameter"
    InvalidParameterType = "InvalidParameterType"
    InvalidSearchType = "InvalidSearchType"
    InvalidSortType = "InvalidSortType"
    InvalidSortOrder = "InvalidSortOrder"
    InvalidCurrency = "InvalidCurrency"
    UnsupportedCurrency = "UnsupportedCurrency"
    InvalidLanguage = "InvalidLanguage"
    InvalidShipTo = "InvalidShipTo"
    InvalidCategoryId = "InvalidCategoryId"
    InvalidMinScore = "InvalidMinScore"
    InvalidRegion = "InvalidRegion"
    InvalidText = "InvalidText"
    TextSearchUnavailable = "TextSearchUnavailable"
    InvalidSubjectOption = "InvalidSubjectOption"
    SubjectUnavailable = "SubjectUnavailable"
    InvalidPageSize = "InvalidPageSize"
    InvalidPageNo = "InvalidPageNo"
    InvalidStartRowKey = "InvalidStartRowKey"
    ExpiredStartRowKey = "ExpiredStartRowKey"
    InvalidImageUrl = "InvalidImageUrl"
    ImageUrlForbidden = "ImageUrlForbidden"
    ImageUrlUnreachable = "ImageUrlUnreachable"
    CatalogUnavailable = "CatalogUnavailable"
    # /v1 only.
    InvalidRequest = "InvalidRequest"
    ProductNotFound = "ProductNotFound"
    NotFound = "NotFound"
    MethodNotAllowed = "MethodNotAllowed"
    AdminDisabled = "AdminDisabled"
    Unauthorized = "Unauthorized"
    InvalidProduct = "InvalidProduct"
    WriteConflict = "WriteConflict"
    ReadOnly = "ReadOnly"
    AppKeyRequired = "AppKeyRequired"
    RateLimited = "RateLimited"
    Overloaded = "Overloaded"
    InvalidHost = "InvalidHost"
    InternalError = "InternalError"
    # The gateway (/sync) envelope.
    MissingParameter = "MissingParameter"
    InvalidParameter = "InvalidParameter"
    InvalidAppKey = "InvalidAppKey"
    InvalidTimestamp = "InvalidTimestamp"
    IncompleteSignature = "IncompleteSignature"
    ApiCallLimit = "ApiCallLimit"
    IllegalAccessToken = "IllegalAccessToken"
    InsufficientPermission = "InsufficientPermission"
    InvalidApiPath = "InvalidApiPath"
    RequestEntityTooLarge = "RequestEntityTooLarge"


@dataclass(frozen=True)
class ErrorSpec:
    """What a code means: its HTTP status on ``/v1``, its message template and when it is answered."""

    status: int
    template: str
    when: str
    surfaces: tuple[Surface, ...] = ("search",)


#: The image formats the service decodes, as messages name them.
IMAGE_FORMATS = "JPEG, PNG, WebP, AVIF, HEIC, GIF or BMP"

C = ErrorCode
SPECS: dict[ErrorCode, ErrorSpec] = {
    C.MissingImage: ErrorSpec(
        400, f"{{param}} is required (a {IMAGE_FORMATS} photo)",
        "no image (`image_base64`, `image_url` or `file`), and no `start_row_key`"),
    C.AmbiguousImage: ErrorSpec(400, "send one image only: {given} were all given", "more than one of `image_base64`, `image_url` and `file`"),
    C.InvalidBase64: ErrorSpec(400, "{param} is not valid base64", "`image_base64` is not base64 (standard or URL-safe, `data:` prefix allowed)"),
    C.EmptyImage: ErrorSpec(400, "{param} is empty (0 bytes)", "the image has 0 bytes"),
    C.ImageTooLarge: ErrorSpec(413, "{param} is larger than the limit of {limit}", "more than `max_image_bytes` (10 MiB)"),
    C.ImageTooManyPixels: ErrorSpec(
        400, "{param} has {size}; the limit is {limit}",
        "more than `max_image_pixels` (40 MP), refused from the header, before decoding"),
    C.ImageTooSmall: ErrorSpec(400, "{param} is {width}x{height} pixels; each side must be at least {min_side}", "a side under 8 px"),
    C.InvalidImage: ErrorSpec(400, "{param} {reason}", "not an image, or damaged"),
    C.UnsupportedImageFormat: ErrorSpec(
        400, f"{{param}} is a {{format}} image; use {IMAGE_FORMATS}", f"an image, but not {IMAGE_FORMATS}"),
    C.InvalidParam0: ErrorSpec(400, "param0 {reason}", "`param0` is not a JSON object (searchV2)"),
    C.UnknownParameter: ErrorSpec(
        400, "{param} is not a parameter of this request; known: {known}", "a field this request does not have (typos do not pass silently)"),
    C.InvalidParameterType: ErrorSpec(400, "{param} must be {expected}, got {got}", "a parameter of the wrong JSON type"),
    C.InvalidSearchType: ErrorSpec(400, "{param} {value!r} is not allowed; use one of: {allowed}", "`search_type` not `same` or `similar`"),
    C.InvalidSortType: ErrorSpec(400, "{param} {value!r} is not allowed; use one of: {allowed}", "`sort_type` not `price`, `orders` or `best`"),
    C.InvalidSortOrder: ErrorSpec(400, "{param} {value!r} is not allowed; use one of: {allowed}", "`sort_order` not `asc` or `desc`"),
    C.InvalidCurrency: ErrorSpec(400, "{param} {value!r} is not an ISO 4217 currency code (e.g. USD, EUR)", "not an ISO 4217 code"),
    C.UnsupportedCurrency: ErrorSpec(
        400, "{param} {value} has no exchange rate in the rates table of {date}; supported: {supported}",
        "a real currency the rates table has no rate for"),
    C.InvalidLanguage: ErrorSpec(
        400, "{param} {value!r} is not a known language; use a code like en, fr, pt_BR or pt-BR", "not a language code babel knows"),
    C.InvalidShipTo: ErrorSpec(
        400, "{param} {value!r} is not an ISO 3166-1 alpha-2 country code (e.g. US, FR, GB)",
        "not an ISO 3166-1 alpha-2 country (`UK` is accepted)"),
    C.InvalidCategoryId: ErrorSpec(
        400, "{param} must be a category id of 1 to 64 letters, digits, '-', '_' or '.', got {value!r}",
        "`category_id` (a first- or second-level category id of the catalog) is not an id"),
    C.InvalidMinScore: ErrorSpec(400, "{param} must be a number from 0 to 1, got {value!r}", "`min_score` not a number in 0-1"),
    C.InvalidRegion: ErrorSpec(
        400, "{param} {reason}",
        "`region` is not [x, y, width, height] (pixels, or fractions of the photo when every value is at most 1) inside the photo"),
    C.InvalidText: ErrorSpec(
        400, "{param} {reason}",
        "`text` (`/v1/search`) empty, longer than 300 characters, sent with a photo, or with `search_type` same or a `region`"),
    C.TextSearchUnavailable: ErrorSpec(
        400, "the configured embedder ({model}) has no text tower: searching with a text needs a CLIP-family model (embedder = \"clip\")",
        "`text` given while the configured embedder reads images only (the default)"),
    C.InvalidSubjectOption: ErrorSpec(
        400, "{param} {reason}", "`crop` or `groups` with a `text` (nothing to locate) or a `region` (the box is already chosen)"),
    C.SubjectUnavailable: ErrorSpec(
        400, "the configured embedder ({model}) gives no feature map to locate products with: crop and groups need a "
             "convolutional model (the default efficientnet, or an onnx model with onnx_pooling)",
        "`crop` or `groups` asked of an embedder that outputs one vector per photo (CLIP, an ONNX model without a feature map)"),
    C.InvalidPageSize: ErrorSpec(400, "{param} must be a whole number from {low} to {high}, got {value!r}", "`page_size` not an integer in 1-50"),
    C.InvalidPageNo: ErrorSpec(400, "{param} must be a whole number from {low} to {high}, got {value!r}", "`page_no` not an integer in 1-10000"),
    C.InvalidStartRowKey: ErrorSpec(
        400, "{param} is not a key this service issued (use next_start_row_key from a response)", "not a key this service issued"),
    C.ExpiredStartRowKey: ErrorSpec(
        410, "{param} has expired (results are kept {ttl} seconds) or is unknown; search again",
        "the key's result list has expired (search again)"),
    C.InvalidImageUrl: ErrorSpec(400, "{param} must be an absolute http(s) URL", "`image_url` is not an absolute http(s) URL"),
    C.ImageUrlForbidden: ErrorSpec(
        400, "{param} points to a non-public address; refused",
        "`image_url` (or a catalog image URL) resolves to an address that is not globally routable: private, loopback, link-local, shared (unless `allow_private_image_urls`, or `allow_private_import_urls` for imports)"),
    C.ImageUrlUnreachable: ErrorSpec(400, "{param} could not be fetched: {reason}", "`image_url` cannot be resolved, fetched or answers an error"),
    C.CatalogUnavailable: ErrorSpec(503, "the catalog cannot be searched: {reason}", "the catalog or index cannot be used (e.g. built by another embedder)"),
    C.InvalidRequest: ErrorSpec(400, "{reason}", "a body that is not what the route takes (e.g. not a JSON object)", ("v1",)),
    C.ProductNotFound: ErrorSpec(404, "no product {value}", "no product with this `product_id`", ("v1",)),
    C.NotFound: ErrorSpec(404, "{reason}", "no such route or image", ("v1",)),
    C.MethodNotAllowed: ErrorSpec(405, "{reason}", "an HTTP method the route does not have", ("v1",)),
    C.AdminDisabled: ErrorSpec(
        403, "catalog writes over HTTP are disabled: set IMAGESEARCH_ADMIN_TOKEN", "a catalog write while `admin_token` is not set", ("v1",)),
    C.Unauthorized: ErrorSpec(
        401, "a valid admin token is required (Authorization: Bearer <token>)", "a catalog write without the right bearer token", ("v1",)),
    C.InvalidProduct: ErrorSpec(422, "{reason}", "a product that does not validate (every problem listed)", ("v1",)),
    C.WriteConflict: ErrorSpec(
        409, "{reason}", "another write (an import, a reindex, another live write) held the catalog for more than 30 s", ("v1",)),
    C.ReadOnly: ErrorSpec(
        503, "{reason}", "a catalog write while the service runs read-only (`read_only`, or a data directory it could not write at start)",
        ("v1",)),
    C.AppKeyRequired: ErrorSpec(
        401, "this service requires an app key: send X-App-Key and X-App-Secret (see `imagesearch apps create`)",
        "`v1_requires_app_key` is on and the app key or secret is missing, unknown, revoked or wrong", ("v1",)),
    C.RateLimited: ErrorSpec(
        429, "the app's limit of {limit} requests per second is reached; retry in {seconds} s",
        "the app's rate limit (the same per-app budget as `/sync`): retry after `Retry-After`", ("v1",)),
    C.Overloaded: ErrorSpec(
        503, "the server is busy: all its {limit} search slots are taken; retry in a second",
        "every search slot of the server is taken (`max_pending_searches`): retry after `Retry-After`", ("v1",)),
    C.InvalidHost: ErrorSpec(
        400, "this service does not answer for the host {value!r}", "a `Host` header not in `allowed_hosts` (when set), on every route", ("v1",)),
    C.InternalError: ErrorSpec(500, "the server failed to answer (request {request_id}); it has been logged", "a bug: logged with the request id", ("v1", "gateway")),
    C.MissingParameter: ErrorSpec(
        200, "The request is missing the required parameter {param}", "`method`, `app_key`, `timestamp` or `sign` is missing", ("gateway",)),
    C.InvalidParameter: ErrorSpec(200, "{reason}", "a body that cannot be read (e.g. not UTF-8)", ("gateway",)),
    C.InvalidAppKey: ErrorSpec(200, "The specified app key is invalid or has been revoked", "unknown or revoked app", ("gateway",)),
    C.InvalidTimestamp: ErrorSpec(
        200, "{reason}", "unparsable, or more than `timestamp_window_seconds` (900) from the server clock (replay)", ("gateway",)),
    C.IncompleteSignature: ErrorSpec(200, "{reason}", "wrong signature, or an unknown `sign_method`", ("gateway",)),
    C.ApiCallLimit: ErrorSpec(
        200, "{reason}; this ban will last {seconds} seconds",
        "the app's rate limit (per-app token bucket), or every search slot of the server taken: \"...; this ban will last N seconds\"",
        ("gateway",)),
    C.IllegalAccessToken: ErrorSpec(
        200, "The specified access token is invalid or expired",
        "an `access_token` / `session` that is unknown, revoked, expired or another app's", ("gateway",)),
    C.InsufficientPermission: ErrorSpec(
        200, "This app is not allowed to call {method}", "an app created with `--method` lists calling another method", ("gateway",)),
    C.InvalidApiPath: ErrorSpec(200, "The specified API {method} does not exist on this service", "a method this service does not have", ("gateway",)),
    C.RequestEntityTooLarge: ErrorSpec(
        413, "The request body is larger than the limit of {limit}", "a body over `max_request_bytes` (16 MiB)", ("gateway", "v1")),
}
del C


def format_bytes(count: int) -> str:
    """A byte limit as people read it: "10 MiB", "512 KiB", "900 bytes"."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            value = count / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{count} bytes"


def format_pixels(count: int) -> str:
    """A pixel limit as people read it: "40 MP"."""
    return f"{count / 1e6:g} MP" if count >= 1_000_000 else f"{count} pixels"


class ImageSearchError(Exception):
    """Base class of every error this package raises on purpose."""


class RequestError(ImageSearchError):
    """A request the service refuses: a code from :class:`ErrorCode` and its message.

    ``values`` fill the code's message template (``param`` among them), so the
    same mistake reads the same on every entry point.
    """

    def __init__(self, code: ErrorCode, param: str | None = None, *, sub_code: str = "", **values: Any) -> None:
        self.code = code
        self.param = param
        self.sub_code = sub_code
        self.values = values
        self.message = SPECS[code].template.format(param=param, **values)
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return SPECS[self.code].status

    def __repr__(self) -> str:
        return f"RequestError({self.code.value!r}, {self.message!r})"


class CatalogError(ImageSearchError):
    """The catalog or index is missing, inconsistent, busy or built with another embedder."""


class ReadOnlyError(CatalogError):
    """A write to a data directory opened read-only."""


def markdown_table(surface: Surface) -> str:
    """The README's table of the codes answered on ``surface`` (the README is checked against it)."""
    rows = ["| code | HTTP | when |", "|---|---|---|"] if surface != "gateway" else ["| code | when |", "|---|---|"]
    for code, spec in SPECS.items():
        if surface not in spec.surfaces:
            continue
        rows.append(f"| `{code}` | {spec.when} |" if surface == "gateway" else f"| `{code}` | {spec.status} | {spec.when} |")
    return "\n".join(rows)


def write_readme_tables(readme: str) -> str:
    """``readme`` with each ``<!-- errors:SURFACE -->`` block replaced by the generated table."""
    for surface in ("search", "v1", "gateway"):
        start, end = f"<!-- errors:{surface} -->", "<!-- /errors -->"
        head, _, rest = readme.partition(start)
        _, _, tail = rest.partition(end)
        readme = f"{head}{start}\n{markdown_table(surface)}\n{end}{tail}"  # type: ignore[arg-type]
    return readme


if __name__ == "__main__":  # python -m imagesearch.errors README.md: rewrite the README's error tables
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    target.write_text(write_readme_tables(target.read_text(encoding="utf-8")), encoding="utf-8")
