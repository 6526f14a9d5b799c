"""`python -m hunyuan_custom ...`: the command-line front end (see cli.py)."""

import sys

from .pipelines.cli import main

sys.exit(main())
