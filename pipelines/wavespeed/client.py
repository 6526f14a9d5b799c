"""WaveSpeed's hosted HunyuanCustom: upload the reference, submit ONCE, poll, download, decode.

Plain `requests`, no ComfyUI. The contract is in docs/wavespeed-api.md. Policies that matter:
- A submit is never resent after a timeout or a dropped connection: the task may exist and be
  billed. Only a 429 (nothing was created) is retried, after its Retry-After.
- Polls, uploads and downloads are retried on 429 / 5xx / connection errors with exponential
  backoff and jitter, honouring Retry-After; the whole wait has a cap (WAVESPEED_TIMEOUT_S).
- The API key goes ONLY to requests whose scheme+host+port equal the API base's. Upload PUT URLs
  and output CDNs never see it; it is never logged and never part of an error message.
- Waiting sleeps in slices of <= 0.2 s and calls `should_cancel` (which raises to stop) between
  them, so Cancel stops within about a second. The output download (media/web_fetch.py) checks
  Cancel and its own caps every 0.1 s, whatever the CDN's pace; its reader thread ends with it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import requests
import torch

from .. import schema
from . import config as wavespeed_config
from ..media import web_fetch
from .transport import (fmt_elapsed, network_problem, never_connected, origin, parse_retry_after, strip_auth,
                        summarise_body, summarise_text)

log = logging.getLogger(__name__)

API_PREFIX = "/api/v3"
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "timeout", "deleted"})
# The request body fields, exactly as WaveSpeed names them (besides `image`, the uploaded URL).
BODY_FIELDS = ("prompt", "negative_prompt", "size", "guidance_scale", "flow_shift", "seed", "enable_safety_checker")

# What WaveSpeed's task error codes mean, in words a user can act on.
TASK_CODE_HINTS = {
    1200: "the content was blocked by moderation",
    1400: "a required parameter was missing",
    1401: "a parameter was invalid",
    1402: "WaveSpeed could not fetch the uploaded reference image",
    1403: "the generation failed on WaveSpeed's side",
    1405: "the generation failed on WaveSpeed's side",
    5000: "WaveSpeed had an internal error",
    5003: "the model is temporarily unavailable",
    5004: "the task timed out on WaveSpeed's side",
}

StatusCallback = Callable[[str], None]
CancelCheck = Callable[[], None]


@dataclass(frozen=True)
class Settings:
    """Client timing and limits. Defaults follow WaveSpeed's docs; tests shrink them."""

    base_url: str = wavespeed_config.DEFAULT_BASE_URL
    timeout_s: float = wavespeed_config.DEFAULT_TIMEOUT_S  # overall cap, from job start to a finished task
    poll_interval_s: float = wavespeed_config.DEFAULT_POLL_INTERVAL_S  # first poll interval
    poll_slow_s: float = 5.0  # polls grow to this (WaveSpeed asks for >= 5 s between video polls)
    poll_growth: float = 1.5
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0  # uploads; downloads: the longest pause between two packets
    download_timeout_s: float = 600.0  # the output download as a whole (Cancel is seen within 0.1 s)
    max_download_bytes: int = 500 << 20  # a 720p, 5 s mp4 is ~10 MB; far more is not a video of ours
    poll_read_timeout_s: float = 5.0  # polls answer fast; short so a stalled poll is retried and Cancel is seen within 5 s
    submit_read_timeout_s: float = 120.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    max_retries: int = 6  # consecutive transient failures tolerated per step
    # Before the API has answered once in a job, a refused connection or an unknown host is almost
    # always a wrong WAVESPEED_BASE_URL, no network or a proxy, not a hiccup: one quick retry, then
    # the error, instead of a minute of backoff. Once it has answered (a task may exist), max_retries.
    unreachable_retries: int = 1
    submit_rate_limit_retries: int = 3
    max_retry_after_s: float = 300.0  # a longer Retry-After fails instead of silently waiting
    sleep_slice_s: float = 0.2

    @classmethod
    def from_env(cls, **overrides: Any) -> "Settings":
        """WAVESPEED_BASE_URL, WAVESPEED_TIMEOUT_S and WAVESPEED_POLL_INTERVAL_S, read now."""
        poll = wavespeed_config.poll_interval_s()
        values = dict(
            base_url=wavespeed_config.base_url(),
            timeout_s=wavespeed_config.timeout_s(),
            poll_interval_s=poll,
            # A failed poll is retried no later than a normal poll would come (1 s by default).
            backoff_base_s=min(cls.backoff_base_s, poll),
        )
        values.update(overrides)
        return cls(**values)

    def poll_interval(self, index: int) -> float:
        """Interval before poll `index + 1`: fast at first, growing to >= poll_slow_s."""
        ceiling = max(self.poll_interval_s, self.poll_slow_s)
        return min(self.poll_interval_s * self.poll_growth ** index, ceiling)

    def backoff(self, failures: int) -> float:
        """Exponential backoff with jitter (half fixed, half random) after `failures` failures."""
        delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** max(failures - 1, 0))
        return delay * (0.5 + 0.5 * random.random())


