"""HunyuanCustom for ComfyUI.

Inside ComfyUI this folder is loaded from custom_nodes/<any name>; outside it is the Python
package `hunyuan_custom`. Importing it only defines node classes: no files, network or models.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
