"""Input checks shared by the models: clear errors for the mistakes users actually make."""

from __future__ import annotations

import torch

from linzoo.common.errors import UserTypeError, UserValueError

__all__ = ["check_images", "check_tokens"]


def check_images(images: torch.Tensor, *, in_channels: int, image_size: int, model: str) -> None:
    """Raise unless ``images`` is a float tensor of shape [B, in_channels, image_size, image_size]."""
    expected = (in_channels, image_size, image_size)
    wanted = f"[B, {in_channels}, {image_size}, {image_size}]"
    if not isinstance(images, torch.Tensor):
        raise UserTypeError(f"{model} expects a torch.Tensor of shape {wanted}, got {type(images).__name__}.")
    if not images.is_floating_point():
        raise UserTypeError(
            f"{model} expects float images in [0, 1], got {images.dtype}; convert with images.float() / 255."
        )
    shape = tuple(images.shape)
    if images.dim() == 4 and shape[1:] == expected:
        return
    if shape == expected:
        fix = "add the batch dimension with images.unsqueeze(0)"
    elif images.dim() == 3 and shape[1:] == expected[1:] and in_channels == 1:
        fix = "add the channel dimension with images.unsqueeze(1)"
    elif images.dim() == 4 and shape[1:] == (image_size, image_size, in_channels):
        fix = "the images are channels-last; use images.permute(0, 3, 1, 2)"
    else:
        fix = "resize the images or set the model's in_channels/image_size to match the data"
    raise UserValueError(f"{model} expects images of shape {wanted}, got {list(shape)}; {fix}.")


def check_tokens(
    tokens: torch.Tensor, *, vocab_size: int, max_length: int, model: str, check_values: bool = True
) -> None:
    """Raise unless ``tokens`` is an integer tensor [B, T], T <= max_length, ids in [0, vocab_size).

    The id range needs the values on the host (a device sync on a GPU): ``check_values=False``
    checks only dtype and shape, which cost nothing.
    """
    if not isinstance(tokens, torch.Tensor):
        raise UserTypeError(f"{model} expects a LongTensor of token ids [B, T], got {type(tokens).__name__}.")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise UserTypeError(f"{model} expects integer token ids, got {tokens.dtype}; convert with tokens.long().")
    if tokens.dim() != 2:
        fix = " (add the batch dimension with tokens.unsqueeze(0))" if tokens.dim() == 1 else ""
        raise UserValueError(f"{model} expects token ids of shape [B, T], got {list(tokens.shape)}{fix}.")
    if tokens.shape[1] > max_length:
        raise UserValueError(
            f"{model} got {tokens.shape[1]} tokens but its context holds at most {max_length}; "
            "crop the sequence or build the model with a larger seq_len."
        )
    if check_values and tokens.numel() and not torch.compiler.is_compiling():  # eager only (it syncs)
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= vocab_size:
            raise UserValueError(
                f"{model} has vocab_size={vocab_size} but got token ids in [{low}, {high}]; "
                f"ids must lie in [0, {vocab_size - 1}] (or build the model with a larger vocab_size)."
            )
