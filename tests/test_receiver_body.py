"""Body parsing and the receiver's own field (`delivery_id`)."""

from __future__ import annotations

import pytest

from ghlsync.dripjobs import BodyError, delivery_id, fold_keys, parse_body

FORM = "application/x-www-form-urlencoded"


def test_json_object_body() -> None:
    body = b'{"customer_id": "c1", "First Name": "Ava", "n": 3}'
    assert parse_body("application/json; charset=utf-8", body) == {
        "customer_id": "c1",
        "First Name": "Ava",
        "n": 3,
    }


def test_form_body() -> None:
    body = b"customer_id=c1&First+Name=Ava+Lee&email=ava%40example.com&empty="
    assert parse_body(FORM, body) == {
        "customer_id": "c1",
        "First Name": "Ava Lee",
        "email": "ava@example.com",
        "empty": "",
    }


def test_form_body_in_latin1_charset() -> None:
    assert parse_body(f"{FORM}; charset=latin-1", b"name=Ren%E9e") == {"name": "Renée"}


def test_missing_content_type_is_sniffed() -> None:
    assert parse_body(None, b' {"a": 1}') == {"a": 1}
    assert parse_body("", b"a=1") == {"a": "1"}


@pytest.mark.parametrize(
    ("content_type", "body", "code", "words"),
    [
        ("application/json", b'{"a": ', "malformed_body", "not valid JSON"),
        ("application/json", b"[1, 2]", "malformed_body", "must be an object, not list"),
        ("application/json", b"", "malformed_body", "empty"),
        ("application/json", b"\xff\xfe{", "malformed_body", "not valid JSON"),
        ("text/plain", b"hello", "unsupported_media_type", "'text/plain' is not supported"),
        (FORM, b"a=1&&=b&c", "malformed_body", "does not parse"),
        (f"{FORM}; charset=utf-8", b"name=\xff", "malformed_body", "not valid utf-8"),
        (f"{FORM}; charset=nonsense", b"a=1", "malformed_body", "not valid nonsense"),
    ],
)
def test_malformed_bodies_say_what_was_wrong(
    content_type: str, body: bytes, code: str, words: str
) -> None:
    with pytest.raises(BodyError) as caught:
        parse_body(content_type, body)
    assert caught.value.code == code
    assert words in caught.value.message


@pytest.mark.parametrize(
    "name", ["First Name", "firstName", "first_name", "first-name", "FIRST_NAME"]
)
def test_field_spellings_fold_to_snake_case(name: str) -> None:
    assert fold_keys(parse_body(FORM, f"{name}=Ava".encode())) == {"first_name": "Ava"}


def test_delivery_id_from_field_then_header() -> None:
    assert delivery_id({"delivery_id": " d-1 "}, {"webhook-id": "msg_1"}) == "d-1"
    assert delivery_id({"delivery_id": 42}, {}) == "42"
    assert delivery_id({"delivery_id": ""}, {"webhook-id": "msg_1"}) == "msg_1"
    assert delivery_id({"delivery_id": {"nested": 1}}, {}) is None
    assert delivery_id({}, {}) is None


def test_form_percent_escape_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(BodyError, match="does not parse"):
        parse_body(FORM, b"name=Ren%E9e")
