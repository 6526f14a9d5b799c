"""What a job is conditioned on: the prompt spec and each mode's condition (reference image, audio, editing)."""
