"""Decoder-only causal transformer language model (GPT-style) over token ids."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from linzoo.common.errors import UserValueError
from linzoo.layers.heads import LMHead
from linzoo.layers.kv_cache import KVCache
from linzoo.layers.linear import LinearSpec, as_linear_spec
from linzoo.layers.transformer import TransformerBlock
from linzoo.models.inputs import check_tokens
from linzoo.models.registry import register_model

__all__ = ["DecoderLM"]


@register_model("lm")
class DecoderLM(nn.Module):
    """Token ids [B, T] (T <= seq_len) -> next-token logits [B, T, vocab_size].

    h = token_embedding(ids) + position_embedding(positions); ``depth`` causal pre-norm
    TransformerBlocks; LayerNorm; LMHead (role "lm_head", tied to the token embedding
    when ``tie_weights``). Embeddings start at N(0, 0.02²) as in GPT-2, so an untied
    or tied head gives near-uniform predictions (loss ~ ln vocab_size) at init.
    The defaults (vocab 3, 784 positions) fit 28x28 images quantised to 3 grey levels.
    """

    def __init__(
        self,
        *,
        vocab_size: int = 3,
        seq_len: int = 784,
        dim: int = 32,
        depth: int = 2,
        num_heads: int = 2,
        mlp_ratio: float = 2.0,
        fused_qkv: bool = True,
        qkv_bias: bool = True,
        gated: bool = False,
        activation: str = "gelu",
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        tie_weights: bool = True,
        linear: LinearSpec | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        spec = as_linear_spec(linear).with_depth(depth).with_width(dim)  # muP: width = dim, num_heads fixed
        self.vocab_size = vocab_size
        self.seq_len = seq_len
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = nn.Embedding(seq_len, dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                activation=activation,
                gated=gated,
                fused_qkv=fused_qkv,
                qkv_bias=qkv_bias,
                causal=True,
                dropout=dropout,
                attn_dropout=attn_dropout,
                linear=spec,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.lm_head = LMHead(dim, vocab_size, tie_to=self.token_embedding if tie_weights else None, linear=spec)
        self.reset_parameters()  # after the head: a tied head shares the embedding's weight

    def reset_parameters(self) -> None:
        """Token and position embeddings ~ N(0, 0.02²) (GPT-2)."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    @property
    def tied(self) -> bool:
        """Whether the LM head's weight is the token embedding's Parameter."""
        return self.lm_head.weight is self.token_embedding.weight

    def new_cache(self) -> list[KVCache]:
        """An empty KV cache, one :class:`KVCache` per block, preallocated to ``seq_len`` steps."""
        return [KVCache(self.seq_len) for _ in self.blocks]

    def forward(self, tokens: torch.Tensor, *, cache: list[KVCache] | None = None) -> torch.Tensor:
        """tokens: [B, T] int64 -> logits [B, T, vocab_size].

        With ``cache`` (from :meth:`new_cache`), ``tokens`` are the steps that follow the
        cached ones: they get positions past .. past + T - 1 and attend to the cache.
        Token ids are range-checked only on CPU tensors (on a GPU the check would wait for
        the device at every call).
        """
        past = len(cache[0]) if cache else 0
        check_tokens(
            tokens,
            vocab_size=self.vocab_size,
            max_length=self.seq_len - past,
            model="DecoderLM",
            check_values=tokens.device.type == "cpu",
        )
        return self._logits(tokens, cache=cache, past=past)

    def _logits(self, tokens: torch.Tensor, *, cache: list[KVCache] | None, past: int) -> torch.Tensor:
        """:meth:`forward` without the input checks (generation feeds back ids it sampled itself)."""
        positions = torch.arange(past, past + tokens.shape[1], device=tokens.device)
        x = self.dropout(self.token_embedding(tokens) + self.position_embedding(positions))
        for index, block in enumerate(self.blocks):
            x = block(x, cache=None if cache is None else cache[index])
        return self.lm_head(self.norm(x))

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        allowed_tokens: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Sample ``max_new_tokens`` continuations of ``prompt`` [B, T0] -> [B, T0 + max_new_tokens].

        T0 + max_new_tokens may be seq_len + 1: the last token is sampled, never fed back.

        Each step samples from softmax(logits / temperature), restricted to the ``top_k``
        most likely ids and to ids < ``allowed_tokens``. With ``use_cache`` the prompt is
        run once and then one token per step through the KV cache; without, the whole
        sequence is re-run each step. Both give the same tokens for the same ``generator``.
        Call ``model.eval()`` first, or dropout stays active.
        """
        check_tokens(prompt, vocab_size=self.vocab_size, max_length=self.seq_len, model="DecoderLM")
        if prompt.shape[1] < 1:
            raise UserValueError("generate needs a prompt of at least one token per sequence, shape [B, T0 >= 1].")
        # The last new token is never fed back, so the net sees at most T0 + max_new_tokens - 1.
        if max_new_tokens < 0 or prompt.shape[1] + max_new_tokens - 1 > self.seq_len:
            raise UserValueError(
                f"prompt length {prompt.shape[1]} + max_new_tokens={max_new_tokens} - 1 must be at most "
                f"seq_len={self.seq_len}; use fewer new tokens or a shorter prompt."
            )
        if temperature <= 0:
            raise UserValueError(f"temperature must be > 0, got {temperature}; use top_k=1 for greedy decoding.")
        if top_k is not None and top_k < 1:
            raise UserValueError(f"top_k must be >= 1 or None, got {top_k}.")
        if allowed_tokens is not None and not 1 <= allowed_tokens <= self.vocab_size:
            raise UserValueError(f"allowed_tokens must be in [1, vocab_size={self.vocab_size}], got {allowed_tokens}.")

        cache = self.new_cache() if use_cache else None
        tokens = prompt
        step_input = prompt
        for _ in range(max_new_tokens):
            past = len(cache[0]) if cache else 0
            logits = self._logits(step_input, cache=cache, past=past)[:, -1, :]  # [B, V]
            next_token = self._sample(
                logits, temperature=temperature, top_k=top_k, allowed_tokens=allowed_tokens, generator=generator
            )
            tokens = torch.cat([tokens, next_token], dim=1)
            step_input = next_token if use_cache else tokens
        return tokens

    @staticmethod
    def _sample(
        logits: torch.Tensor,
        *,
        temperature: float,
        top_k: int | None,
        allowed_tokens: int | None,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """logits [B, V] -> sampled ids [B, 1]."""
        logits = logits.float() / temperature
        if allowed_tokens is not None:
            logits[:, allowed_tokens:] = float("-inf")
        if top_k is not None:
            kth_largest = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth_largest, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=generator)
