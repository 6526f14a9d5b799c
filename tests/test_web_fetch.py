"""URLs reach only public addresses, and a download stops on Cancel or its deadline whatever the
server's pace. The only server here is on 127.0.0.1: the refusal of loopback is tested directly,
and what a public host would get is tested with an injected resolver (a made-up public name)
while the connection is pinned to the local test server."""

from __future__ import annotations

import ipaddress
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest
from PIL import Image

from hunyuan_custom.nodes import comfy
from hunyuan_custom.nodes.load_image import HunyuanCustomLoadImage
from hunyuan_custom.nodes.validation import NodeInputProblem
from hunyuan_custom.pipelines.media import web_fetch
from hunyuan_custom.pipelines.media.image_io import ImageLoadError, load_image_url
from hunyuan_custom.pipelines.media.web_fetch import FetchError, fetch

PUBLIC = "93.184.216.34"  # a public address (never contacted: connections are pinned to 127.0.0.1)
PNG = bytearray()


def _png() -> bytes:
    if not PNG:
        import io

        buf = io.BytesIO()
        Image.new("RGB", (3, 2), (0, 255, 0)).save(buf, "PNG")
        PNG.extend(buf.getvalue())
    return bytes(PNG)


class _Handler(BaseHTTPRequestHandler):
    hosts: list = []
    port = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).hosts.append(self.headers.get("Host"))
        try:
            if self.path == "/ok.png":
                body = _png()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path.startswith("/to?"):
                self.send_response(302)
                self.send_header("Location", unquote(self.path.split("?", 1)[1]))
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/trickle":  # one byte every 0.3 s, for up to 30 s
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.3)
            elif self.path == "/silent":  # headers, then nothing
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.flush()
                time.sleep(5)
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server():
    _Handler.hosts = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    _Handler.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def pinned(monkeypatch):
    """Connections go to 127.0.0.1 whatever address was checked, so a made-up public name can be
    'fetched' from the local test server."""
    real_pool = web_fetch._pool
    monkeypatch.setattr(web_fetch, "_pool", lambda url, address, c, s: real_pool(url, "127.0.0.1", c, s))
    monkeypatch.delenv(web_fetch.ALLOW_PRIVATE_ENV, raising=False)


def resolver(table: dict[str, list[str]]):
    calls = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return table[host]

    resolve.calls = calls
    return resolve


LOOPBACK_SPELLINGS = ["localhost", "LocalHost", "localhost.", "app.localhost", "127.0.0.1", "127.1", "127.0.1",
                      "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1", "017700000001", "127.000.000.001",
                      "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:0:0:1]", "[::1%25eth0]",
                      "[2002:7f00:1::]", "[64:ff9b::127.0.0.1]", "[::127.0.0.1]"]
OTHER_NON_PUBLIC = ["169.254.169.254", "10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1", "100.64.0.1",
                    "0.0.0.0", "0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "[fd00::1]",
                    "[fe80::1]", "[ff02::1]", "[::]", "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]", "198.18.0.1",
                    "0xa9fea9fe", "2852039166"]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + OTHER_NON_PUBLIC)
def test_non_public_hosts_are_refused_before_any_connection(host, monkeypatch):
    monkeypatch.delenv(web_fetch.ALLOW_PRIVATE_ENV, raising=False)
    monkeypatch.setattr(web_fetch, "_pool", lambda *a: pytest.fail("a connection was attempted"))
    url = f"http://{host}:8080/a.png"
    with pytest.raises(FetchError, match=web_fetch.ALLOW_PRIVATE_ENV):
        web_fetch.check_url_syntax(url)  # what the node checks at queue time, without DNS
    with pytest.raises(FetchError, match=web_fetch.ALLOW_PRIVATE_ENV):
        fetch(url, max_bytes=1000, total_seconds=5)


