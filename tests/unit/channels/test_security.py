"""Gateway signatures, the rate limiter and log masking."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from channels.security import (
    RateLimiter,
    SignatureError,
    mask_phone,
    mask_text,
    new_bucket,
    retry_after_header,
    sign,
    signed_headers,
    take,
    verify_signature,
)

BODY = b'{"event_type":"call.ended","event_id":"e-1"}'
NOW = 1_741_915_812
OLD, NEW = "old-secret-9f2c", "new-secret-41aa"


def _verify(timestamp: str | None, signature: str | None, secrets: list[str] | None = None, body: bytes = BODY) -> None:
    verify_signature(body, timestamp, signature, secrets or [NEW], now_s=NOW)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(NEW.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, NEW, NOW) == f"sha256={expected}"
    assert signed_headers(BODY, NEW, NOW) == {
        "X-Router-Timestamp": str(NOW),
        "X-Router-Signature": f"sha256={expected}",
    }


@pytest.mark.parametrize(
    ("timestamp", "signature", "secrets"),
    [
        (str(NOW), sign(BODY, NEW, NOW), [NEW]),
        (str(NOW), sign(BODY, OLD, NOW), [NEW, OLD]),  # the router rotating: both secrets valid
        (str(NOW), f"{sign(BODY, OLD, NOW)},{sign(BODY, NEW, NOW)}", [NEW]),  # the gateway rotating
        (str(NOW), f"{sign(BODY, NEW, NOW)} , sha256={'0' * 64}", [NEW]),
        (str(NOW), f"v2=abc,{sign(BODY, NEW, NOW)}", [NEW]),  # an unknown scheme is skipped
        (str(NOW), sign(BODY, NEW, NOW).upper().replace("SHA256=", "sha256="), [NEW]),
        (str(NOW - 300), sign(BODY, NEW, NOW - 300), [NEW]),  # the edges of the window
        (str(NOW + 300), sign(BODY, NEW, NOW + 300), [NEW]),
        (f" {NOW} ", sign(BODY, NEW, NOW), [NEW]),
    ],
)
def test_valid_signatures(timestamp: str, signature: str, secrets: list[str]) -> None:
    _verify(timestamp, signature, secrets)


@pytest.mark.parametrize(
    ("timestamp", "signature", "secrets", "code"),
    [
        (str(NOW), sign(BODY, "forged", NOW), [NEW], "bad_signature"),
        (str(NOW), sign(BODY, OLD, NOW), [NEW], "bad_signature"),  # a retired secret
        (str(NOW), sign(BODY + b" ", NEW, NOW), [NEW], "bad_signature"),  # another body
        (str(NOW), sign(BODY, NEW, NOW - 1), [NEW], "bad_signature"),  # signed for another time
        (str(NOW - 301), sign(BODY, NEW, NOW - 301), [NEW], "stale_timestamp"),  # a replay
        (str(NOW + 301), sign(BODY, NEW, NOW + 301), [NEW], "future_timestamp"),
        (None, sign(BODY, NEW, NOW), [NEW], "missing_timestamp"),
        ("", sign(BODY, NEW, NOW), [NEW], "missing_timestamp"),
        ("2025-03-14T09:30:12Z", sign(BODY, NEW, NOW), [NEW], "invalid_timestamp"),
        ("-5", sign(BODY, NEW, NOW), [NEW], "invalid_timestamp"),
        (str(NOW), None, [NEW], "missing_signature"),
        (str(NOW), "", [NEW], "missing_signature"),
        (str(NOW), sign(BODY, NEW, NOW).removeprefix("sha256="), [NEW], "invalid_signature"),
        (str(NOW), "sha256=xyz", [NEW], "invalid_signature"),
        (str(NOW), "v2=abc", [NEW], "invalid_signature"),
        (str(NOW), ",".join([sign(BODY, NEW, NOW)] * 9), [NEW], "invalid_signature"),
    ],
)
def test_refused_signatures(timestamp: str | None, signature: str | None, secrets: list[str], code: str) -> None:
    with pytest.raises(SignatureError) as caught:
        _verify(timestamp, signature, secrets)
    assert caught.value.code == code


@pytest.mark.parametrize("secrets", [[], [""], [NEW, ""]])
def test_a_gateway_without_a_real_secret_is_a_configuration_error(secrets: list[str]) -> None:
    with pytest.raises(ValueError):
        verify_signature(BODY, str(NOW), sign(BODY, "", NOW), secrets, now_s=NOW)


# -- rate limiter -----------------------------------------------------------------------------


def test_bucket_allows_a_burst_then_asks_to_wait() -> None:
    bucket = new_bucket(rate_per_s=10, burst=3, now_s=100.0)
    waits = []
    for _ in range(4):
        bucket, wait_s = take(bucket, 100.0)
        waits.append(wait_s)
    assert waits == [0.0, 0.0, 0.0, pytest.approx(0.1)]


def test_bucket_refills_with_time_up_to_the_burst() -> None:
    bucket = new_bucket(rate_per_s=2, burst=4, now_s=0.0)
    for _ in range(4):
        bucket, _ = take(bucket, 0.0)
    bucket, wait_s = take(bucket, 0.25)  # half a token back
    assert wait_s == pytest.approx(0.25)
    bucket, wait_s = take(bucket, 0.5)
    assert wait_s == 0.0 and bucket.tokens == pytest.approx(0.0)
    bucket, _ = take(bucket, 1000.0)
    assert bucket.tokens == pytest.approx(3.0)  # capped at the burst, one spent


def test_a_clock_stepping_back_adds_no_tokens() -> None:
    bucket = new_bucket(rate_per_s=1, burst=1, now_s=50.0)
    bucket, _ = take(bucket, 50.0)
    bucket, wait_s = take(bucket, 10.0)
    assert wait_s == pytest.approx(1.0) and bucket.updated_s == 50.0


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 5), (1, 0.5)])
def test_bad_bucket_settings(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        new_bucket(rate, burst, 0.0)


def test_a_cost_above_the_burst_could_never_pass() -> None:
    with pytest.raises(ValueError):
        take(new_bucket(1, 2, 0.0), 0.0, cost=3)


def test_limiter_keeps_one_bucket_per_gateway() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=2)
    assert [limiter.acquire("phone", 0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert limiter.acquire("webchat", 0.0) == 0.0
    assert limiter.acquire("phone", 1.0) == 0.0


@pytest.mark.parametrize(("wait_s", "header"), [(0.0, "1"), (0.01, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")])
def test_retry_after_is_whole_seconds(wait_s: float, header: str) -> None:
    assert retry_after_header(wait_s) == header


# -- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+8613812345678", "+86*******5678"),
        ("+14155550123", "+14*****0123"),
        ("95588", "***88"),
        ("+1234567", "+***4567"),
        ("12", "**"),
        (None, None),
        ("", None),
    ],
)
def test_mask_phone(number: str | None, masked: str | None) -> None:
    assert mask_phone(number) == masked


def test_mask_text_keeps_only_the_length() -> None:
    assert mask_text("我的卡被盗刷了") == "[text: 7 chars]"
    assert mask_text(None) == "[no text]"
