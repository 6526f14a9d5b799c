"""Fetch an http(s) URL the way a server that strangers can reach must: only public addresses,
every redirect hop checked again, the connection made to the very address that was checked, a
byte cap, an overall deadline and Cancel that hold whatever the server's pace.

Why our own loop over urllib3 rather than `requests.get`:
- requests resolves the host name again when it connects, so a DNS answer could change between
  our check and the connection (DNS rebinding). Here the host is resolved once (`resolver`), every
  address it gave is checked, and urllib3's connection pool is opened on the checked IP address.
  The request still carries the URL's host name where a server looks for it: the Host header and,
  for https, the TLS server name (SNI) and the certificate's host name (urllib3's `server_hostname`
  and `assert_hostname`), so servers and certificates see what `requests` would have sent. A
  requests transport adapter could only do the same underneath, with more code.
- Redirects are followed here, each new URL checked like the first (scheme, credentials, address,
  and an optional host rule), and no cookie or credential is ever sent.
- The body is read in a worker thread while the calling thread waits in short steps and checks the
  deadline and Cancel each time; to stop, it shuts the socket, which ends a blocked read at once.
  A small socket timeout cannot do this: urllib3 and http.client give up the stream after one read
  timeout, so a small one would fail slow but honest servers and a large one would make Cancel wait
  for it. The socket timeout here is only the longest pause allowed between two packets.
- No proxy from the environment is used: a proxy would resolve the name itself, out of our check.
"""

from __future__ import annotations

import ipaddress
import os
import queue
import socket
import threading
import time
from typing import Callable, Iterable
from urllib.parse import urljoin, urlsplit, urlunsplit

ALLOW_PRIVATE_ENV = "HYC_ALLOW_PRIVATE_URLS"
REDIRECTS = (301, 302, 303, 307, 308)
WAIT_STEP_S = 0.1  # how often the deadline and Cancel are looked at while a read is blocked
CHUNK = 64 * 1024
ERROR_BODY_BYTES = 4096  # how much of an error answer is read, for its words

Resolver = Callable[[str, int], Iterable[str]]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class FetchError(ValueError):
    """A URL that may not be fetched, or a download that failed; the message is for people.
    `retry` says whether trying again may help (network trouble, not a refusal or a cap)."""

    def __init__(self, message: str, retry: bool = False):
        super().__init__(message)
        self.retry = retry


class HTTPStatusError(FetchError):
    """The server answered with an error status; `body` holds the start of its answer (4 KiB)."""

    def __init__(self, message: str, status: int, headers: dict, body: bytes):
        super().__init__(message, retry=status == 429 or status >= 500)
        self.status, self.headers, self.body = status, headers, body


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (the ones a connection could use)."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def private_allowed() -> bool:
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def literal_address(host: str) -> "ipaddress.IPv4Address | ipaddress.IPv6Address | None":
    """The address a host written as a number stands for, in every spelling a resolver accepts:
    '127.1', '2130706433', '0x7f000001', '0177.0.0.1' (inet_aton's forms) and IPv6 ('::1',
    '::ffff:127.0.0.1', with a zone '%eth0'); None for a name."""
    text = host.strip().strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except (OSError, ValueError):
        return None


