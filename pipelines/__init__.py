"""Plain torch/diffusers code for HunyuanCustom; never imports ComfyUI or `nodes/`.

Submodules are imported where needed (not here) so importing the pack stays cheap.
"""