class WaveSpeedError(RuntimeError):
    """A user-facing failure. The message says what happened and what to do, with the task id,
    HTTP status and the server's message where known. It never contains the API key."""

    def __init__(self, message: str, *, reason: str, task_id: str | None = None, http_status: int | None = None,
                 code: Any = None, server_message: str | None = None, summary: str | None = None):
        super().__init__(message)
        self.summary = summary or message  # what happened, without the advice (for a status line)
        self.reason = reason
        self.task_id = task_id
        self.http_status = http_status
        self.code = code
        self.server_message = server_message


class _Transient(Exception):
    """A failure worth retrying (429, 5xx, connection trouble); internal to the retry loop."""

    def __init__(self, problem: str, http_status: int | None = None, retry_after: float | None = None,
                 server_message: str | None = None, network: bool = False, unreachable: bool = False):
        super().__init__(problem)
        self.problem = problem
        self.http_status = http_status
        self.retry_after = retry_after
        self.server_message = server_message
        self.network = network
        self.unreachable = unreachable  # refused / unknown host: the request surely reached no server


def _network_failure(exc: BaseException) -> _Transient:
    return _Transient(network_problem(exc), network=True, unreachable=never_connected(exc))


def _raise_if_transient(resp: requests.Response) -> None:
    """429 and 5xx answers are worth retrying (after Retry-After when the server gives one)."""
    if resp.status_code == 429 or resp.status_code >= 500:
        raise _Transient(f"HTTP {resp.status_code}", resp.status_code, parse_retry_after(resp.headers.get("Retry-After")),
                         summarise_body(resp))


@dataclass(frozen=True)
class JobResult:
    frames: torch.Tensor  # [F, H, W, 3] float32 0..1
    fps: float
    video_path: Path
    task_id: str
    model: str
    seed: int | None  # the seed used, when known (the one asked for, or the one the server reports)


