"""Property-based tests (hypothesis): the validator, the signatures and the decoder never fail any other way."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagesearch.errors import SPECS, RequestError
from imagesearch.http.signing import signature, verify
from imagesearch.pricing.rates import packaged_rates
from imagesearch.search.params import PARAM0_FIELDS, parse_params
from imagesearch.vision.decode import DecodeLimits, decode_image

RATES = packaged_rates()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(sorted(PARAM0_FIELDS)) | st.text(max_size=12)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(field_names, json_values, max_size=6))
def test_any_param0_is_accepted_or_refused_with_a_code(raw: dict[str, Any]) -> None:
    try:
        params = parse_params(raw, RATES, "USD", 10_000)
    except RequestError as error:
        assert error.code in SPECS and error.message
    else:
        assert params.currency in RATES.rates and params.sort_order in ("asc", "desc")


@settings(max_examples=200)
# (``sign`` is the signature's own field, which the protocol leaves out of what is signed: checked last below)
@given(st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda key: key != "sign"), st.text(max_size=30), min_size=1, max_size=8),
       st.text(min_size=1, max_size=32), st.sampled_from(["sha256", "md5", "hmac"]))
def test_a_signature_verifies_and_any_change_breaks_it(params: dict[str, str], secret: str, method: str) -> None:
    signed = signature(params, secret, method)
    assert verify(params, secret, method, signed) and verify(params, secret, method, signed.lower())
    assert verify({**params, "sign": signed}, secret, method, signed)
    key = sorted(params)[0]
    assert not verify({**params, key: params[key] + "x"}, secret, method, signed)
    assert not verify(params, secret + "x", method, signed)


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_any_bytes_decode_or_are_refused_with_a_code(data: bytes) -> None:
    try:
        image = decode_image(data, DecodeLimits(max_bytes=1000, max_pixels=100_000), draft_size=64)
    except RequestError as error:
        assert error.code in ("EmptyImage", "ImageTooLarge", "InvalidImage", "UnsupportedImageFormat", "ImageTooManyPixels", "ImageTooSmall")
    else:
        assert image.mode == "RGB"


@settings(max_examples=100)
@given(st.binary(min_size=1, max_size=300))
def test_any_base64_image_text_is_decoded_or_refused(data: bytes) -> None:
    text = base64.b64encode(data).decode()
    for variant in (text, text.rstrip("="), base64.urlsafe_b64encode(data).decode(), "data:image/png;base64," + text, text[:-1] + "!"):
        try:
            params = parse_params({"image_base64": variant}, RATES, "USD", 10_000)
        except RequestError as error:
            assert error.code in ("InvalidBase64", "EmptyImage")
        else:
            assert params.image == data