def non_public(address: "str | ipaddress.IPv4Address | ipaddress.IPv6Address") -> str | None:
    """Why an address is not a public internet address ('loopback', 'private', ...), or None."""
    ip = ipaddress.ip_address(str(address).split("%", 1)[0]) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            reason = non_public(embedded)
            if reason:
                return reason
    for reason, flag in (("loopback", ip.is_loopback), ("unspecified", ip.is_unspecified),
                         ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                         ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if flag:
            return reason
    return None if ip.is_global else "non-public"


def _refusal(shown: str, host: str, reason: str, literal: bool) -> FetchError:
    where = f"{host} is a {reason} address" if literal else f"{host} resolves to a {reason} address"
    return FetchError(f"{shown}: {where}; only public internet addresses can be loaded. If this ComfyUI is on "
                      f"your own network and you trust everyone who can reach it, start it with the environment "
                      f"variable {ALLOW_PRIVATE_ENV}=1 to allow local addresses.")


def check_url_syntax(url: str) -> str:
    """The URL, stripped, if it is an http(s) URL with a host and no credentials; also refuses a
    host written as a non-public address or named 'localhost' (no DNS lookup: the full check,
    `checked_addresses`, runs when the URL is fetched)."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        shown = parts.scheme or "none"
        raise FetchError(f"{shorten(text)}: only http:// and https:// URLs can be loaded (scheme: {shown}).")
    try:
        parts.port
    except ValueError:
        raise FetchError(f"{shorten(text)}: the URL's port is not a number from 0 to 65535.") from None
    if not parts.hostname:
        raise FetchError(f"{shorten(text)}: the URL has no host name.")
    if parts.username is not None or parts.password is not None:
        raise FetchError(f"{safe_url(text)}: URLs with a user name or password are not supported "
                         "(no credentials are sent); use a public link.")
    if not private_allowed():
        host = parts.hostname.rstrip(".")
        literal = literal_address(host)
        reason = non_public(literal) if literal is not None else (
            "loopback" if host == "localhost" or host.endswith(".localhost") else None)
        if reason:
            raise _refusal(safe_url(text), host, reason, literal=True)
    return text


def checked_addresses(url: str, resolver: Resolver | None = None) -> list[str]:
    """The addresses `url`'s host resolves to, all of them public (or HYC_ALLOW_PRIVATE_URLS=1);
    FetchError otherwise. A name with several addresses is refused when any one is not public."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    literal = literal_address(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = list(dict.fromkeys((resolver or system_resolver)(host, port)))
        except (OSError, UnicodeError):
            addresses = []
        if not addresses:
            raise FetchError(f"{safe_url(url)}: the host name {host!r} could not be resolved; check the address.")
    if not private_allowed():
        for address in addresses:
            reason = non_public(address)
            if reason:
                raise _refusal(safe_url(url), host, reason, literal=literal is not None)
    return addresses


def safe_url(url: str) -> str:
    """The URL without user info (never echo a password into an error message or log)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        if parts.port:
            host += f":{parts.port}"
    except ValueError:
        pass
    return shorten(urlunsplit((parts.scheme, host, parts.path, parts.query, "")))


def shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _pool(url: str, address: str, connect_s: float, stall_s: float):
    """A urllib3 pool that connects to `address` but speaks to the URL's host name (Host, SNI,
    certificate)."""
    import urllib3

    parts = urlsplit(url)
    timeout = urllib3.Timeout(connect=connect_s, read=stall_s)
    if parts.scheme.lower() == "https":
        try:
            import certifi  # requests' CA bundle, so https behaves as it did with requests

            ca_certs = certifi.where()
        except ImportError:
            ca_certs = None
        return urllib3.HTTPSConnectionPool(address, parts.port or 443, timeout=timeout, maxsize=1, retries=False,
                                           cert_reqs="CERT_REQUIRED", ca_certs=ca_certs,
                                           server_hostname=parts.hostname, assert_hostname=parts.hostname)
    return urllib3.HTTPConnectionPool(address, parts.port or 80, timeout=timeout, maxsize=1, retries=False)


def _host_header(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return host + (f":{parts.port}" if parts.port else "")


def _stop(response) -> None:
    """End a read blocked in another thread: shut the connection's socket."""
    try:
        response.shutdown()  # urllib3 >= 2.3
        return
    except AttributeError:
        pass
    except Exception:
        return
    sock = getattr(getattr(response, "_connection", None), "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def fetch(url: str, *, max_bytes: int, total_seconds: float, connect_seconds: float = 5.0,
          stall_seconds: float = 30.0, should_cancel: Callable[[], None] | None = None,
          resolver: Resolver | None = None, redirect_host_ok: Callable[[str], bool] | None = None,
          check_addresses: bool = True, write: Callable[[bytes], None] | None = None,
          headers: dict[str, str] | None = None, max_redirects: int = 5) -> bytes:
    """GET `url` into memory (or through `write`, then b"" is returned).

    `should_cancel` raises to stop (ComfyUI's Cancel); it is called at least every 0.1 s. The
    download ends with FetchError past `total_seconds` overall, after `stall_seconds` without a
    byte, or past `max_bytes`. `check_addresses=False` skips the public-address rule (for hosts
    the server's owner configured, e.g. the WaveSpeed API's outputs); `redirect_host_ok` limits
    which hosts a redirect may lead to. An error status (>= 400) raises HTTPStatusError, which
    carries the start of the server's answer for the caller's own words."""
    deadline = time.monotonic() + total_seconds
    url = check_url_syntax(url) if check_addresses else url.strip()
    for _ in range(max_redirects + 1):
        shown = safe_url(url)
        address = checked_addresses(url, resolver)[0] if check_addresses else \
            (str(literal_address(urlsplit(url).hostname or "") or "") or urlsplit(url).hostname or "")
        body, location = _get(url, address, shown, deadline, total_seconds, connect_seconds, stall_seconds,
                              should_cancel, max_bytes, write, headers)
        if location is None:
            return body
        url = urljoin(url, location)
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise FetchError(f"{shown}: redirected to {shorten(url)!r}; only http:// and https:// URLs can be loaded.")
        if check_addresses:
            url = check_url_syntax(url)
        if redirect_host_ok is not None and not redirect_host_ok((urlsplit(url).hostname or "").lower()):
            raise FetchError(f"{shown}: redirected to another host ({urlsplit(url).hostname}), which is not allowed.")
    raise FetchError(f"{safe_url(url)}: too many redirects (more than {max_redirects}).")


