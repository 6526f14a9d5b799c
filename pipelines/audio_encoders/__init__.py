"""Whisper (ComfyUI's models/audio_encoders): windowing of its states per video frame."""
