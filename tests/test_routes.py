"""The key-status route: registered on a PromptServer-like object, answers yes/no, never the key."""

from __future__ import annotations

import asyncio
import json
import sys
import types

import pytest

from hunyuan_custom.nodes import routes

KEY_MARKER = "wsk-ROUTE-MARKER-55aa"


class FakeRoutes:
    """Records handlers like aiohttp's RouteTableDef: routes.get(path)(handler)."""

    def __init__(self):
        self.handlers = {}

    def get(self, path):
        def decorate(handler):
            self.handlers[("GET", path)] = handler
            return handler
        return decorate


class FakeResponse:
    def __init__(self, data, headers=None):
        self.text = json.dumps(data)
        self.headers = headers or {}


@pytest.fixture
def fake_aiohttp(monkeypatch):
    web = types.ModuleType("aiohttp.web")
    web.json_response = lambda data, headers=None: FakeResponse(data, headers)
    aiohttp = types.ModuleType("aiohttp")
    aiohttp.web = web
    monkeypatch.setitem(sys.modules, "aiohttp", aiohttp)
    monkeypatch.setitem(sys.modules, "aiohttp.web", web)


def _call(server):
    handler = server.routes.handlers[("GET", "/hunyuan_custom/wavespeed_key_status")]
    return asyncio.run(handler(object()))


@pytest.mark.parametrize("configured", [True, False])
def test_route_answers_configured_and_never_the_key(fake_aiohttp, monkeypatch, tmp_path, configured):
    monkeypatch.setenv("WAVESPEED_CONFIG_FILE", str(tmp_path / "missing.json"))
    if configured:
        monkeypatch.setenv("WAVESPEED_API_KEY", KEY_MARKER)
    else:
        monkeypatch.delenv("WAVESPEED_API_KEY", raising=False)
    server = types.SimpleNamespace(routes=FakeRoutes())
    assert routes.register(server) is True
    response = _call(server)
    assert json.loads(response.text) == {"configured": configured}
    assert KEY_MARKER not in response.text
    assert response.headers.get("Cache-Control") == "no-store"


def test_status_follows_the_environment_at_request_time(fake_aiohttp, monkeypatch, tmp_path):
    monkeypatch.setenv("WAVESPEED_CONFIG_FILE", str(tmp_path / "missing.json"))
    monkeypatch.delenv("WAVESPEED_API_KEY", raising=False)
    server = types.SimpleNamespace(routes=FakeRoutes())
    routes.register(server)
    assert json.loads(_call(server).text) == {"configured": False}
    (tmp_path / "missing.json").write_text(json.dumps({"api_key": KEY_MARKER}))
    assert json.loads(_call(server).text) == {"configured": True}


def test_no_server_means_no_registration_and_no_error(monkeypatch):
    assert routes.register(None) is False
    assert routes.register(types.SimpleNamespace()) is False
    # Outside ComfyUI there is no server module with a running PromptServer.
    monkeypatch.setitem(sys.modules, "server", types.ModuleType("server"))
    assert routes._running_prompt_server() is None
    server_module = types.ModuleType("server")
    server_module.PromptServer = types.SimpleNamespace(instance=types.SimpleNamespace(routes=FakeRoutes()))
    monkeypatch.setitem(sys.modules, "server", server_module)
    assert routes.register(routes._running_prompt_server()) is True
