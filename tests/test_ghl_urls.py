"""`UrlMaker` gives the URL `httpx2.URL` parses, for every text (the cheap path included)."""

from __future__ import annotations

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghlsync.ghl._urls import UrlMaker

_PREFIXES = [
    "https://services.leadconnectorhq.com/",
    "http://127.0.0.1:8123/",
    "https://GHL.Example.COM/api/v2/",
    "http://[::1]:9000/a%20b/c/",
    "https://user:pw@ghl.test/x%2Fy/",
]
# Unreserved characters (the cheap path's alphabet), and everything that must leave it.
_OTHERS = [*"%:@!$&'()*+,;= ?#[]\\\"<>^`{|}", "é", "\t"]
_ALPHABET = st.sampled_from(list("aZ09-._~/") + _OTHERS)


def _same_as_httpx2(maker: UrlMaker, text: str) -> None:
    try:
        expected = httpx2.URL(text)
    except Exception as exc:  # an invalid URL: the maker refuses it the same way
        with pytest.raises(type(exc)):
            maker.url(text)
        return
    got = maker.url(text)
    assert got._uri_reference == expected._uri_reference
    assert str(got) == str(expected) and got.raw_path == expected.raw_path
    assert got == expected and hash(got) == hash(expected)


@pytest.mark.parametrize("prefix", _PREFIXES)
@given(tail=st.text(_ALPHABET, max_size=24))
def test_same_url_as_httpx2(prefix: str, tail: str) -> None:
    _same_as_httpx2(UrlMaker(prefix), prefix + tail)


@pytest.mark.parametrize("prefix", _PREFIXES)
@pytest.mark.parametrize(
    "tail",
    [
        "contacts/abc123/tags",
        "contacts/upsert",
        "contacts/a.b/notes/",
        "",
        "contacts/./x",
        "contacts/../x",
        ".hidden",
        "contacts//x",
        "contacts/a%2Fb",
        "contacts/a b",
        "contacts/x?y=1",
        "contacts/x#f",
    ],
)
def test_ghl_paths_and_the_edges_of_the_cheap_path(prefix: str, tail: str) -> None:
    _same_as_httpx2(UrlMaker(prefix), prefix + tail)


def test_other_hosts_and_no_prefix_go_to_httpx2() -> None:
    maker = UrlMaker("https://services.leadconnectorhq.com/")
    _same_as_httpx2(maker, "https://other.example/contacts/x")
    _same_as_httpx2(UrlMaker(None), "https://services.leadconnectorhq.com/contacts/x")


def test_the_prefix_is_parsed_once_for_a_plain_base_url_only() -> None:
    assert UrlMaker("https://services.leadconnectorhq.com/")._base is not None
    assert UrlMaker("https://ghl.test/?q=1")._base is None  # a query: always parsed
    assert UrlMaker("https://ghl.test/x")._base is None  # not ending in "/"
    assert UrlMaker(None)._base is None
