"""HTTP routes for the web extension, registered only inside a running ComfyUI server.

GET /hunyuan_custom/wavespeed_key_status -> {"configured": true|false}. The answer says whether
a WaveSpeed key is set up; the key itself never leaves the server. (ComfyUI also serves every
route under /api/..., which is what the frontend's api.fetchApi uses.)
"""

from __future__ import annotations

import sys
from typing import Any

KEY_STATUS_PATH = "/hunyuan_custom/wavespeed_key_status"


def key_status() -> dict[str, bool]:
    from ..pipelines.wavespeed import config as wavespeed_config

    return {"configured": bool(wavespeed_config.api_key_configured())}


async def wavespeed_key_status(request: Any) -> Any:
    from aiohttp import web  # ComfyUI's server runs on aiohttp; only imported when a request comes

    # no-store: the badge must follow a key set or removed since the last look.
    return web.json_response(key_status(), headers={"Cache-Control": "no-store"})


def register(prompt_server: Any) -> bool:
    """Add our routes to a PromptServer instance; False when there is none (not in ComfyUI)."""
    routes = getattr(prompt_server, "routes", None)
    if routes is None:
        return False
    routes.get(KEY_STATUS_PATH)(wavespeed_key_status)
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
