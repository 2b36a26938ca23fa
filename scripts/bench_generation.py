"""Time pixel-LM sampling with and without the key/value cache, side by side in one process.

    python scripts/bench_generation.py                         # the model=lm default: 14x14, dim 64, depth 2
    python scripts/bench_generation.py --image-size 28 --num 16 --dim 256 --depth 8 --heads 8
    python scripts/bench_generation.py --ckpt outputs/train/<run>/checkpoints/last.ckpt

Both paths draw the same tokens from the same seed (checked here too); the cache runs
the prompt once and then one token per step, the uncached path re-runs the whole
sequence every step. Rounds alternate cache / no cache; the median of each is reported.
Weights do not change the timing, so an untrained net of the chosen shape is used
unless --ckpt is given. ``measure_generation`` can be imported by other benchmarks.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from linzoo.models import DecoderLM


def measure_generation(
    model: DecoderLM,
    *,
    num: int,
    new_tokens: int,
    start_token: int,
    allowed_tokens: int,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """Median seconds to sample ``num`` sequences of ``new_tokens`` with and without the cache."""
    model.eval()
    prompt = torch.full((num, 1), start_token, dtype=torch.long, device=next(model.parameters()).device)

    def run(use_cache: bool) -> tuple[float, torch.Tensor]:
        generator = torch.Generator(device=prompt.device).manual_seed(seed)
        if prompt.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        tokens = model.generate(prompt, new_tokens, allowed_tokens=allowed_tokens, generator=generator,
                                use_cache=use_cache)
        if prompt.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start, tokens

    run(True), run(False)  # warm-up
    times: dict[bool, list[float]] = {True: [], False: []}
    outputs: dict[bool, torch.Tensor] = {}
    for _ in range(repeats):
        for use_cache in (True, False):
            seconds, outputs[use_cache] = run(use_cache)
            times[use_cache].append(seconds)
    cached, uncached = statistics.median(times[True]), statistics.median(times[False])
    return {
        "cache_s": cached,
        "no_cache_s": uncached,
        "speedup": uncached / cached,
        "cache_tokens_per_s": num * new_tokens / cached,
        "same_tokens": bool(torch.equal(outputs[True], outputs[False])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", help="time this trained LM checkpoint instead of an untrained net")
    parser.add_argument("--image-size", type=int, default=14)
    parser.add_argument("--levels", type=int, default=2)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--num", type=int, default=64, help="images sampled at once (the batch)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.ckpt:
        from linzoo.checkpoints import load_task

        task, _ = load_task(args.ckpt)
        model, levels, side = task.net, task.levels, task.image_size or 28
    else:
        levels, side = args.levels, args.image_size
        model = DecoderLM(vocab_size=levels + 1, seq_len=side * side, dim=args.dim, depth=args.depth,
                          num_heads=args.heads)
    model.to(args.device)
    result = measure_generation(model, num=args.num, new_tokens=side * side, start_token=levels,
                                allowed_tokens=levels, repeats=args.repeats)
    setup = {
        "image": f"{side}x{side}",
        "tokens": side * side,
        "dim": model.token_embedding.embedding_dim,
        "depth": len(model.blocks),
        "num": args.num,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    print(json.dumps({**setup, **{k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}}))
    print(f"KV cache: {result['cache_s']:.3f} s, no cache: {result['no_cache_s']:.3f} s, "
          f"speedup x{result['speedup']:.2f} ({args.num} images of {side}x{side}, dim {setup['dim']}, "
          f"depth {setup['depth']}, {args.device}, {setup['threads']} threads); same tokens: {result['same_tokens']}")


if __name__ == "__main__":
    main()
