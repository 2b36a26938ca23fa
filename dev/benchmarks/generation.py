"""Section ``generation``: pixel-LM sampling with the KV cache (preallocated, or grown), and without.

Three contenders draw the same tokens from the same seed (checked): the model's cache,
preallocated to the context (``KVCache(seq_len)``, written in place); the same cache
grown by ``torch.cat`` every step (``KVCache()``, how it was before: each step copies the
whole past); and no cache (the whole sequence re-run every step). Rounds alternate; the
medians are reported. The net is the ``model=lm`` config's (``--tiny``: tiny), untrained
(weights do not change the timing), unless ``--lm-ckpt`` names a trained checkpoint.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import torch

from dev.benchmarks.recipes import build_net, compose, data_overrides, tiny_net
from dev.benchmarks.timing import interleaved, median, paired_ratio, print_table
from linzoo.layers.kv_cache import KVCache
from linzoo.models import DecoderLM


def lm_under_test(args: Any) -> tuple[DecoderLM, int, int]:
    """(net, levels, image side) of ``--lm-ckpt``, else of the composed ``model=lm`` config."""
    if args.lm_ckpt:
        from linzoo.tasks.loading import load_task

        task, _ = load_task(args.lm_ckpt)
        return task.net, task.levels, task.image_size or 28
    with tempfile.TemporaryDirectory() as run_dir:
        overrides = ["model=lm", *data_overrides(data_root=args.data_root, tiny=args.tiny), *tiny_net("lm", args.tiny)]
        cfg = compose(overrides, run_dir)
    torch.manual_seed(0)
    return build_net(cfg), cfg.model.levels, cfg.model.image_size


def section(args: Any) -> dict[str, Any]:
    model, levels, side = lm_under_test(args)
    model = model.to(args.device).eval()
    num = 4 if args.tiny else 64
    prompt = torch.full((num, 1), levels, dtype=torch.long, device=args.device)  # the start token
    outputs: dict[str, torch.Tensor] = {}

    def growing_cache() -> list[KVCache]:
        return [KVCache() for _ in model.blocks]

    def sample(name: str, *, use_cache: bool, new_cache: Callable[[], list[KVCache]] | None = None) -> Callable:
        def run() -> None:
            if new_cache is not None:
                model.new_cache = new_cache  # this instance only
            try:
                generator = torch.Generator(device=args.device).manual_seed(0)
                outputs[name] = model.generate(
                    prompt, side * side, allowed_tokens=levels, generator=generator, use_cache=use_cache
                )
            finally:
                model.__dict__.pop("new_cache", None)

        return run

    contenders = {
        "cache, preallocated": sample("cache, preallocated", use_cache=True),
        "cache, grown by torch.cat": sample("cache, grown by torch.cat", use_cache=True, new_cache=growing_cache),
        "no cache": sample("no cache", use_cache=False),
    }
    times = interleaved(contenders, repeats=args.repeats, device=args.device)
    reference = outputs["cache, preallocated"]
    results: dict[str, Any] = {
        "image": f"{side}x{side}",
        "tokens": side * side,
        "num": num,
        "dim": model.token_embedding.embedding_dim,
        "depth": len(model.blocks),
        "same_tokens": all(torch.equal(tokens, reference) for tokens in outputs.values()),
    }
    for name, t in times.items():
        results[name] = {
            "seconds": median(t),
            "tokens_per_s": num * side * side / median(t),
            "time_vs_preallocated": paired_ratio(t, times["cache, preallocated"]),
        }
    print_table(
        f"6. Sampling {num} images of {side}x{side} from the pixel LM (dim {results['dim']}, depth "
        f"{results['depth']}, {args.device}; median of {args.repeats}; same tokens: {results['same_tokens']})",
        ["", "s", "tokens/s", "time / preallocated cache"],
        [
            [name, r["seconds"], r["tokens_per_s"], r["time_vs_preallocated"]]
            for name, r in results.items()
            if isinstance(r, dict)
        ],
    )
    return results
