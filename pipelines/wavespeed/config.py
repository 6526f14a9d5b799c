"""Where the WaveSpeed API key and client settings come from.

The key is read at call time from `WAVESPEED_API_KEY`, else from a user config file OUTSIDE the
pack's folder (never from a node widget: widget values are saved into workflow JSON and into
image/video metadata). Nothing here logs or returns the key in a message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_BASE_URL = "https://api.wavespeed.ai"
DEFAULT_TIMEOUT_S = 30 * 60.0
DEFAULT_POLL_INTERVAL_S = 1.0


class ConfigError(RuntimeError):
    """The WaveSpeed configuration is missing or unreadable (never contains the key)."""


def config_file_path() -> Path:
    """The user config file: $WAVESPEED_CONFIG_FILE, else the platform's per-user config folder.

    Linux/macOS: $XDG_CONFIG_HOME/hunyuan-custom/wavespeed.json (default ~/.config/...);
    Windows: %APPDATA%\\hunyuan-custom\\wavespeed.json. Content: {"api_key": "..."}.
    """
    override = os.environ.get("WAVESPEED_CONFIG_FILE")
    if override:
        return Path(override).expanduser()
    if os.name == "nt" and os.environ.get("APPDATA"):
        base = Path(os.environ["APPDATA"])
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "hunyuan-custom" / "wavespeed.json"


def _key_from_file(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"could not read the WaveSpeed config file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"{path} is not valid JSON; it should look like {{\"api_key\": \"...\"}}") from None
    key = data.get("api_key") if isinstance(data, dict) else None
    if not isinstance(key, str) or not key.strip():
        raise ConfigError(f"{path} has no \"api_key\" string; it should look like {{\"api_key\": \"...\"}}")
    return key.strip()


def get_api_key() -> str:
    """The key, from the environment or the config file; a clear error if neither has one."""
    key = os.environ.get("WAVESPEED_API_KEY", "").strip()
    if key:
        return key
    path = config_file_path()
    key = _key_from_file(path)
    if key:
        return key
    raise ConfigError(
        "No WaveSpeed API key is configured. Set the environment variable WAVESPEED_API_KEY, "
        f"or put {{\"api_key\": \"...\"}} into {path}."
    )


def api_key_configured() -> bool:
    """Whether a key is available (answers yes/no only; used by the web status badge)."""
    try:
        return bool(get_api_key())
    except ConfigError:
        return False


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise ConfigError(f"{name}={raw!r} must be a positive number of seconds")
    return value


def base_url() -> str:
    return (os.environ.get("WAVESPEED_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def timeout_s() -> float:
    """Overall cap on waiting for one task (WAVESPEED_TIMEOUT_S, default 30 min)."""
    return _float_env("WAVESPEED_TIMEOUT_S", DEFAULT_TIMEOUT_S)


def poll_interval_s() -> float:
    """First poll interval (WAVESPEED_POLL_INTERVAL_S); later polls back off to >= 5 s."""
    return _float_env("WAVESPEED_POLL_INTERVAL_S", DEFAULT_POLL_INTERVAL_S)