def _get(url, address, shown, deadline, total_seconds, connect_seconds, stall_seconds, should_cancel, max_bytes,
         write, headers):
    """One request: (body, None), or (b"", location) for a redirect."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent = {"Host": _host_header(url), "User-Agent": "ComfyUI-HunyuanCustom", "Accept": "*/*",
            "Accept-Encoding": "identity"}
    sent.update(headers or {})
    left = deadline - time.monotonic()
    pool = _pool(url, address, min(connect_seconds, max(left, 0.1)), stall_seconds)
    answers: queue.Queue = queue.Queue(maxsize=64)  # the worker reads at most this far ahead
    holder: dict = {}

    def put(item: tuple) -> None:
        while not holder.get("stop"):
            try:
                answers.put(item, timeout=WAIT_STEP_S)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            response = pool.urlopen("GET", path, headers=sent, redirect=False, retries=False, preload_content=False,
                                    assert_same_host=False, decode_content=False)
            holder["response"] = response
            put(("head", response))
            if holder.get("stop"):
                return
            for chunk in response.stream(CHUNK, decode_content=False):
                put(("data", chunk))
                if holder.get("stop"):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the waiting thread
            put(("error", exc))

    worker = threading.Thread(target=work, name="hyc-fetch", daemon=True)
    worker.start()
    chunks: list[bytes] = []
    total = 0
    failed: tuple | None = None  # (status, headers) of an error answer, whose start is read for its words
    try:
        while True:
            if should_cancel is not None:
                should_cancel()
            if time.monotonic() > deadline:
                raise FetchError(f"{shown}: the download took longer than {total_seconds:g} s; try again, or save "
                                 "the file and load it from disk.")
            try:
                kind, value = answers.get(timeout=WAIT_STEP_S)
            except queue.Empty:
                continue
            if kind == "error":
                raise _network_error(value, shown, connect_seconds, stall_seconds)
            if kind == "head":
                status = value.status
                if status in REDIRECTS:
                    return b"", value.headers.get("Location") or ""
                if status >= 400:
                    failed = (status, dict(value.headers))
                    continue
                declared = str(value.headers.get("Content-Length", ""))
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError(f"{shown}: the file is too large ({_mb(int(declared))}, the limit is "
                                     f"{_mb(max_bytes)}).")
                continue
            if failed is not None:
                if kind == "data":
                    chunks.append(value)
                    total += len(value)
                if kind == "end" or total >= ERROR_BODY_BYTES:
                    status, answer = failed
                    raise HTTPStatusError(f"{shown}: the server answered HTTP {status}"
                                          f"{' (not found)' if status == 404 else ''}; check the address or try later.",
                                          status, answer, b"".join(chunks)[:ERROR_BODY_BYTES])
                continue
            if kind == "end":
                return b"".join(chunks), None
            total += len(value)
            if total > max_bytes:
                raise FetchError(f"{shown}: the download is too large (over {_mb(max_bytes)}).")
            if write is not None:
                write(value)
            else:
                chunks.append(value)
    finally:
        holder["stop"] = True
        response = holder.get("response")
        if response is not None:
            _stop(response)
            try:
                response.release_conn()
            except Exception:
                pass
        pool.close()
        worker.join(timeout=0.5)  # a worker still connecting ends on its own, at its timeout


def _network_error(exc: BaseException, shown: str, connect_seconds: float, stall_seconds: float) -> FetchError:
    import urllib3.exceptions as ue

    if isinstance(exc, ue.ConnectTimeoutError) or (isinstance(exc, ue.MaxRetryError)
                                                    and isinstance(exc.reason, ue.ConnectTimeoutError)):
        return FetchError(f"{shown}: timed out (no connection within {connect_seconds:g} s); try again or check "
                          "the address.", retry=True)
    if isinstance(exc, (ue.ReadTimeoutError, socket.timeout)) or (isinstance(exc, ue.MaxRetryError)
                                                                    and isinstance(exc.reason, ue.ReadTimeoutError)):
        return FetchError(f"{shown}: timed out (the server sent nothing for {stall_seconds:g} s); try again later.",
                          retry=True)
    reason = exc.reason if isinstance(exc, ue.MaxRetryError) else exc
    if isinstance(reason, ue.SSLError):
        return FetchError(f"{shown}: the secure (TLS) connection failed (certificate or protocol); check the address.")
    if isinstance(reason, (ue.NewConnectionError, ConnectionRefusedError)):
        return FetchError(f"{shown}: could not connect; check the address and your connection.", retry=True)
    return FetchError(f"{shown}: could not download ({type(reason).__name__}); check the address and your "
                      "connection.", retry=True)
