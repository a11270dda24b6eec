"""Webhook signatures and the webhook URL policy."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from notifiers.senders.base import parse_retry_after
from notifiers.signing import sign, verify
from notifiers.urls import check_webhook_url, normalise_url

NOW = 1_800_000_000
BODY = b'{"decision":"allocate","order_id":"SO-1"}'


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign("s3cret", NOW, BODY) == f"v1={expected}"


def test_round_trip() -> None:
    assert verify("s3cret", str(NOW), BODY, sign("s3cret", NOW, BODY), now=NOW + 10)


def test_tampered_body_fails() -> None:
    assert not verify("s3cret", str(NOW), BODY + b" ", sign("s3cret", NOW, BODY), now=NOW)


def test_wrong_secret_fails() -> None:
    assert not verify("other", str(NOW), BODY, sign("s3cret", NOW, BODY), now=NOW)


def test_timestamp_is_signed_too() -> None:
    # A captured request replayed with a fresh timestamp header must not verify.
    assert not verify("s3cret", str(NOW + 60), BODY, sign("s3cret", NOW, BODY), now=NOW + 60)


@pytest.mark.parametrize("skew", [301, -301, 10_000])
def test_stale_or_future_timestamp_fails(skew: int) -> None:
    assert not verify("s3cret", str(NOW), BODY, sign("s3cret", NOW, BODY), now=NOW + skew)


def test_tolerance_is_configurable() -> None:
    sig = sign("s3cret", NOW, BODY)
    assert verify("s3cret", str(NOW), BODY, sig, now=NOW + 500, tolerance=600)
    assert not verify("s3cret", str(NOW), BODY, sig, now=NOW + 5, tolerance=1)


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        (None, "v1=00"),
        (str(NOW), None),
        ("", "v1=00"),
        ("not-a-number", "v1=00"),
        (str(NOW), "v0=abc"),
        (str(NOW), "garbage"),
        (str(NOW), "v1=\u00e9\u00e9"),
    ],
)
def test_malformed_headers_fail_without_raising(timestamp: str | None, signature: str | None) -> None:
    assert not verify("s3cret", timestamp, BODY, signature, now=NOW)


def test_any_of_several_signatures_is_enough() -> None:
    # Secret rotation: the header may carry the old and the new signature.
    header = f"{sign('old', NOW, BODY)}, {sign('new', NOW, BODY)}"
    assert verify("new", str(NOW), BODY, header, now=NOW)
    assert verify("old", str(NOW), BODY, header, now=NOW)
    assert not verify("third", str(NOW), BODY, header, now=NOW)


# -- URL policy: (url, allow_http, allow_private) -> normalised URL, or None when refused

POLICY = [
    ("https://hooks.example.com/backorders", False, False, "https://hooks.example.com/backorders"),
    ("HTTPS://Hooks.Example.COM:443", False, False, "https://hooks.example.com/"),
    ("https://hooks.example.com:8443/x?a=1#frag", False, False, "https://hooks.example.com:8443/x?a=1"),
    ("https://93.184.216.34/hook", False, False, "https://93.184.216.34/hook"),
    ("https://[2606:4700:4700::1111]/hook", False, False, "https://[2606:4700:4700::1111]/hook"),
    ("http://hooks.example.com/", False, False, None),
    ("http://hooks.example.com/", True, False, "http://hooks.example.com/"),
    ("http://hooks.example.com:80/", True, False, "http://hooks.example.com/"),
    ("ftp://hooks.example.com/", True, True, None),
    ("hooks.example.com/x", True, True, None),
    ("https:///nohost", True, True, None),
    ("https://user:pass@hooks.example.com/", True, True, None),
    ("https://user@hooks.example.com/", True, True, None),
    ("https://127.0.0.1/", False, False, None),
    ("https://127.0.0.1:8443/", False, True, "https://127.0.0.1:8443/"),
    ("https://[::1]/", False, False, None),
    ("https://[::1]/", False, True, "https://[::1]/"),
    ("https://10.1.2.3/", False, False, None),
    ("https://172.16.0.9/", False, False, None),
    ("https://192.168.1.10/", False, False, None),
    ("https://169.254.169.254/latest/meta-data", False, False, None),
    ("https://[fe80::1]/", False, False, None),
    ("https://[fd00::1]/", False, False, None),
    ("https://[::ffff:127.0.0.1]/", False, False, None),
    ("https://[::ffff:10.0.0.1]/", False, False, None),
    ("https://0.0.0.0/", False, False, None),
    ("https://224.0.0.1/", False, False, None),
    ("https://100.64.0.1/", False, False, None),
    ("https://localhost/", False, False, None),
    ("https://LOCALHOST./", False, False, None),
    ("https://api.localhost/", False, False, None),
    ("https://localhost:9000/", False, True, "https://localhost:9000/"),
    ("http://localhost:9000/", True, True, "http://localhost:9000/"),
    # Legacy numeric forms that socket APIs would read as 127.0.0.1.
    ("https://2130706433/", True, True, None),
    ("https://127.1/", True, True, None),
    ("https://0x7f.0.0.1/", True, True, None),
    ("https://hooks.example.com:99999/", True, True, None),
    ("https://hooks.example.com/a b", True, True, None),
    ("", True, True, None),
]


@pytest.mark.parametrize(("url", "allow_http", "allow_private", "expected"), POLICY)
def test_url_policy(url: str, allow_http: bool, allow_private: bool, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            check_webhook_url(url, allow_http=allow_http, allow_private=allow_private)
    else:
        assert check_webhook_url(url, allow_http=allow_http, allow_private=allow_private) == expected


@pytest.mark.parametrize(
    ("url", "allow_http", "words"),
    [
        ("http://hooks.example.com/", False, "https"),
        ("https://u:p@hooks.example.com/", False, "credentials"),
        ("https://127.0.0.1/", False, "loopback"),
        ("https://10.0.0.1/", False, "private"),
        ("https://169.254.169.254/", False, "link-local"),
        ("https://[::ffff:127.0.0.1]/", False, "loopback"),
        ("https://localhost/", False, "loopback"),
        ("https:///x", False, "no host"),
    ],
)
def test_refusals_name_the_reason(url: str, allow_http: bool, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        check_webhook_url(url, allow_http=allow_http, allow_private=False)


def test_normalise_applies_no_policy() -> None:
    assert normalise_url("HTTP://127.0.0.1:80") == "http://127.0.0.1/"
    assert normalise_url("not a url") == "not a url"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1.0),
        (" 120 ", 120.0),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),  # in the past: retry now
        ("soon", None),
        ("-5", None),
        ("2.5", 2.5),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected
