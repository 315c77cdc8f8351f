"""Gateway request security, pure: signatures, rate limits and log masking.

Signature (DESIGN.md, wire details): `X-Router-Timestamp: <unix seconds>` and
`X-Router-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`,
several comma-separated signatures accepted (a gateway rotating its key signs with
both), several secrets valid per gateway (the router rotating), and a timestamp
within 5 minutes either way of the router's clock. The clock is an argument.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

TIMESTAMP_HEADER: Final = "X-Router-Timestamp"
SIGNATURE_HEADER: Final = "X-Router-Signature"
SIGNATURE_WINDOW_S: Final = 300
MAX_SIGNATURES: Final = 8  # bounds the work an attacker can ask for per request
_SCHEME: Final = "sha256="
_TIMESTAMP: Final = re.compile(r"[0-9]{1,12}")
_HEX_DIGEST: Final = re.compile(r"[0-9a-f]{64}")


class SignatureError(Exception):
    """The request is not from the gateway (HTTP 401). `code` says which check failed.

    codes: missing_timestamp, invalid_timestamp, stale_timestamp, future_timestamp,
    missing_signature, invalid_signature, bad_signature.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def sign(body: bytes, secret: str, timestamp_s: int) -> str:
    """The `X-Router-Signature` value for a body (for gateways' tests and the benchmark)."""
    return _SCHEME + _digest(secret.encode(), str(timestamp_s).encode(), body)


def signed_headers(body: bytes, secret: str, timestamp_s: int) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp_s), SIGNATURE_HEADER: sign(body, secret, timestamp_s)}


def verify_signature(
    body: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    secrets: Sequence[str],
    *,
    now_s: float,
    window_s: int = SIGNATURE_WINDOW_S,
) -> None:
    """Return if one signature matches one secret inside the window; else raise SignatureError."""
    if not secrets or not all(secrets):
        raise ValueError("a gateway needs at least one secret, and no empty one")
    timestamp = _checked_timestamp(timestamp_header, now_s, window_s)
    offered = _offered_digests(signature_header)
    matched = False
    for secret in secrets:
        expected = _digest(secret.encode(), timestamp.encode(), body)
        for digest in offered:
            # Constant time, and no early exit, so timing says nothing about which part matched.
            matched |= hmac.compare_digest(expected, digest)
    if not matched:
        raise SignatureError("bad_signature", "no signature matches a current secret")


def _digest(key: bytes, timestamp: bytes, body: bytes) -> str:
    mac = hmac.new(key, timestamp + b".", hashlib.sha256)
    mac.update(body)  # no copy of a large body
    return mac.hexdigest()


def _checked_timestamp(header: str | None, now_s: float, window_s: int) -> str:
    if header is None or not header.strip():
        raise SignatureError("missing_timestamp", f"the {TIMESTAMP_HEADER} header is required")
    value = header.strip()
    if not _TIMESTAMP.fullmatch(value):
        raise SignatureError("invalid_timestamp", f"{TIMESTAMP_HEADER} must be unix seconds")
    skew_s = int(value) - now_s
    if skew_s < -window_s:
        raise SignatureError("stale_timestamp", f"the timestamp is more than {window_s} s old")
    if skew_s > window_s:
        raise SignatureError("future_timestamp", f"the timestamp is more than {window_s} s ahead")
    return value


def _offered_digests(header: str | None) -> list[str]:
    if header is None or not header.strip():
        raise SignatureError("missing_signature", f"the {SIGNATURE_HEADER} header is required")
    parts = [part.strip() for part in header.split(",")]
    if len(parts) > MAX_SIGNATURES:
        raise SignatureError("invalid_signature", f"at most {MAX_SIGNATURES} signatures")
    # Other schemes are skipped, so a gateway may add a stronger one before we know it.
    digests = [p[len(_SCHEME) :].lower() for p in parts if p.lower().startswith(_SCHEME)]
    if not digests or not all(_HEX_DIGEST.fullmatch(d) for d in digests):
        raise SignatureError("invalid_signature", "expected sha256=<64 hex digits>[, ...]")
    return digests


# -- rate limiting ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """`tokens` left at `updated_s`; refills at `rate_per_s` up to `burst`."""

    rate_per_s: float
    burst: float
    tokens: float
    updated_s: float


def new_bucket(rate_per_s: float, burst: float, now_s: float) -> TokenBucket:
    if rate_per_s <= 0 or burst < 1:
        raise ValueError("a bucket needs rate_per_s > 0 and burst >= 1")
    return TokenBucket(rate_per_s, burst, burst, now_s)


def take(bucket: TokenBucket, now_s: float, cost: float = 1.0) -> tuple[TokenBucket, float]:
    """Try to spend `cost` tokens: (the bucket after, 0.0) or (unchanged, seconds to wait)."""
    if not 0 < cost <= bucket.burst:
        raise ValueError(f"cost must be in (0, burst={bucket.burst}]")
    elapsed_s = max(0.0, now_s - bucket.updated_s)  # a clock stepping back adds nothing
    tokens = min(bucket.burst, bucket.tokens + elapsed_s * bucket.rate_per_s)
    updated_s = max(now_s, bucket.updated_s)
    # Built directly, not with dataclasses.replace: this runs for every gateway request.
    if tokens >= cost:
        return TokenBucket(bucket.rate_per_s, bucket.burst, tokens - cost, updated_s), 0.0
    return TokenBucket(bucket.rate_per_s, bucket.burst, tokens, updated_s), (cost - tokens) / bucket.rate_per_s


class RateLimiter:
    """One token bucket per key (a gateway). No clock read: `now_s` comes with every call."""

    def __init__(self, rate_per_s: float, burst: float) -> None:
        new_bucket(rate_per_s, burst, 0.0)  # validate once
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._buckets: dict[str, TokenBucket] = {}

    def acquire(self, key: str, now_s: float, cost: float = 1.0) -> float:
        """0.0 when allowed, else the seconds after which to retry."""
        bucket = self._buckets.get(key) or new_bucket(self._rate_per_s, self._burst, now_s)
        self._buckets[key], retry_after_s = take(bucket, now_s, cost)
        return retry_after_s


def retry_after_header(retry_after_s: float) -> str:
    """`Retry-After` takes whole seconds: round up, at least 1."""
    return str(max(1, math.ceil(retry_after_s)))


# -- masking for logs -------------------------------------------------------------------


def mask_phone(number: str | None) -> str | None:
    """'+8613812345678' -> '+86*******5678': country code and last four digits only."""
    if not number:
        return None
    keep_head = 3 if len(number) >= 10 else (1 if len(number) >= 8 else 0)
    keep_tail = 4 if len(number) >= 8 else 2
    hidden = len(number) - keep_head - keep_tail
    if hidden <= 0:
        return "*" * len(number)
    return number[:keep_head] + "*" * hidden + number[-keep_tail:]


def mask_text(text: str | None) -> str:
    """A message text for a log line: only its length."""
    return "[no text]" if text is None else f"[text: {len(text)} chars]"
