"""Command line: `python -m hunyuan_custom generate --backend local|remote ...`.

Bad input ends with one clear line on stderr and exit code 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import sys

from . import schema


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hunyuan_custom", description="HunyuanCustom video generation.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="reference image + prompt -> mp4")
    gen.add_argument("--backend", choices=(schema.LOCAL, schema.REMOTE), default=schema.LOCAL)
    gen.add_argument("--image", required=True, help="reference image (a cut-out subject on white works best)")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative-prompt", default=schema.FIELDS["negative_prompt"].default)
    gen.add_argument("--subject", default=schema.FIELDS["subject"].default)
    gen.add_argument("--size", default=schema.FIELDS["size"].default)
    gen.add_argument("--num-frames", type=int, default=schema.FIELDS["num_frames"].default)
    gen.add_argument("--steps", type=int, default=schema.FIELDS["steps"].default)
    gen.add_argument("--guidance-scale", type=float, default=schema.FIELDS["guidance_scale"].default)
    gen.add_argument("--flow-shift", type=float, default=schema.FIELDS["flow_shift"].default)
    gen.add_argument("--seed", type=int, default=schema.FIELDS["seed"].default)
    gen.add_argument("--output", required=True, help="output .mp4 path (never overwritten)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        raise CliError(f"the {args.backend} backend is not available in this version")
    except (CliError, schema.ParameterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
