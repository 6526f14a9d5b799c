"""How much a Load node decodes by default, in one place (the README's "Limits" table says the same).

A media file of a few KB can describe hours of black 8K frames or silent audio; without limits one
queued prompt takes all the server's memory. The defaults keep a default run within a few GB and
cover what the pack's modes use; the widgets named here raise them.
"""

from __future__ import annotations

# Load Video
DEFAULT_MAX_FRAMES = 129  # `frame_load_cap`: upstream's default length; 1501 = 60 s at 25 fps when raised
DEFAULT_MEMORY_GB = 4.0  # `memory_limit_gb`: the frames' float32 size, width*height*12 bytes each
MAX_FRAME_PIXELS = 4096 * 4096  # per frame, not a widget: 4K passes, 8K is refused (the model works at 720p)

# Load Audio
DEFAULT_MAX_SECONDS = 600  # `max_seconds`: 10 minutes, ~212 MB as float32 stereo at 44.1 kHz
MAX_AUDIO_BYTES = 2 << 30  # the decoded samples, whatever the widget says (a 768 kHz 16-channel track...)

# Load Reference Image (and its URL)
MAX_IMAGE_PIXELS = 50_000_000  # 50 megapixels: a 48 MP phone photo passes; ~1.2 GB while converting
MAX_IMAGE_BYTES = 50 * 1024 * 1024  # per file or download
URL_TOTAL_SECONDS = 120.0  # a download, whatever the server's pace
