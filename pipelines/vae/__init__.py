"""The 3D causal VAE (ComfyUI's models/vae): model, tiling, key layouts and loading."""
