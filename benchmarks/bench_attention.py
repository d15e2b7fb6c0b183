"""One ViT block: open_clip's nn.MultiheadAttention path (fast path on/off) against temu's SDPA block.

python benchmarks/bench_attention.py --width 1024 --heads 16 --tokens 1025 --batch 2
"""

from __future__ import annotations

import argparse

import torch
from common import environment, table, time_interleaved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=1025)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    device = torch.device(args.device)

    from open_clip.transformer import QuickGELU, ResidualAttentionBlock

    from temu.model.blocks import SDPAResidualAttentionBlock

    torch.manual_seed(0)
    block = ResidualAttentionBlock(args.width, args.heads, act_layer=QuickGELU, batch_first=True).to(device).eval()
    sdpa = ResidualAttentionBlock(args.width, args.heads, act_layer=QuickGELU, batch_first=True).to(device).eval()
    sdpa.load_state_dict(block.state_dict())
    sdpa.__class__ = SDPAResidualAttentionBlock
    x = torch.randn(args.batch, args.tokens, args.width, device=device)

    def mha(fast: bool):
        def run():
            torch.backends.mha.set_fastpath_enabled(fast)
            try:
                with torch.inference_mode():
                    return block(x)
            finally:
                torch.backends.mha.set_fastpath_enabled(True)

        return run

    def run_sdpa():
        with torch.inference_mode():
            return sdpa(x)

    with torch.inference_mode():
        diff = (block(x) - sdpa(x)).abs().max().item()
    timings = time_interleaved(
        {
            "open_clip block, MHA fast path": mha(True),
            "open_clip block, fast path off": mha(False),
            "temu SDPA block": run_sdpa,
        },
        device=device,
        items=args.batch,
        repeats=args.repeats,
    )
    base = timings["open_clip block, MHA fast path"].median
    rows = [
        [
            t.name,
            f"{t.median * 1000:,.0f}",
            f"{min(t.seconds) * 1000:,.0f}..{max(t.seconds) * 1000:,.0f}",
            f"{t.median / base:.3f}",
        ]
        for t in timings.values()
    ]
    print(
        f"# one block, width {args.width}, {args.heads} heads, [{args.batch}, {args.tokens}, {args.width}], fp32, {args.repeats} repeats (median)"
    )
    print(f"# {environment(device)}")
    print(table(rows, ["block", "ms (median)", "min..max ms", "time ratio"]))
    print(f"# max |difference| between the outputs: {diff:.2e}")


if __name__ == "__main__":
    main()
