"""HTTP routes for the web extension, registered only inside a running ComfyUI server.

GET /hunyuan_custom/wavespeed_key_status -> {"configured": true|false}. The answer says whether
a WaveSpeed key is set up; the key itself never leaves the server. (ComfyUI also serves every
route under /api/..., which is what the frontend's api.fetchApi uses.)

GET /view for one of the pack's example pictures, song or videos (example_media.py) that the input
folder does not hold: answered from the pack's folder by a middleware, because the frontend
previews a picked file only through ComfyUI's /view, which reads the input folder alone. Every
other request, and a same-named file of the user's, goes to ComfyUI's own handler.

POST /prompt of a graph with our nodes: validated first and refused whole when any part fails
(queue_checks.py), by a middleware in front of ComfyUI's handler.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from . import comfy, example_media, queue_checks

KEY_STATUS_PATH = "/hunyuan_custom/wavespeed_key_status"


def key_status() -> dict[str, bool]:
    from ..pipelines.wavespeed import config as wavespeed_config

    return {"configured": bool(wavespeed_config.api_key_configured())}


async def wavespeed_key_status(request: Any) -> Any:
    from aiohttp import web  # ComfyUI's server runs on aiohttp; only imported when a request comes

    # no-store: the badge must follow a key set or removed since the last look.
    return web.json_response(key_status(), headers={"Cache-Control": "no-store"})


VIEW_PATHS = ("/view", "/api/view")


def examples_middleware(web: Any) -> Any:
    """An aiohttp middleware that answers /view for our example media (see the module doc)."""

    @web.middleware
    async def serve_example_media(request: Any, handler: Any) -> Any:
        if request.method in ("GET", "HEAD") and request.path in VIEW_PATHS:
            path = example_media.for_view(dict(request.rel_url.query), comfy.input_directory())
            if path is not None:
                return web.FileResponse(path, headers={"Cache-Control": "no-cache"})
        return await handler(request)

    return serve_example_media


PROMPT_PATHS = ("/prompt", "/api/prompt")


def queue_middleware(web: Any) -> Any:
    """An aiohttp middleware that refuses a prompt with our nodes when any part of it fails its
    checks (queue_checks.py); every other request, and any failure of this check itself, goes to
    ComfyUI's handler unchanged."""

    @web.middleware
    async def all_or_nothing(request: Any, handler: Any) -> Any:
        if request.method == "POST" and request.path in PROMPT_PATHS:
            try:
                body = await request.json()  # aiohttp keeps the body: the handler reads it again
                prompt = body.get("prompt") if isinstance(body, dict) else None
                if queue_checks.has_our_nodes(prompt):
                    targets = body.get("partial_execution_targets")
                    validation = await comfy.validate_prompt(prompt, targets)
                    if validation is not None:
                        answer = queue_checks.check(prompt, validation, lambda: key_status()["configured"], targets)
                        if answer is not None:
                            logging.getLogger(__name__).warning("HunyuanCustom: prompt refused: %s",
                                                                answer["error"]["details"])
                            return web.json_response(answer, status=400)
            except Exception:  # never stand between the user and ComfyUI's own answer
                logging.getLogger(__name__).warning("HunyuanCustom: queue check skipped", exc_info=True)
        return await handler(request)

    return all_or_nothing


def register(prompt_server: Any) -> bool:
    """Add our routes to a PromptServer instance; False when there is none (not in ComfyUI)."""
    routes = getattr(prompt_server, "routes", None)
    if routes is None:
        return False
    routes.get(KEY_STATUS_PATH)(wavespeed_key_status)
    middlewares = getattr(getattr(prompt_server, "app", None), "middlewares", None)
    if middlewares is not None:
        from aiohttp import web

        try:
            middlewares.append(examples_middleware(web))
            middlewares.append(queue_middleware(web))
        except RuntimeError:  # already frozen (server started): previews of the examples stay blank
            logging.getLogger(__name__).warning(
                "HunyuanCustom: could not add the example-media preview and queue-check handlers; the "
                "examples still load, but their preview stays empty and a graph with a failing branch runs "
                "its other outputs")
    return True


def _running_prompt_server() -> Any | None:
    # ComfyUI imports its server.py before it loads custom nodes; look it up instead of importing
    # so that outside ComfyUI no unrelated module named `server` gets imported.
    server = sys.modules.get("server")
    return getattr(getattr(server, "PromptServer", None), "instance", None)


try:
    REGISTERED = register(_running_prompt_server())
except Exception:  # a broken server object must never stop the nodes from loading
    REGISTERED = False
