"""A fake WaveSpeed API for tests: real HTTP on 127.0.0.1, random ports, switches for faults.

Two listening servers share one state:
- "api" at http://127.0.0.1:<port>: /api/v3 routes with the contract's auth, validation and
  envelopes (docs/wavespeed-api.md);
- "cdn" at http://localhost:<other port>: uploaded media, presigned PUT uploads and the output mp4.
  A different host name AND port, so a client that leaks the API key to it is caught.
Every request is recorded with its headers so tests can assert where the key went.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

MODELS = {
    "wavespeed-ai/hunyuan-custom-ref2v-720p": ("1280*720", "720*1280"),
    "wavespeed-ai/hunyuan-custom-ref2v-480p": ("832*480", "480*832"),
}
OPTIONAL_FLAGS = ("enable_sync_mode", "enable_base64_output")
HTML_502 = (502, "text/html", "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>")


@dataclass
class Recorded:
    server: str  # "api" or "cdn"
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float = 0.0  # time.monotonic() when it arrived

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Faults:
    """Switches. Lists are consumed one entry per matching request."""

    # uploads
    binary_upload: bool = True  # False: the one-step route answers 404 (two-step only)
    upload_failures: list = field(default_factory=list)  # statuses (or (status, ctype, body)) for the first uploads
    upload_redirects: list = field(default_factory=list)  # Location headers (307) for the first presigned PUTs
    # submit
    submit_rate_limited: int = 0  # the first N submits answer 429, creating nothing
    retry_after: str | None = "0.05"
    submit_failures: list = field(default_factory=list)  # (status, ctype, body): answer instead, creating nothing
    submit_error_body: dict | None = None  # answer HTTP 200 with this body, creating nothing
    submit_drop_connection: bool = False  # create the task, then close the socket without answering
    submit_delay_s: float = 0.0  # create the task, then wait this long before answering
    # polls
    poll_failures: list = field(default_factory=list)  # statuses / (status, ctype, body) / ("drop",) / ("body", dict)
    poll_delays: list = field(default_factory=list)  # seconds to stall each of the first polls
    statuses: list = field(default_factory=lambda: ["created", "processing", "completed"])  # per poll, last repeats
    task_error: str = "Generation failed: out of memory"
    task_code: int | None = 1403
    outputs_empty: bool = False
    nsfw: bool = False
    report_seed: int | None = None  # put data.seed into the answers (the documented envelope has none)
    # output CDN
    output_expired: bool = False
    download_failures: list = field(default_factory=list)
    output_redirects: list = field(default_factory=list)  # Location headers for the first output GETs
    output_trickle_s: float = 0.0  # > 0: send the output one byte per this many seconds


@dataclass
class Task:
    id: str
    model: str
    body: dict
    created_at: float
    polls: int = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive sockets must not make stop() wait


class FakeWaveSpeed:
    def __init__(self, api_key: str = "ws-test-key-0123456789abcdef", video: bytes = b"", faults: Faults | None = None):
        self.api_key = api_key
        self.video = video
        self.faults = faults or Faults()
        self.requests: list[Recorded] = []
        self.tasks: dict[str, Task] = {}
        self.media: dict[str, bytes] = {}
        self.pending_puts: dict[str, dict] = {}
        self.lock = threading.Lock()
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "FakeWaveSpeed":
        for name in ("api", "cdn"):
            server = _Server(("127.0.0.1", 0), _make_handler(self, name))
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        self.base_url = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_url = f"http://localhost:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> "FakeWaveSpeed":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- what tests look at ------------------------------------------------------------------
    def calls(self, server: str | None = None, method: str | None = None, path_contains: str = "") -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if (server is None or r.server == server)
                    and (method is None or r.method == method) and path_contains in r.path]

    def submits(self) -> list[Recorded]:
        return [r for r in self.calls("api", "POST") if "/media/" not in r.path]

    def polls(self) -> list[Recorded]:
        return self.calls("api", "GET", "/predictions/")

    # -- envelopes ---------------------------------------------------------------------------
    def envelope(self, task: Task, status: str) -> dict:
        f = self.faults
        data: dict[str, Any] = {
            "id": task.id,
            "model": task.model,
            "outputs": [],
            "urls": {"get": f"{self.base_url}/api/v3/predictions/{task.id}/result"},
            "has_nsfw_contents": [],
            "status": status,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(task.created_at)),
            "error": "",
            "timings": {"inference": 0},
        }
        if status == "completed":
            data["outputs"] = [] if f.outputs_empty else [f"{self.cdn_url}/outputs/{task.id}.mp4"]
            data["has_nsfw_contents"] = [f.nsfw] * max(len(data["outputs"]), 1 if f.nsfw else 0)
            data["timings"] = {"inference": 1234}
        if status == "failed":
            data["error"] = f.task_error
            data["code"] = f.task_code
        if f.report_seed is not None:
            data["seed"] = f.report_seed
        return {"code": 200, "message": "success", "data": data}


def validate_submit(model: str, body: Any, known_media: set[str]) -> str | None:
    """The contract's parameter checks; the first problem as WaveSpeed-style text, else None."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    allowed = {"image", "prompt", "negative_prompt", "size", "guidance_scale", "flow_shift", "seed",
               "enable_safety_checker", *OPTIONAL_FLAGS}
    unknown = sorted(set(body) - allowed)
    if unknown:
        return f"unknown parameter(s): {', '.join(unknown)}"
    image = body.get("image")
    if not isinstance(image, str) or urlsplit(image).scheme not in ("http", "https"):
        return "image: must be a URL"
    if image not in known_media:
        return "image: URL is not reachable"
    if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
        return "prompt: is required"
    if "negative_prompt" in body and not isinstance(body["negative_prompt"], str):
        return "negative_prompt: must be a string"
    if "size" in body and body["size"] not in MODELS[model]:
        return f"size: must be one of {', '.join(MODELS[model])}"
    for name, lo, hi in (("guidance_scale", 1.0, 10.0), ("flow_shift", 1.0, 20.0)):
        if name in body:
            v = body[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                return f"{name}: must be a number from {lo} to {hi}"
    if "seed" in body:
        v = body["seed"]
        if isinstance(v, bool) or not isinstance(v, int) or not -1 <= v <= 9_999_999_999:
            return "seed: must be an integer from -1 to 9999999999"
    for name in ("enable_safety_checker", *OPTIONAL_FLAGS):
        if name in body and not isinstance(body[name], bool):
            return f"{name}: must be a boolean"
    return None


def _make_handler(fake: FakeWaveSpeed, server_name: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        # -- io helpers ---------------------------------------------------------------------
        def _read_body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, body: bytes, ctype: str = "application/json", headers: dict | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _json(self, status: int, obj: Any, headers: dict | None = None) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json", headers)

        def _error(self, status: int, message: str, headers: dict | None = None) -> None:
            self._json(status, {"code": status, "message": message, "data": None}, headers)

        def _fault(self, fault: Any) -> None:
            if isinstance(fault, int):
                headers = {"Retry-After": fake.faults.retry_after} if fault == 429 and fake.faults.retry_after else None
                self._error(fault, "Too Many Requests" if fault == 429 else "Internal Server Error", headers)
            elif fault[0] == "drop":
                self._drop()
            elif fault[0] == "body":
                self._json(200, fault[1])
            else:
                status, ctype, body = fault
                self._send(status, body.encode() if isinstance(body, str) else body, ctype)

        def _drop(self) -> None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _handle(self, method: str) -> None:
            body = self._read_body()
            with fake.lock:
                fake.requests.append(Recorded(server_name, method, self.path,
                                              {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()))
            route = urlsplit(self.path).path
            try:
                if server_name == "api":
                    self._api(method, route, body)
                else:
                    self._cdn(method, route, body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PUT(self) -> None:
            self._handle("PUT")

        # -- the API ---------------------------------------------------------------------------
        def _api(self, method: str, route: str, body: bytes) -> None:
            f = fake.faults
            if not route.startswith("/api/v3/"):
                return self._error(404, "not found")
            if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                return self._error(401, "Unauthorized: invalid or missing API key")
            rest = route[len("/api/v3/"):]
            if method == "GET" and rest == "balance":
                return self._json(200, {"code": 200, "message": "success", "data": {"balance": 12.5}})
            if method == "POST" and rest == "media/upload/binary":
                if not f.binary_upload:
                    return self._error(404, "not found")
                if f.upload_failures:
                    return self._fault(f.upload_failures.pop(0))
                return self._upload_binary(body)
            if method == "POST" and rest == "media/uploads":
                if f.upload_failures:
                    return self._fault(f.upload_failures.pop(0))
                return self._upload_request(body)
            if method == "GET" and rest.startswith("predictions/") and rest.endswith("/result"):
                return self._poll(rest[len("predictions/"):-len("/result")])
            if method == "POST" and rest in MODELS:
                return self._submit(rest, body)
            return self._error(404, f"no route {method} {route}")

        def _upload_binary(self, body: bytes) -> None:
            ctype = self.headers.get("Content-Type", "")
            if not ctype.startswith("multipart/form-data"):
                return self._error(400, "expected multipart/form-data")
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
            files = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file"]
            if len(files) != 1:
                return self._error(400, "multipart field 'file' is required")
            data = files[0].get_payload(decode=True) or b""
            if not data.startswith(b"\x89PNG\r\n\x1a\n"):
                return self._error(400, "file is not a PNG image")
            media_id = uuid.uuid4().hex
            url = f"{fake.cdn_url}/media/{media_id}.png"
            with fake.lock:
                fake.media[url] = data
            self._json(200, {"code": 200, "message": "success", "data": {
                "type": "image", "download_url": url, "filename": files[0].get_filename(), "size": len(data)}})

        def _upload_request(self, body: bytes) -> None:
            try:
                req = json.loads(body)
            except ValueError:
                return self._error(400, "body must be JSON")
            if not isinstance(req, dict) or not isinstance(req.get("size"), int) or not req.get("filename") \
                    or not req.get("content_type"):
                return self._error(400, "filename, size and content_type are required")
            media_id = uuid.uuid4().hex
            url = f"{fake.cdn_url}/media/{media_id}.png"
            put_url = f"{fake.cdn_url}/upload/{media_id}?X-Amz-Signature=fake"
            headers = {"Content-Type": req["content_type"], "x-amz-meta-origin": "fake"}
            with fake.lock:
                fake.pending_puts[media_id] = {"url": url, "size": req["size"], "headers": headers}
            self._json(200, {"code": 200, "message": "success", "data": {
                "download_url": url, "upload": {"method": "PUT", "url": put_url, "headers": headers}}})

        def _submit(self, model: str, body: bytes) -> None:
            f = fake.faults
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
                return self._error(400, "Content-Type must be application/json")
            if f.submit_rate_limited > 0:
                f.submit_rate_limited -= 1
                return self._fault(429)
            if f.submit_failures:
                return self._fault(f.submit_failures.pop(0))
            if f.submit_error_body is not None:
                return self._json(200, f.submit_error_body)
            try:
                req = json.loads(body)
            except ValueError:
                return self._error(400, "body must be JSON")
            with fake.lock:
                known = set(fake.media)
            problem = validate_submit(model, req, known)
            if problem:
                return self._error(400, problem)
            task = Task(uuid.uuid4().hex, model, req, time.time())
            with fake.lock:
                fake.tasks[task.id] = task
            if f.submit_drop_connection:
                return self._drop()
            if f.submit_delay_s:
                time.sleep(f.submit_delay_s)
            self._json(200, fake.envelope(task, "created"))

        def _poll(self, task_id: str) -> None:
            f = fake.faults
            with fake.lock:
                task = fake.tasks.get(task_id)
            if task is None:
                return self._error(404, "prediction not found")
            if f.poll_delays:
                time.sleep(f.poll_delays.pop(0))
            if f.poll_failures:
                return self._fault(f.poll_failures.pop(0))
            status = f.statuses[min(task.polls, len(f.statuses) - 1)]
            task.polls += 1
            self._json(200, fake.envelope(task, status))

        # -- the CDN ---------------------------------------------------------------------------
        def _redirect(self, status: int, location: str) -> None:
            self.send_response(status)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _cdn(self, method: str, route: str, body: bytes) -> None:
            f = fake.faults
            if method == "PUT" and route.startswith("/upload/"):
                if f.upload_redirects:
                    return self._redirect(307, f.upload_redirects.pop(0))
                media_id = route[len("/upload/"):]
                with fake.lock:
                    pending = fake.pending_puts.pop(media_id, None)
                if pending is None:
                    return self._send(403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml")
                for k, v in pending["headers"].items():
                    if self.headers.get(k) != v:
                        return self._send(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>", "application/xml")
                if len(body) != pending["size"]:
                    return self._send(400, b"<Error><Code>IncompleteBody</Code></Error>", "application/xml")
                with fake.lock:
                    fake.media[pending["url"]] = body
                return self._send(200, b"", "text/plain")
            if method == "GET" and route.startswith("/media/"):
                with fake.lock:
                    data = fake.media.get(f"{fake.cdn_url}{route}")
                return self._send(200, data, "image/png") if data is not None else self._send(404, b"", "text/plain")
            if method == "GET" and route.startswith("/outputs/"):
                if f.output_expired:
                    return self._send(403, b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
                                           b"<Message>Request has expired</Message></Error>", "application/xml")
                if f.download_failures:
                    return self._fault(f.download_failures.pop(0))
                if f.output_redirects:
                    return self._redirect(302, f.output_redirects.pop(0))
                if f.output_trickle_s:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(fake.video)))
                    self.end_headers()
                    try:
                        for i in range(min(len(fake.video), 100)):
                            self.wfile.write(fake.video[i:i + 1])
                            self.wfile.flush()
                            time.sleep(f.output_trickle_s)
                    except OSError:
                        pass
                    return None
                task_id = route[len("/outputs/"):].removesuffix(".mp4")
                if task_id not in fake.tasks:
                    return self._send(404, b"", "text/plain")
                return self._send(200, fake.video, "video/mp4")
            self._send(404, b"not found", "text/plain")

    return Handler


def use_in_env(server: FakeWaveSpeed, monkeypatch: Any, key: str, config_file: Any = None) -> None:
    """Point the WaveSpeed client at `server` for one test: its key, fast polls, no timeout override
    and, when given, `config_file` (a path that does not exist) instead of the user's config file."""
    monkeypatch.setenv("WAVESPEED_API_KEY", key)
    monkeypatch.setenv("WAVESPEED_BASE_URL", server.base_url)
    monkeypatch.setenv("WAVESPEED_POLL_INTERVAL_S", "0.02")
    if config_file is not None:
        monkeypatch.setenv("WAVESPEED_CONFIG_FILE", str(config_file))
    monkeypatch.delenv("WAVESPEED_TIMEOUT_S", raising=False)
