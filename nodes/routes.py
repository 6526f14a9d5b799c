"""HTTP routes for the web extension, registered only inside a running ComfyUI server.

GET /hunyuan_custom/wavespeed_key_status -> {"configured": true|false}. The answer says whether
a WaveSpeed key is set up; the key itself never leaves the server. (ComfyUI also serves every
route under /api/..., which is what the frontend's api.fetchApi uses.)

GET /view for one of the pack's example pictures, song or videos (example_media.py) that the input
folder does not hold: answered from the pack's folder by a middleware, because the frontend
previews a picked file only through ComfyUI's /view, which reads the input folder alone. Every
other request, and a same-named file of the user's, goes to ComfyUI's own handler.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from . import comfy, example_media

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
        except RuntimeError:  # already frozen (server started): previews of the examples stay blank
            logging.getLogger(__name__).warning(
                "HunyuanCustom: could not add the example-media preview handler; the examples still "
                "load, but their preview in our Load nodes stays empty")
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
