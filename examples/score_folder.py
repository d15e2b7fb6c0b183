"""Score every image in a folder, keep going past unreadable files, and list the best and worst.

    python examples/score_folder.py PHOTOS/ [--model temu-iqa-s] [--keep-above 0.5]

Prints one line per image as it is scored; unreadable files are reported, not fatal.
"""

from __future__ import annotations

import argparse

import temu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--model", default="temu-iqa-s", help="preset, head directory or Hub repo id")
    parser.add_argument("--keep-above", type=float, default=None, help="also list the images scoring above this")
    args = parser.parse_args()

    model = temu.load(args.model, device=None)
    scored, failed = [], []
    for result in temu.iter_scores(args.folder, model, on_error="report"):
        if result.error:
            failed.append(result)
            print(f"could not read {result.error}")
        else:
            scored.append(result)
            print(f"{result.score:.4f}  {result.name}")

    scored.sort(key=lambda r: r.score, reverse=True)
    print(f"\n{len(scored)} scored, {len(failed)} unreadable")
    if scored:
        print(f"best:  {scored[0].score:.4f}  {scored[0].name}")
        print(f"worst: {scored[-1].score:.4f}  {scored[-1].name}")
    if args.keep_above is not None:
        kept = [r.name for r in scored if r.score > args.keep_above]
        print(f"{len(kept)} image(s) score above {args.keep_above}:", *kept, sep="\n  ")


if __name__ == "__main__":
    main()