def test_every_spelling_means_what_the_resolver_would_make_of_it():
    assert web_fetch.literal_address("0177.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert web_fetch.literal_address("2130706433") == ipaddress.ip_address("127.0.0.1")
    assert web_fetch.literal_address("0x7f000001") == ipaddress.ip_address("127.0.0.1")
    assert web_fetch.literal_address("[::ffff:127.0.0.1]") == ipaddress.ip_address("::ffff:127.0.0.1")
    assert web_fetch.literal_address("example.com") is None
    assert web_fetch.non_public(PUBLIC) is None and web_fetch.non_public("2606:4700::1111") is None


def test_public_hosts_pass_the_queue_time_check(monkeypatch):
    monkeypatch.delenv(web_fetch.ALLOW_PRIVATE_ENV, raising=False)
    for url in (f"http://{PUBLIC}/a.png", "https://example.com/a.png", "https://[2606:4700::1111]/a.png"):
        assert web_fetch.check_url_syntax(url) == url


@pytest.mark.parametrize("answers", [["127.0.0.1"], ["::1"], [PUBLIC, "10.1.2.3"], ["169.254.169.254"]])
def test_a_name_that_resolves_to_a_non_public_address_is_refused(answers, monkeypatch):
    monkeypatch.delenv(web_fetch.ALLOW_PRIVATE_ENV, raising=False)
    monkeypatch.setattr(web_fetch, "_pool", lambda *a: pytest.fail("a connection was attempted"))
    with pytest.raises(FetchError, match="rebind.example resolves to a .* address.*HYC_ALLOW_PRIVATE_URLS=1") as info:
        fetch("http://rebind.example/a.png", max_bytes=1000, total_seconds=5,
              resolver=resolver({"rebind.example": answers}))
    assert "127.0.0.1" not in str(info.value) and "10.1.2.3" not in str(info.value)  # resolution not revealed


def test_a_public_name_is_fetched_from_the_address_checked_once_with_its_own_host_header(server, pinned):
    resolve = resolver({"public.example": [PUBLIC]})
    body = fetch(f"http://public.example:{server}/ok.png", max_bytes=10_000, total_seconds=5, resolver=resolve)
    assert body == _png()
    assert resolve.calls == ["public.example"]  # resolved once: the connection uses that answer
    assert _Handler.hosts == [f"public.example:{server}"]


def test_the_connection_goes_to_the_resolved_address(server, monkeypatch):
    """With HYC_ALLOW_PRIVATE_URLS=1 the local server is allowed; a name no DNS knows reaches it
    only because the connection is made to the address our resolver gave."""
    monkeypatch.setenv(web_fetch.ALLOW_PRIVATE_ENV, "1")
    body = fetch(f"http://no-such-name.invalid:{server}/ok.png", max_bytes=10_000, total_seconds=5,
                 resolver=resolver({"no-such-name.invalid": ["127.0.0.1"]}))
    assert body == _png() and _Handler.hosts == [f"no-such-name.invalid:{server}"]
    assert fetch(f"http://127.0.0.1:{server}/ok.png", max_bytes=10_000, total_seconds=5) == _png()


@pytest.mark.parametrize("target", ["http://127.0.0.1:{port}/ok.png", "http://2130706433:{port}/ok.png",
                                    "http://[::1]:{port}/ok.png", "http://rebind.example:{port}/ok.png",
                                    "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd"])
def test_every_redirect_hop_is_checked_again(server, pinned, target):
    resolve = resolver({"public.example": [PUBLIC], "rebind.example": ["127.0.0.1"]})
    hop = target.format(port=server)
    with pytest.raises(FetchError, match="HYC_ALLOW_PRIVATE_URLS|only http"):
        fetch(f"http://public.example:{server}/to?{hop}", max_bytes=10_000, total_seconds=5, resolver=resolve)
    assert len(_Handler.hosts) == 1  # the redirect itself, nothing after it


def test_a_redirect_to_another_public_host_is_followed(server, pinned):
    resolve = resolver({"public.example": [PUBLIC], "cdn.example": ["8.8.8.8"]})
    body = fetch(f"http://public.example:{server}/to?http://cdn.example:{server}/ok.png", max_bytes=10_000,
                 total_seconds=5, resolver=resolve)
    assert body == _png() and _Handler.hosts == [f"public.example:{server}", f"cdn.example:{server}"]
    with pytest.raises(FetchError, match="another host"):
        fetch(f"http://public.example:{server}/to?http://cdn.example:{server}/ok.png", max_bytes=10_000,
              total_seconds=5, resolver=resolve, redirect_host_ok=lambda host: host == "public.example")


def test_https_speaks_tls_to_the_pinned_address(server, pinned):
    """An https URL pinned to the (plain http) test server fails in TLS, as it must, in plain words."""
    with pytest.raises(FetchError, match="secure .*TLS|could not"):
        fetch(f"https://public.example:{server}/ok.png", max_bytes=10_000, total_seconds=5,
              resolver=resolver({"public.example": [PUBLIC]}))


def _cancel_after(seconds: float):
    start = time.monotonic()

    class Cancelled(Exception):
        pass

    def should_cancel() -> None:
        if time.monotonic() - start > seconds:
            raise Cancelled()

    return should_cancel, Cancelled


def test_cancel_stops_a_trickling_download_at_once(server, pinned):
    should_cancel, cancelled = _cancel_after(0.5)
    start = time.monotonic()
    with pytest.raises(cancelled):
        fetch(f"http://public.example:{server}/trickle", max_bytes=10_000, total_seconds=60, stall_seconds=30,
              should_cancel=should_cancel, resolver=resolver({"public.example": [PUBLIC]}))
    assert time.monotonic() - start < 1.5


def test_the_deadline_holds_against_a_trickle_and_a_silent_server(server, pinned):
    for path, pattern in (("/trickle", "longer than 1 s"), ("/silent", "longer than 1 s")):
        start = time.monotonic()
        with pytest.raises(FetchError, match=pattern):
            fetch(f"http://public.example:{server}{path}", max_bytes=10_000, total_seconds=1, stall_seconds=30,
                  resolver=resolver({"public.example": [PUBLIC]}))
        assert time.monotonic() - start < 2.0
    with pytest.raises(FetchError, match="sent nothing for 0.3 s"):
        fetch(f"http://public.example:{server}/silent", max_bytes=10_000, total_seconds=10, stall_seconds=0.3,
              resolver=resolver({"public.example": [PUBLIC]}))


def test_the_node_refuses_loopback_at_queue_time_and_at_run_time(server, monkeypatch):
    monkeypatch.delenv(web_fetch.ALLOW_PRIVATE_ENV, raising=False)
    for url in (f"http://127.0.0.1:{server}/ok.png", f"http://localhost:{server}/ok.png", "http://[::1]/a.png"):
        with pytest.raises(NodeInputProblem, match="^url: .*HYC_ALLOW_PRIVATE_URLS"):
            HunyuanCustomLoadImage.VALIDATE_INPUTS("x.png", url=url)
        with pytest.raises(ImageLoadError, match="HYC_ALLOW_PRIVATE_URLS"):
            HunyuanCustomLoadImage().load("x.png", url=url)
    assert _Handler.hosts == []
    monkeypatch.setenv(web_fetch.ALLOW_PRIVATE_ENV, "1")  # the owner's LAN setting lets it through
    image, _ = HunyuanCustomLoadImage().load("x.png", url=f"http://127.0.0.1:{server}/ok.png")
    assert image.shape == (1, 2, 3, 3)


def test_cancel_in_comfyui_stops_the_nodes_download(server, pinned, monkeypatch):
    should_cancel, cancelled = _cancel_after(0.5)
    monkeypatch.setattr(comfy, "throw_if_cancelled", should_cancel)
    monkeypatch.setattr(web_fetch, "system_resolver", resolver({"public.example": [PUBLIC]}))
    start = time.monotonic()
    with pytest.raises(cancelled):
        HunyuanCustomLoadImage().load("x.png", url=f"http://public.example:{server}/trickle")
    assert time.monotonic() - start < 2.0


def test_load_image_url_passes_the_checks_on(server, pinned):
    loaded = load_image_url(f"http://public.example:{server}/ok.png", resolver=resolver({"public.example": [PUBLIC]}))
    assert loaded.image.shape == (1, 2, 3, 3)
