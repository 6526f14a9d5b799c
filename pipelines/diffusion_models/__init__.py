"""The HunyuanCustom transformer (ComfyUI's models/diffusion_models): model, RoPE, caches, fp8, checkpoint keys and loading."""
