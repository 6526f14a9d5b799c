"""LLaVA and CLIP-L (ComfyUI's models/text_encoders and clip_vision): prompt template, encoding, loading, cache, single files, sizes, offload."""
