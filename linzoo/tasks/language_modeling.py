"""Autoregressive image modelling: pixels quantised to tokens, next-token loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from linzoo.common.errors import UserValueError
from linzoo.tasks.base import Task
from linzoo.tasks.optim import OptimizerFactory, SchedulerFactory


class LanguageModeling(Task):
    """Trains a decoder-only ``net`` (token ids [B, T] -> logits [B, T, V]) on image pixels.

    Each image (optionally resized to ``image_size``) is read in raster order and every
    pixel quantised to one of ``levels`` tokens (2: binarised at 0.5; 16 or 256 grey
    levels). The sequence fed to the net is ``[start, p_0, ..., p_{P-2}]`` and the target
    is ``[p_0, ..., p_{P-1}]``, where ``start`` is token ``levels`` or, when
    ``conditional``, token ``levels + 1 + label`` (a class token), so ``sample(digit=7)``
    draws sevens. The net therefore needs ``vocab_size >= levels + 1 (+ num_classes)``
    and ``seq_len >= P``. Only the ``levels`` pixel logits enter the loss.

    Metrics: ``loss`` (nats per token), ``nll_nats`` (per image, the unit of the binarised
    MNIST literature) and ``bits_per_dim`` = nll_nats / (P ln 2).
    """

    main_metric = "val/nll_nats"
    main_metric_mode = "min"

    def __init__(
        self,
        *,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
        levels: int = 2,
        image_size: int | None = None,
        conditional: bool = False,
        num_classes: int = 10,
    ) -> None:
        super().__init__(net=net, optimizer=optimizer, scheduler=scheduler, compile=compile)
        if levels < 2:
            raise UserValueError(f"levels must be at least 2 (2, 16 or 256 are usual), got {levels}.")
        self.levels = levels
        self.image_size = image_size
        self.conditional = conditional
        self.num_classes = num_classes
        needed = levels + 1 + (num_classes if conditional else 0)
        vocab_size = getattr(net, "vocab_size", None)
        if vocab_size is not None and vocab_size < needed:
            raise UserValueError(
                f"The LM has vocab_size={vocab_size} but levels={levels}"
                f"{f' with {num_classes} class tokens' if conditional else ''} needs {needed}: "
                f"set model.net.vocab_size={needed}."
            )

    def pixel_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] in [0, 1] -> token ids [B, P] in [0, levels), P = image_size^2."""
        if self.image_size is not None and images.shape[-1] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="area")
        if self.levels == 2:
            tokens = images > 0.5
        else:
            tokens = (images * self.levels).floor().clamp(max=self.levels - 1)
        return tokens.flatten(1).long()

    def start_tokens(self, labels: torch.Tensor | None, batch_size: int, device: torch.device) -> torch.Tensor:
        """[B, 1] start token: ``levels``, or the class token ``levels + 1 + label``."""
        if not self.conditional:
            return torch.full((batch_size, 1), self.levels, dtype=torch.long, device=device)
        if labels is None:
            raise UserValueError("This LM is class-conditional: pass digit=<0..9> (or labels) to sample.")
        return (self.levels + 1 + labels.long()).reshape(batch_size, 1).to(device)

    def step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, labels = batch
        targets = self.pixel_tokens(images)
        batch_size, num_pixels = targets.shape
        start = self.start_tokens(labels, batch_size, targets.device)
        inputs = torch.cat([start, targets[:, :-1]], dim=1)
        logits = self.net(inputs)[..., : self.levels].float()
        nll_per_token = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        loss = nll_per_token.mean()
        nll_per_image = nll_per_token.detach().sum(dim=1).mean()
        metrics = {
            "loss": loss.detach(),
            "nll_nats": nll_per_image,
            "bits_per_dim": nll_per_image / (num_pixels * math.log(2)),
        }
        self.log_epoch_means(stage, metrics, batch_size=batch_size)
        return loss

    @torch.no_grad()
    def sample(
        self,
        num: int,
        *,
        digit: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        image_size: int = 28,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Draw ``num`` images [num, 1, S, S] in [0, 1], S = ``self.image_size`` or ``image_size``.

        ``use_cache=False`` re-runs the whole sequence every step (same tokens, slower).
        """
        side = self.image_size or image_size
        labels = None if digit is None else torch.full((num,), digit, dtype=torch.long)
        if digit is not None and not self.conditional:
            raise UserValueError("digit= needs a class-conditional LM: train with model.conditional=true.")
        if digit is not None and not 0 <= digit < self.num_classes:
            raise UserValueError(f"digit must be in 0..{self.num_classes - 1}, got {digit}.")
        prompt = self.start_tokens(labels, num, self.device)
        tokens = self.net.generate(
            prompt,
            side * side,
            temperature=temperature,
            top_k=top_k,
            allowed_tokens=self.levels,
            generator=generator,
            use_cache=use_cache,
        )[:, 1:]
        return (tokens.float() / (self.levels - 1)).reshape(num, 1, side, side)
