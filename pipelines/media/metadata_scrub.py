"""Remove secrets from what we write into output files (defence in depth).

The WaveSpeed key is never a widget, but a user may still have typed a key into some node of
their workflow, or another pack may carry one. Before a workflow/prompt goes into a file's
metadata: every string value equal to (or containing) a known secret is replaced, and every
string value of a field named like a key/token/secret/password is replaced.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

REDACTED = "<redacted>"
MIN_SECRET_LENGTH = 8

# Field names whose string values are credentials: api_key, apiKey, wavespeed-token, secret, ...
_SECRET_NAME = re.compile(
    r"(^|[_\-\s.])(api_?key|key|token|secret|password|passwd|auth|authorization|credentials?|bearer)s?$",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))  # apiKey -> api_Key
    return bool(_SECRET_NAME.search(spaced))


def scrub(value: Any, secrets: Iterable[str] = (), name: str | None = None) -> Any:
    """A copy of `value` (JSON-like: dict/list/str/...) with secrets replaced by '<redacted>'."""
    secrets = _usable(secrets)
    return _scrub(value, secrets, name)


def _usable(secrets: Iterable[str]) -> tuple[str, ...]:
    # Very short strings are no credential and replacing them would mangle ordinary text.
    return tuple(s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH)


def _scrub(value: Any, secrets: tuple[str, ...], name: str | None) -> Any:
    if isinstance(value, dict):
        return {_scrub(k, secrets, None) if isinstance(k, str) else k: _scrub(v, secrets, str(k))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, secrets, name) for v in value]
    if isinstance(value, str):
        if name is not None and is_secret_name(name) and value:
            return REDACTED
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    return value


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Last line of defence on the final serialised text."""
    for secret in _usable(secrets):
        text = text.replace(secret, REDACTED)
    return text
