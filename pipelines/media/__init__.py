"""Bytes with no model behind them: image, video and wav I/O, the OpenCV-exact resize, save paths, metadata scrubbing."""
