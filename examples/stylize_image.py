"""Stylize one image through the REST API: python examples/stylize_image.py in.jpg out.png starry_night=1"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("weights", nargs="?", help="style=w[,style=w]; default: the model's first style")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model")
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--preserve-color", action="store_true")
    args = parser.parse_args()
    fields = {"strength": str(args.strength), "preserve_color": str(args.preserve_color).lower()}
    if args.weights:
        fields["weights"] = args.weights
    if args.model:
        fields["model"] = args.model
    with args.input.open("rb") as image:
        response = httpx.post(f"{args.url}/api/stylize", files={"image": image}, data=fields, timeout=60)
    if response.status_code != 200:
        sys.stderr.write(f"stylize failed ({response.status_code}): {response.json()['detail']}\n")
        raise SystemExit(2)
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_bytes(response.content)
    tmp.replace(args.output)


if __name__ == "__main__":
    main()