def reference_png(reference: torch.Tensor) -> bytes:
    """A ComfyUI IMAGE ([1,H,W,3] or [H,W,3], 0..1) as PNG bytes."""
    from PIL import Image

    ref = reference.detach().to("cpu", torch.float32)
    if ref.ndim == 4:
        if ref.shape[0] != 1:
            raise WaveSpeedError(f"WaveSpeed takes one reference image, got a batch of {ref.shape[0]}; "
                                 "composite them first (HunyuanCustomPrompt does).", reason="bad_input")
        ref = ref[0]
    if ref.ndim != 3 or ref.shape[-1] not in (3, 4):
        raise WaveSpeedError(f"the reference image must be shaped [H, W, 3], got {tuple(reference.shape)}",
                             reason="bad_input")
    arr = (ref[..., :3].clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------
# The client


class WaveSpeedClient:
    """One job's worth of talking to WaveSpeed. Use as a context manager (closes connections)."""

    def __init__(self, api_key: str, settings: Settings | None = None, *, on_status: StatusCallback | None = None,
                 should_cancel: CancelCheck | None = None):
        if not api_key:
            raise ValueError("an API key is required")
        self._key = api_key
        self.settings = settings or Settings()
        self.base_url = self.settings.base_url.rstrip("/")
        self._on_status = on_status
        self._should_cancel = should_cancel
        self._session = requests.Session()
        self._started = time.monotonic()
        # The overall cap (WAVESPEED_TIMEOUT_S) runs from the start of the job.
        self.deadline = self._started + self.settings.timeout_s
        self._last_tick = 0.0
        self._answered = False  # has the API answered once in this job (see Settings.unreachable_retries)
        self.task_id: str | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"WaveSpeedClient(base_url={self.base_url!r})"

    def __enter__(self) -> "WaveSpeedClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        text = text.replace(self._key, "[hidden]")
        return re.sub(r"(?i)(bearer)\s+\S+", r"\1 [hidden]", text)

    def _error(self, what: str, advice: str = "", *, reason: str, http_status: int | None = None,
               code: Any = None, server_message: str | None = None, task_id: str | None = None) -> WaveSpeedError:
        """Build the one message format: what happened. What to do. [task id; HTTP; code; server]"""
        task_id = task_id or self.task_id
        server_message = self._redact(server_message) if server_message else None
        facts = []
        if task_id:
            facts.append(f"task id: {task_id}")
        if http_status is not None:
            facts.append(f"HTTP {http_status}")
        if code is not None:
            facts.append(f"code {code}")
        if server_message:
            facts.append(f"server message: {server_message!r}")
        message = what.rstrip(".") + "."
        if advice:
            message += " " + advice.rstrip(".") + "."
        if facts:
            message += " [" + "; ".join(facts) + "]"
        return WaveSpeedError(self._redact(message), reason=reason, task_id=task_id, http_status=http_status,
                              code=code, server_message=server_message, summary=self._redact(what.rstrip(".")))

    def status(self, text: str) -> None:
        """Report progress: status, elapsed time and task id."""
        parts = [text, fmt_elapsed(time.monotonic() - self._started)]
        if self.task_id:
            parts.append(f"task {self.task_id}")
        line = self._redact("WaveSpeed: " + " · ".join(parts))
        self._last_tick = time.monotonic()
        if self._on_status is not None:
            self._on_status(line)

    def check_cancel(self) -> None:
        if self._should_cancel is not None:
            self._should_cancel()

    def sleep(self, seconds: float, tick: str | None = None) -> None:
        """Wait in short slices, checking for Cancel; refresh the status line about once a second."""
        end = time.monotonic() + max(seconds, 0.0)
        while True:
            self.check_cancel()
            left = end - time.monotonic()
            if left <= 0:
                return
            if tick is not None and time.monotonic() - self._last_tick >= 1.0:
                self.status(tick)
            time.sleep(min(self.settings.sleep_slice_s, left))

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _timeout(self, read: float) -> tuple[float, float]:
        """(connect, read) for one request; never longer than what is left of the overall cap."""
        left = max(self.deadline - time.monotonic(), 0.1)
        return min(self.settings.connect_timeout_s, left), min(read, left)

    def _api_request(self, method: str, path: str, *, session: requests.Session | None = None,
                     read_timeout: float | None = None, **kwargs: Any) -> requests.Response:
        """A request to the API itself: the only kind that carries the key."""
        url = self._url(path)
        if origin(url) != origin(self.base_url):  # cannot happen for paths; guard against misuse
            raise ValueError("refusing to send the API key to another host")
        headers = {"Authorization": f"Bearer {self._key}", "Accept": "application/json"}
        headers.update(kwargs.pop("headers", {}) or {})
        timeout = self._timeout(read_timeout or self.settings.read_timeout_s)
        # No redirects: a redirect could carry the key to another host (and is never expected).
        resp = (session or self._session).request(method, url, headers=headers, timeout=timeout,
                                                  allow_redirects=False, **kwargs)
        self._answered = True
        return resp

    def _plain_request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """A request to the upload host WaveSpeed named: never with the key, never redirected (a
        presigned upload URL does not redirect; following one would send the picture elsewhere)."""
        timeout = (self.settings.connect_timeout_s, min(self.settings.read_timeout_s, self.settings.timeout_s))
        return self._session.request(method, url, timeout=timeout, auth=strip_auth, allow_redirects=False, **kwargs)

    def _retrying(self, what: str, attempt: Callable[[], Any], *, capped: bool = True,
                  host: str | None = None) -> Any:
        """Run `attempt` until it succeeds, retrying _Transient failures with backoff/Retry-After.
        `capped`: give up when the overall cap would pass while waiting to retry."""
        failures = 0
        while True:
            self.check_cancel()
            try:
                return attempt()
            except _Transient as t:
                failures += 1
                last = t
            if failures > self.settings.max_retries:
                raise self._gave_up(what, last, host)
            if last.unreachable and not self._answered and failures > self.settings.unreachable_retries:
                raise self._gave_up(what, last, host, extra=f"{failures} tries")
            delay = last.retry_after if last.retry_after is not None else self.settings.backoff(failures)
            if delay > self.settings.max_retry_after_s:
                raise self._gave_up(what, last, host, extra=f"it asked to wait {delay:.0f} s")
            if capped and time.monotonic() + delay > self.deadline:
                raise self._timed_out(f"while {what}", problem=last)
            log.warning("WaveSpeed: %s: %s%s; retrying in %.1f s (%d/%d)", what, last.problem,
                        f" (HTTP {last.http_status})" if last.http_status else "", delay, failures,
                        self.settings.max_retries)
            self.status(f"{what}: {last.problem}, retrying in {delay:.0f} s")
            self.sleep(delay)  # announced once: no status ticks while waiting to retry

    def _gave_up(self, what: str, t: _Transient, host: str | None, extra: str = "") -> WaveSpeedError:
        host = host or urlsplit(self.base_url).netloc
        tail = f" ({extra})" if extra else ""
        # Once submitted, the task runs (and is billed) whatever happens to our polls: running again
        # would pay for a second video, so the advice is the dashboard first.
        billed = (f"Task {self.task_id} was already submitted and may be billed: look it up on your WaveSpeed "
                  "dashboard (its video may be there) before running again, which submits and bills a new task. "
                  if self.task_id else "")
        if t.http_status == 429:
            return self._error(
                f"WaveSpeed kept answering 'too many requests' while {what}{tail}",
                billed + "Your account tier limits how many videos run per minute and at once; wait a minute "
                "and run again", reason="rate_limit", http_status=429, server_message=t.server_message)
        if t.network:
            return self._error(
                f"Could not reach {host} while {what}: {t.problem}{tail}",
                billed + "Check the internet connection or proxy settings, and WAVESPEED_BASE_URL if you set it",
                reason="unreachable", server_message=t.server_message)
        return self._error(
            f"WaveSpeed's server kept failing while {what}: {t.problem}{tail}",
            billed + "This is on WaveSpeed's side" + ("" if self.task_id else "; try again in a few minutes"),
            reason="server_error", http_status=t.http_status, server_message=t.server_message)

    def _timed_out(self, when: str, last_status: str | None = None, problem: _Transient | None = None) -> WaveSpeedError:
        status = f"; its last status was '{last_status}'" if last_status else ""
        if problem is not None:
            status += f"; the last attempt failed: {problem.problem}"
        result = f"{self.base_url}{API_PREFIX}/predictions/{self.task_id}/result" if self.task_id else None
        return self._error(
            f"Gave up waiting for WaveSpeed after {fmt_elapsed(self.settings.timeout_s)} "
            f"(WAVESPEED_TIMEOUT_S={self.settings.timeout_s:g}) {when}{status}",
            ("The task may still finish; its result will be at " + result + ". " if result else "")
            + "Set WAVESPEED_TIMEOUT_S higher to wait longer", reason="timeout",
            http_status=problem.http_status if problem else None,
            server_message=problem.server_message if problem else None)

    def _envelope(self, resp: requests.Response, what: str) -> dict:
        """Check an API answer (HTTP status, then `code` inside the body); return `data`."""
        _raise_if_transient(resp)
        status = resp.status_code
        message = summarise_body(resp)
        if status == 401:
            raise self._auth_error(what, 401, message)
        if status == 402:
            raise self._credits_error(what, 402, None, message)
        if status == 403:
            raise self._error(f"WaveSpeed refused {what} for this account",
                              "Check the account's balance and plan at wavespeed.ai, and that the key "
                              "belongs to it", reason="forbidden", http_status=403, server_message=message)
        if status == 413:
            raise self._error(f"WaveSpeed refused {what}: the file is too large",
                              "Use a smaller reference image", reason="too_large", http_status=413,
                              server_message=message)
        if status == 415:
            raise self._error(f"WaveSpeed refused {what}: it does not take this kind of file",
                              "Use a PNG or JPEG reference image", reason="unsupported_media", http_status=415,
                              server_message=message)
        if status in (400, 422):
            raise self._error(f"WaveSpeed rejected the request while {what}",
                              "Check the prompt and settings against what WaveSpeed accepts",
                              reason="validation", http_status=status, server_message=message)
        if status in (404, 405, 410):
            raise self._error(f"WaveSpeed has no {urlsplit(resp.url).path or 'such address'} (while {what})",
                              "Check WAVESPEED_BASE_URL (default https://api.wavespeed.ai) and that this pack "
                              "is up to date", reason="not_found", http_status=status, server_message=message)
        if 300 <= status < 400:
            raise self._error(f"WaveSpeed answered {what} with a redirect to {resp.headers.get('Location')!r}",
                              "Set WAVESPEED_BASE_URL to the final API address", reason="redirect",
                              http_status=status)
        if 400 <= status < 500:
            raise self._error(f"WaveSpeed refused {what} (HTTP {status})",
                              "The server's message below says why; check the settings, and the account at "
                              "wavespeed.ai", reason="http_error", http_status=status, server_message=message)
        if not 200 <= status < 300:
            raise self._error(f"WaveSpeed answered {what} with HTTP {status}, which this pack does not expect",
                              "Try again; if it keeps happening, check WAVESPEED_BASE_URL and that this pack is "
                              "up to date", reason="http_error", http_status=status, server_message=message)
        try:
            body = resp.json()
        except ValueError:
            raise _Transient("the answer was not JSON", status, None, message) from None
        if not isinstance(body, dict):
            raise _Transient("the answer was not a JSON object", status, None, message)
        code = body.get("code", 200)
        if code not in (200, "200", 0, "0", None):
            code_num = int(code) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else None
            if code_num == 429 or (code_num is not None and 500 <= code_num < 600):
                raise _Transient(f"error code {code}", code_num, parse_retry_after(resp.headers.get("Retry-After")),
                                 message)
            if code_num == 401:
                raise self._auth_error(what, status, message)
            if code_num == 402:
                raise self._credits_error(what, status, code, message)
            raise self._error(f"WaveSpeed reported an error while {what}", reason="api_error",
                              http_status=status, code=code, server_message=message)
        data = body.get("data")
        if not isinstance(data, dict):
            raise _Transient("the answer had no 'data' object", status, None, message)
        return data

    def _credits_error(self, what: str, status: int, code: Any, message: str | None) -> WaveSpeedError:
        return self._error(f"WaveSpeed refused {what}: the account has insufficient credits",
                           "Top up the balance at wavespeed.ai (Billing), then run again; no video was made",
                           reason="insufficient_credits", http_status=status, code=code, server_message=message)

    def _auth_error(self, what: str, status: int, message: str | None) -> WaveSpeedError:
        return self._error(
            f"WaveSpeed did not accept the API key while {what}",
            "Check WAVESPEED_API_KEY or the \"api_key\" in "
            f"{wavespeed_config.config_file_path()}", reason="auth", http_status=status, server_message=message)

    # -- the steps --------------------------------------------------------------------------

    def balance(self) -> float:
        """The account balance: a cheap check that the key works (no task is created)."""
        what = "checking the account balance"

        def ask() -> dict:
            try:
                resp = self._api_request("GET", f"{API_PREFIX}/balance")
            except requests.exceptions.RequestException as exc:
                raise _network_failure(exc) from None
            with resp:
                return self._envelope(resp, what)

        value = self._retrying(what, ask).get("balance")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._error(f"WaveSpeed's answer to {what} had no balance", reason="bad_response")
        return float(value)

    def upload_png(self, png: bytes, filename: str = "reference.png") -> str:
        """Upload image bytes; return the URL WaveSpeed can fetch them from."""
        what = "uploading the reference image"
        self.status("uploading the reference image")

        def one_step() -> str | None:
            try:
                resp = self._api_request("POST", f"{API_PREFIX}/media/upload/binary",
                                         files={"file": (filename, png, "image/png")})
            except requests.exceptions.RequestException as exc:
                raise _network_failure(exc) from None
            with resp:
                if resp.status_code in (404, 405):  # a server without the one-step route
                    return None
                data = self._envelope(resp, what)
            return self._download_url(data, what)

        url = self._retrying(what, one_step)
        if url is None:
            url = self._upload_two_step(png, filename, what)
        log.info("WaveSpeed: reference image uploaded")
        return url

    def _download_url(self, data: dict, what: str) -> str:
        url = data.get("download_url") or data.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise self._error(f"WaveSpeed's answer to {what} had no usable download_url", reason="bad_response")
        return url

    def _upload_two_step(self, png: bytes, filename: str, what: str) -> str:
        """SDK 2.0.5's flow: ask for a presigned PUT URL, PUT the bytes there WITHOUT the key."""

        def ask() -> dict:
            try:
                resp = self._api_request("POST", f"{API_PREFIX}/media/uploads",
                                         json={"filename": filename, "size": len(png), "content_type": "image/png"})
            except requests.exceptions.RequestException as exc:
                raise _network_failure(exc) from None
            with resp:
                return self._envelope(resp, what)

        data = self._retrying(what, ask)
        download_url = self._download_url(data, what)
        upload = data.get("upload")
        if not isinstance(upload, dict) or not isinstance(upload.get("url"), str):
            raise self._error(f"WaveSpeed's answer to {what} had no upload URL", reason="bad_response")
        method = str(upload.get("method") or "PUT").upper()
        put_url = upload["url"]
        headers = {str(k): str(v) for k, v in (upload.get("headers") or {}).items()}
        host = urlsplit(put_url).netloc

        def put() -> None:
            try:
                resp = self._plain_request(method, put_url, data=png, headers=headers)
            except requests.exceptions.RequestException as exc:
                raise _network_failure(exc) from None
            with resp:
                _raise_if_transient(resp)
                if resp.is_redirect:
                    elsewhere = urlsplit(resp.headers.get("Location", "")).netloc or "another address"
                    raise self._error(f"The upload host {host} redirected the reference image to {elsewhere}; "
                                      "it was not sent there", "Nothing was submitted or billed; queue again later.",
                                      reason="upload_failed", http_status=resp.status_code)
                if not 200 <= resp.status_code < 300:
                    raise self._error(f"The upload host {host} refused the reference image", reason="upload_failed",
                                      http_status=resp.status_code, server_message=summarise_body(resp))

        self._retrying(what, put, host=host)
        return download_url

    def submit(self, model: str, body: Mapping[str, Any]) -> str:
        """POST the job ONCE; return the task id. Only a 429 (nothing created) is retried."""
        what = "submitting the job"
        path = f"{API_PREFIX}/{model}"
        for attempt in range(self.settings.submit_rate_limit_retries + 1):
            self.check_cancel()
            self.status("submitting the job")
            # A fresh session: a stale keep-alive socket must not turn a one-shot submit into a failure.
            with requests.Session() as fresh:
                resp, problem, nothing_sent = None, "", False
                try:
                    resp = self._api_request("POST", path, session=fresh, json=dict(body),
                                             read_timeout=self.settings.submit_read_timeout_s)
                except requests.exceptions.RequestException as exc:
                    # Only words leave this block: the exception holds the request, key included.
                    problem, nothing_sent = network_problem(exc), never_connected(exc)
                if resp is None:
                    if nothing_sent:
                        raise self._error(f"Could not reach WaveSpeed at {urlsplit(self.base_url).netloc} to submit "
                                          f"the job: {problem}", "Nothing was sent; check the connection and run again",
                                          reason="unreachable")
                    raise self._error(
                        f"The job was sent to WaveSpeed but {problem} before it answered, so it is unknown "
                        "whether a task was created (and billed)",
                        "It was NOT resent automatically, to avoid paying twice; look at your WaveSpeed "
                        "dashboard before running again", reason="submit_uncertain")
                with resp:
                    try:
                        data = self._envelope(resp, what)
                    except _Transient as t:
                        if t.http_status != 429:
                            raise self._error(
                                f"WaveSpeed's server failed while accepting the job ({t.problem}), so it is unknown "
                                "whether a task was created", "It was NOT resent automatically; look at your "
                                "WaveSpeed dashboard before running again", reason="submit_uncertain",
                                http_status=resp.status_code, server_message=t.server_message) from None
                        if attempt >= self.settings.submit_rate_limit_retries:
                            raise self._gave_up(what, t, None) from None
                        delay = t.retry_after if t.retry_after is not None else self.settings.backoff(attempt + 1)
                        if delay > self.settings.max_retry_after_s or time.monotonic() + delay > self.deadline:
                            raise self._gave_up(what, t, None, extra=f"it asked to wait {delay:.0f} s") from None
                        log.warning("WaveSpeed: rate limited on submit; nothing was created; retrying in %.1f s", delay)
                        rate_limited = delay
                    else:
                        task_id = data.get("id")
                        if not isinstance(task_id, (str, int)) or not str(task_id).strip():
                            raise self._error("WaveSpeed accepted the job but returned no task id",
                                              "Look at your WaveSpeed dashboard before running again",
                                              reason="bad_response")
                        self.task_id = str(task_id)
                        log.info("WaveSpeed: task %s submitted to %s", self.task_id, model)
                        return self.task_id
            self.status(f"rate limited, retrying in {rate_limited:.0f} s")
            self.sleep(rate_limited, tick="rate limited, waiting")
        raise AssertionError("unreachable")

    def wait(self, task_id: str) -> dict:
        """Poll until a terminal status or the overall cap; return the final `data`."""
        self.task_id = task_id
        deadline = self.deadline
        what = "checking on the task"
        path = f"{API_PREFIX}/predictions/{task_id}/result"

        def poll() -> dict:
            try:
                resp = self._api_request("GET", path, read_timeout=self.settings.poll_read_timeout_s)
            except requests.exceptions.RequestException as exc:
                raise _network_failure(exc) from None
            with resp:
                if resp.status_code == 404:
                    raise self._error("WaveSpeed does not know this task (it may have been deleted)",
                                      reason="not_found", http_status=404, server_message=summarise_body(resp))
                return self._envelope(resp, what)

        index = 0
        last_status = None
        while True:
            data = self._retrying(what, poll)
            status = str(data.get("status") or "").strip().lower() or "unknown"
            if status != last_status:
                log.info("WaveSpeed: task %s is %s", task_id, status)
                last_status = status
            self.status(status)
            if status in TERMINAL_STATUSES:
                return data
            now = time.monotonic()
            if now >= deadline:
                raise self._timed_out("for the task to finish", last_status)
            self.sleep(min(self.settings.poll_interval(index), deadline - now), tick=status)
            index += 1

    def _output_host_ok(self, url: str) -> Callable[[str], bool]:
        """Where a redirect of the output download may lead: the output's own host, the API's host,
        or WaveSpeed's domain (wavespeed.ai and its sub-domains), never anywhere else."""
        allowed = {(urlsplit(url).hostname or "").lower(), (urlsplit(self.base_url).hostname or "").lower()}
        return lambda host: host in allowed or host == "wavespeed.ai" or host.endswith(".wavespeed.ai")

    def check_result(self, data: dict) -> list[str]:
        """Turn a terminal `data` into output URLs, or a clear error."""
        status = str(data.get("status") or "").lower()
        error = data.get("error") or None
        if error is not None and not isinstance(error, str):
            error = json.dumps(error)[:300]
        code = data.get("code")
        if status == "failed":
            hint = TASK_CODE_HINTS.get(code) if isinstance(code, int) else None
            if hint is None and isinstance(code, str) and code.isdigit():
                hint = TASK_CODE_HINTS.get(int(code))
            raise self._error("The WaveSpeed task failed" + (f": {hint}" if hint else ""),
                              "Change the prompt or image if the message points at them, else try again later",
                              reason="failed", code=code, server_message=error)
        if status in ("cancelled", "timeout", "deleted"):
            words = {"cancelled": "was cancelled", "timeout": "timed out on WaveSpeed's side",
                     "deleted": "was deleted"}[status]
            raise self._error(f"The WaveSpeed task {words}", "Run the node again to start a new task",
                              reason=status, code=code, server_message=error)
        nsfw = data.get("has_nsfw_contents")
        if (isinstance(nsfw, list) and any(bool(x) for x in nsfw)) or nsfw is True:
            raise self._error("WaveSpeed's safety checker flagged the generated video as NSFW, so it is not used",
                              "Change the prompt or reference image", reason="nsfw", server_message=error)
        outputs = data.get("outputs") or []
        outputs = [outputs] if isinstance(outputs, str) else outputs if isinstance(outputs, list) else []
        outputs = [u for u in outputs if isinstance(u, str) and u.strip()]
        if not outputs:
            raise self._error("The WaveSpeed task completed but returned no video",
                              "Try again; if it keeps happening, report the task id to WaveSpeed",
                              reason="empty_outputs", server_message=error)
        videos = [u for u in outputs if urlsplit(u).path.lower().endswith((".mp4", ".webm", ".mov"))]
        return videos or outputs

    def download(self, url: str, target: Path) -> Path:
        """Stream an output to `target` (never overwritten), WITHOUT the key; retried on 429/5xx."""
        if urlsplit(url).scheme not in ("http", "https"):
            raise self._error(f"WaveSpeed returned an output that is not a web address: {url[:100]!r}",
                              reason="bad_response")
        target = Path(target)
        if target.exists():
            raise self._error(f"{target} already exists; refusing to overwrite it", reason="bad_input")
        target.parent.mkdir(parents=True, exist_ok=True)
        host = urlsplit(url).netloc
        partial = target.parent / f".partial-{uuid.uuid4().hex}{target.suffix}"
        what = "downloading the video"
        self.status("downloading the video")

        def fetch() -> None:
            written = 0
            with open(partial, "wb") as f:

                def write(chunk: bytes) -> None:
                    nonlocal written
                    f.write(chunk)
                    written += len(chunk)

                try:
                    web_fetch.fetch(url, max_bytes=self.settings.max_download_bytes,
                                    total_seconds=self.settings.download_timeout_s,
                                    connect_seconds=self.settings.connect_timeout_s,
                                    stall_seconds=self.settings.read_timeout_s, should_cancel=self.check_cancel,
                                    check_addresses=False, redirect_host_ok=self._output_host_ok(url), write=write,
                                    headers={"Accept": "video/*,*/*;q=0.5"})
                except web_fetch.HTTPStatusError as exc:
                    server_message = summarise_text(exc.body.decode("utf-8", "replace"))
                    if exc.status in (403, 404, 410):
                        raise self._error(
                            f"The output video is no longer available at {host} (the link expired or was removed)",
                            "WaveSpeed keeps outputs for 7 days; run the node again to make a new one",
                            reason="expired_output", http_status=exc.status, server_message=server_message) from None
                    if exc.status == 429 or exc.status >= 500:
                        raise _Transient(f"HTTP {exc.status}", exc.status,
                                         parse_retry_after(exc.headers.get("Retry-After")), server_message) from None
                    raise self._error(f"The output host {host} refused the download", reason="download_failed",
                                      http_status=exc.status, server_message=server_message) from None
                except web_fetch.FetchError as exc:
                    if exc.retry:
                        raise _Transient(str(exc).split(": ", 1)[-1], network=True) from None
                    raise self._error(f"WaveSpeed's output could not be downloaded: {exc}", reason="bad_output") \
                        from None
            if written == 0:
                raise _Transient("the download was empty")

        try:
            self._retrying(what, fetch, host=host, capped=False)
            try:
                os.link(partial, target)  # fails instead of replacing a file that appeared meanwhile
            except FileExistsError:
                raise self._error(f"{target} already exists; refusing to overwrite it", reason="bad_input") from None
        finally:
            try:
                partial.unlink()
            except OSError:
                pass
        return target


def _reported_seed(data: Mapping[str, Any]) -> int | None:
    """The seed the server says it used, if its answer has one (the documented envelope has none)."""
    candidates = [data.get("seed")]
    for key in ("input", "inputs", "params", "parameters"):
        nested = data.get(key)
        if isinstance(nested, dict):
            candidates.append(nested.get("seed"))
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def build_body(values: Mapping[str, Any], image_url: str) -> dict[str, Any]:
    """The submit body, with exactly WaveSpeed's field names and JSON types."""
    return {
        "image": image_url,
        "prompt": str(values["prompt"]),
        "negative_prompt": str(values["negative_prompt"]),
        "size": str(values["size"]),
        "guidance_scale": float(values["guidance_scale"]),
        "flow_shift": float(values["flow_shift"]),
        "seed": int(values["seed"]),
        "enable_safety_checker": bool(values["enable_safety_checker"]),
    }


def run_job(
    params: Mapping[str, Any],
    reference: torch.Tensor,
    output_path: str | os.PathLike,
    *,
    on_status: StatusCallback | None = None,
    should_cancel: CancelCheck | None = None,
    settings: Settings | None = None,
    api_key: str | None = None,
) -> JobResult:
    """Render one video on WaveSpeed and decode it.

    params: schema fields (prompt, negative_prompt, size, guidance_scale, flow_shift, seed,
    enable_safety_checker; others such as subject are ignored), validated here for the remote
    backend before any request. reference: IMAGE [1,H,W,3]. output_path: where the mp4 goes (must
    not exist). on_status(text): progress lines. should_cancel(): raises to stop.
    settings: default Settings.from_env(); api_key: default from WAVESPEED_API_KEY / config file.
    """
    values = schema.validate(params, schema.REMOTE, names=BODY_FIELDS)
    model = schema.remote_model_for_size(values["size"])
    target = Path(output_path)
    if target.exists():
        raise WaveSpeedError(f"{target} already exists; refusing to overwrite it", reason="bad_input")
    png = reference_png(reference)
    settings = settings or Settings.from_env()
    key = api_key or wavespeed_config.get_api_key()
    with WaveSpeedClient(key, settings, on_status=on_status, should_cancel=should_cancel) as client:
        client.check_cancel()
        image_url = client.upload_png(png)
        task_id = client.submit(model, build_body(values, image_url))
        data = client.wait(task_id)
        urls = client.check_result(data)
        path = client.download(urls[0], target)
        client.status("decoding the video")
        from ..media.limits import DEFAULT_MEMORY_GB
        from ..media.video_io import VideoError, read_video

        try:
            # bounded like Load Video's default (a 720p, 129-frame result takes 1.4 GB of the 4 GB)
            frames, fps = read_video(path, should_cancel=should_cancel, max_bytes=int(DEFAULT_MEMORY_GB * 2**30))
        except VideoError as exc:
            raise client._error(f"WaveSpeed's output could not be decoded as a video ({exc})",
                                f"The file was kept at {path}", reason="bad_output") from None
        seed = values["seed"] if values["seed"] != schema.SEED_RANDOM else _reported_seed(data)
        done = f"done, {frames.shape[0]} frames"
        if seed is not None:
            done += f", seed {seed}"
        client.status(done)
        log.info("WaveSpeed: task %s done: %d frames at %s fps, seed %s -> %s", task_id, frames.shape[0], fps,
                 "unknown" if seed is None else seed, path)
        return JobResult(frames=frames, fps=fps or float(schema.FPS), video_path=path, task_id=task_id,
                         model=model, seed=seed)


__all__ = ["Settings", "WaveSpeedClient", "WaveSpeedError", "JobResult", "run_job", "build_body",
           "parse_retry_after", "origin", "reference_png", "TERMINAL_STATUSES"]
