"""HTTP details of talking to WaveSpeed: origins, Retry-After, the server's words, network trouble.

Plain functions over `requests` objects, no ComfyUI; used by pipelines/wavespeed/client.py.
"""

from __future__ import annotations

import email.utils
import html
import json
import re
import time
from urllib.parse import urlsplit

import requests


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with default ports filled in: what 'same host' means for the key."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: a number (fractions accepted) or an HTTP date."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def summarise_body(resp: requests.Response, limit: int = 300) -> str | None:
    """The server's own words: `message`/`error` of a JSON body, or the title/text of HTML."""
    try:
        text = resp.text
    except Exception:
        return None
    return summarise_text(text, limit)


def summarise_text(text: str, limit: int = 300) -> str | None:
    """summarise_body() for an answer already read as text."""
    if not text:
        return None
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: a deeply nested answer
        body = None
    if isinstance(body, dict):
        for key in ("message", "error", "msg", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value.strip() and value.strip().lower() != "success":
                return value.strip()[:limit]
        data = body.get("data")
        if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"].strip():
            return data["error"].strip()[:limit]
        return None
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
    plain = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    plain = " ".join(html.unescape(plain).split())
    return (plain[:limit] + ("..." if len(plain) > limit else "")) or None


def network_problem(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "the connection attempt timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "the server did not answer in time"
    if isinstance(exc, requests.exceptions.Timeout):
        return "the request timed out"
    text = str(exc)
    if "Connection refused" in text or "NewConnectionError" in text:
        return "the connection was refused"
    if "Name or service not known" in text or "getaddrinfo" in text or "nodename nor servname" in text:
        return "the host name could not be resolved"
    if isinstance(exc, requests.exceptions.SSLError):
        return "the secure (TLS) connection failed"
    return "the connection dropped"


def never_connected(exc: BaseException) -> bool:
    """True when the request surely never reached the server (so nothing was created)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    return isinstance(exc, requests.exceptions.ConnectionError) and (
        "NewConnectionError" in str(exc) or "Connection refused" in str(exc)
        or "Name or service not known" in str(exc) or "getaddrinfo" in str(exc)
    )


def strip_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Auth hook for non-API hosts: no Authorization header, and no ~/.netrc lookup either."""
    request.headers.pop("Authorization", None)
    return request


def fmt_elapsed(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 60}:{seconds % 60:02d}"
