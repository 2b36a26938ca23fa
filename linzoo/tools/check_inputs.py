"""The inputs an export is checked on, and the example it is traced with; no data is needed.

``check_inputs=PATH`` (an image, a folder of images, a ``.pt``/``.npy`` tensor: read as
predict reads ``inputs=``, see ``linzoo.tools.image_inputs``) checks on the user's own
inputs. Without it, the test images of the run's dataset are used when they are on this
machine (never downloaded), else inputs generated from a fixed seed: uniform images in [0, 1]
[N, C, S, S], or, for the pixel LM, uniform token ids [N, seq_len]. The pixel LM's check
inputs from images are its own tokenisation of them (``[start, p_0, ..., p_{P-2}]``).

The example that ``torch.export``/``torch.jit.trace`` keep is :func:`traced_example`: a copy of
two inputs, never a view of the batch (a view would carry the whole batch into the file).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from linzoo.common.errors import UserError
from linzoo.tools.image_inputs import RawInputs, collect_inputs, read_inputs

log = logging.getLogger(__name__)

__all__ = ["CheckInputs", "check_inputs_for", "read_check_inputs", "traced_example"]

GENERATED_SEED = 0


@dataclass(frozen=True)
class CheckInputs:
    """The inputs of the check and where they came from (for the report line)."""

    inputs: torch.Tensor
    source: str  # "test images of MNIST", "generated inputs (seed 0)", "check_inputs=digits/"


def read_check_inputs(check_inputs: str | Path | None) -> RawInputs | None:
    """``check_inputs=`` read as far as it can be without the net (before the model is loaded),
    its mistakes named as ``check_inputs=`` mistakes."""
    return None if check_inputs is None else collect_inputs(check_inputs, setting="check_inputs")


def check_inputs_for(
    net: nn.Module, build_config: dict[str, Any], *, given: RawInputs | None = None, num: int = 16
) -> CheckInputs:
    """The inputs to check an export of ``net`` on: ``given`` (from :func:`read_check_inputs`), else
    ``num`` test images of the run's data when present here, else ``num`` generated inputs."""
    if given is not None:
        image_size, in_channels = _image_shape(net, build_config)
        _, images = read_inputs(given, image_size=image_size, in_channels=in_channels)
        return CheckInputs(_as_net_inputs(net, build_config, images, None), f"input(s) of check_inputs={given.path}")
    test_images = _test_images(build_config, num=num)
    if test_images is not None:
        images, labels, title = test_images
        return CheckInputs(_as_net_inputs(net, build_config, images, labels), f"test images of {title}")
    return CheckInputs(generated_inputs(net, num=num), f"generated inputs (seed {GENERATED_SEED})")


def generated_inputs(net: nn.Module, *, num: int = 16) -> torch.Tensor:
    """``num`` inputs of ``net``'s shape from a fixed seed: images in [0, 1], or token ids for the pixel LM."""
    generator = torch.Generator().manual_seed(GENERATED_SEED)
    if hasattr(net, "vocab_size"):
        return torch.randint(0, int(net.vocab_size), (num, int(net.seq_len)), generator=generator)
    shape = (num, int(net.in_channels), int(net.image_size), int(net.image_size))
    return torch.rand(shape, generator=generator)


def traced_example(inputs: torch.Tensor) -> torch.Tensor:
    """Two inputs as a tensor of their own: what an exported file keeps as its example. One input
    is taken twice: a batch of one would fix the exported batch size to 1."""
    example = inputs[:2].clone()
    return example if len(example) == 2 else torch.cat([example, example])


def _test_images(build_config: dict[str, Any], *, num: int) -> tuple[torch.Tensor, torch.Tensor, str] | None:
    """``num`` test images, their labels and the data's title, when the run's data is on this
    machine (never downloaded); None, with the reason logged, when it is not."""
    from linzoo.data.rebuild import build_datamodule  # torchvision, Lightning: only when there is data to read
    from linzoo.data.sources import dataset_title

    data = build_config.get("data") or {}
    try:
        datamodule = build_datamodule(data, download=False, on_device=False, num_workers=0)
        datamodule.setup("test")
        images, labels = next(iter(datamodule.test_dataloader()))
    except UserError as error:
        log.info("The run's test data is not on this machine (%s); the export is checked on generated inputs.", error)
        return None
    return images[:num].clone(), labels[:num].clone(), dataset_title(str(data.get("dataset", "mnist")))


def _image_shape(net: nn.Module, build_config: dict[str, Any]) -> tuple[int, int]:
    """``(image_size, in_channels)`` of the images ``net`` reads (the pixel LM: its task's images)."""
    if hasattr(net, "vocab_size"):
        model = build_config["model"]
        return int(model.get("image_size") or round(int(net.seq_len) ** 0.5)), 1
    return int(net.image_size), int(net.in_channels)


def _as_net_inputs(
    net: nn.Module, build_config: dict[str, Any], images: torch.Tensor, labels: torch.Tensor | None
) -> torch.Tensor:
    """``images`` as ``net`` reads them: unchanged, or the pixel LM's tokens (class tokens for a
    conditional LM from ``labels``, else from the image's index)."""
    if not hasattr(net, "vocab_size"):
        return images
    from linzoo.tasks import LanguageModeling  # the pixel LM's own tokenisation: [start, p_0, ..., p_{P-2}]

    model = build_config["model"]
    num_classes = model.get("num_classes", 10)
    task = LanguageModeling(
        net=net,
        optimizer=None,
        levels=model["levels"],
        image_size=model.get("image_size"),
        conditional=model.get("conditional", False),
        num_classes=num_classes,
    )
    tokens = task.pixel_tokens(images)
    if labels is None:
        labels = torch.arange(len(images)) % num_classes
    return torch.cat([task.start_tokens(labels, len(tokens), tokens.device), tokens[:, :-1]], dim=1)
