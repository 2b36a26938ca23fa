"""Every registered model: shapes, gradients, parameter counts, input errors, compile; LM specifics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import linzoo
from linzoo import count_parameters, create_model, list_models

IMAGE_MODELS = ("cnn", "mixer", "mlp", "transformer")

# Exact parameter counts of the DEFAULT configs (28x28x1 images, 10 classes).
EXPECTED_PARAMETERS = {
    # 784*256+256 = 200,960  +  256*128+128 = 32,896  +  head 128*10+10 = 1,290
    "mlp": 235_146,
    # convs (no bias) 1*32*9 + 32*64*9 + 64*128*9 = 92,448; BatchNorm 2*(32+64+128) = 448; head 1,290
    "cnn": 94_186,
    # patch 16*64+64 = 1,088; cls 64; positions 50*64 = 3,200;
    # per block: 2 LayerNorms 256 + q/k/v/out 4*(64*64+64) = 16,640 + FFN (64*128+128)+(128*64+64) = 16,576
    #   -> 33,472, times 4 = 133,888; final LayerNorm 128; head 64*10+10 = 650
    "transformer": 139_018,
    # enc 784*256+256 = 200,960, 256*32+32 = 8,224; dec 32*256+256 = 8,448, 256*784+784 = 201,488
    "autoencoder": 419_120,
    # tokens 3*32 = 96; positions 784*32 = 25,088; per block: LayerNorms 128 + fused qkv 32*96+96 = 3,168
    #   + out 32*32+32 = 1,056 + FFN (32*64+64)+(64*32+32) = 4,192 -> 8,544, times 2 = 17,088;
    #   final LayerNorm 64; LM head: weight tied to the token embedding, bias 3
    "lm": 42_339,
    # patch 1,088; per block: LayerNorms 256 + token mix (49*64+64)+(64*49+49) = 6,385
    #   + channel mix (64*128+128)+(128*64+64) = 16,576 -> 23,217, times 4 = 92,868; LayerNorm 128; head 650
    "mixer": 94_734,
}


def _example_input(name: str, batch: int = 2) -> torch.Tensor:
    if name == "lm":
        return torch.randint(0, 3, (batch, 20))
    return torch.rand(batch, 1, 28, 28)


def _expected_output_shape(name: str, batch: int = 2) -> tuple[int, ...]:
    return {"lm": (batch, 20, 3), "autoencoder": (batch, 1, 28, 28)}.get(name, (batch, 10))


def _loss(name: str, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if name == "lm":
        return F.cross_entropy(model(x).flatten(0, 1), x.flatten())
    if name == "autoencoder":
        return F.binary_cross_entropy_with_logits(model.decode_logits(model.encode(x)), x)
    return F.cross_entropy(model(x), torch.arange(x.shape[0]) % 10)


# --- registry ------------------------------------------------------------------------


def test_registry_lists_the_six_models() -> None:
    assert list_models() == ["autoencoder", "cnn", "lm", "mixer", "mlp", "transformer"]
    assert linzoo.list_models() == list_models()


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="autoencoder, cnn, lm, mixer, mlp, transformer"):
        create_model("resnet")


# --- every model ---------------------------------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_output_shape_gradients_and_parameter_count(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    x = _example_input(name)
    assert model(x).shape == _expected_output_shape(name)
    _loss(name, model, x).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{name}.{param_name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}.{param_name} has a non-finite gradient"
    assert count_parameters(model) == EXPECTED_PARAMETERS[name]


@pytest.mark.parametrize("name", ["autoencoder", *IMAGE_MODELS])
@pytest.mark.parametrize(
    ("shape", "fix"),
    [((2, 28, 28), "unsqueeze\\(1\\)"), ((2, 3, 28, 28), "in_channels"), ((2, 1, 32, 32), "image_size")],
)
def test_wrong_image_shape_names_the_expected_shape(name: str, shape: tuple[int, ...], fix: str) -> None:
    model = create_model(name)
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\]") as info:
        model(torch.rand(shape))
    assert info.match(fix)


@pytest.mark.parametrize("name", ["autoencoder", *IMAGE_MODELS])
def test_integer_images_raise_type_error(name: str) -> None:
    with pytest.raises(TypeError, match=r"\.float\(\)"):
        create_model(name)(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_image_models_accept_other_channels_sizes_and_classes(name: str) -> None:
    model = create_model(name, in_channels=3, image_size=16, num_classes=5)
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 5)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("transformer", {"dim": 30, "num_heads": 4}, "divisible by num_heads"),
        ("transformer", {"patch_size": 5}, "not divisible by patch_size"),
        ("mixer", {"patch_size": 3}, "not divisible by patch_size"),
        ("transformer", {"pool": "max"}, "cls, mean"),
        ("mlp", {"activation": "foo"}, "gelu, relu, silu"),
        ("cnn", {"channels": (8, 8, 8, 8, 8)}, "too small"),
        ("lm", {"dim": 10, "num_heads": 3}, "divisible by num_heads"),
    ],
)
def test_bad_options_raise_value_error_naming_the_fix(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_model(name, **options)


@pytest.mark.parametrize("name", list_models())
def test_models_trace_as_one_graph_without_breaks(name: str) -> None:
    """Input checks and the Linear's error handling must not split the graph under torch.compile."""
    torch._dynamo.reset()
    model = create_model(name).eval()
    explanation = torch._dynamo.explain(model)(_example_input(name))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "options"),
    [("mlp", {"hidden_dims": (32,)}), ("transformer", {"dim": 16, "depth": 1, "num_heads": 2})],
)
def test_torch_compile_matches_eager(name: str, options: dict) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = create_model(name, **options).eval()
    x = torch.rand(4, 1, 28, 28)
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


# --- autoencoder ---------------------------------------------------------------------


def test_autoencoder_encode_decode_and_tied_weights() -> None:
    torch.manual_seed(0)
    model = create_model("autoencoder", hidden_dims=(64,), latent_dim=8, tied=True)
    x = torch.rand(3, 1, 28, 28)
    z = model.encode(x)
    assert z.shape == (3, 8)
    out = model(x)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    torch.testing.assert_close(out, torch.sigmoid(model.decode_logits(z)))
    encoders = [m for m in model.encoder if isinstance(m, nn.Linear)]
    decoders = [m for m in model.decoder if hasattr(m, "weight")]
    for encoder, decoder in zip(encoders, reversed(decoders)):
        assert decoder.weight is encoder.weight  # shared, used transposed
        assert decoder.bias is not None and decoder.bias.shape == (encoder.in_features,)
    untied = create_model("autoencoder", hidden_dims=(64,), latent_dim=8)
    shared = 784 * 64 + 64 * 8
    assert count_parameters(untied) - count_parameters(model) == shared


# --- language model ------------------------------------------------------------------


def _small_lm(**options: object) -> nn.Module:
    defaults = {"vocab_size": 5, "seq_len": 24, "dim": 16, "depth": 2, "num_heads": 2}
    return create_model("lm", **{**defaults, **options})


def test_lm_tied_weights_share_storage_and_count_once() -> None:
    tied = _small_lm()
    assert tied.lm_head.weight.data_ptr() == tied.token_embedding.weight.data_ptr()
    assert sum(p is tied.token_embedding.weight for p in tied.parameters()) == 1
    untied = _small_lm(tie_weights=False)
    assert untied.lm_head.weight.data_ptr() != untied.token_embedding.weight.data_ptr()
    assert count_parameters(untied) - count_parameters(tied) == 5 * 16


@pytest.mark.parametrize("options", [{}, {"tie_weights": False, "linear": {"policy": "gpt2"}}])
def test_untrained_lm_loss_is_close_to_log_vocab(options: dict) -> None:
    torch.manual_seed(0)
    model = create_model("lm", vocab_size=16, seq_len=32, dim=32, depth=2, num_heads=2, **options)
    tokens = torch.randint(0, 16, (8, 32))
    loss = F.cross_entropy(model(tokens).flatten(0, 1), tokens.flatten())
    assert abs(loss.item() - math.log(16)) < 0.1


@pytest.fixture
def single_thread() -> object:
    """Tiny models step faster on one thread (and do not stall when other jobs share the CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("single_thread")
def test_generate_with_and_without_cache_gives_identical_tokens() -> None:
    torch.manual_seed(0)
    model = _small_lm().eval()
    prompt = torch.randint(0, 4, (3, 4))
    options = {"temperature": 1.5, "top_k": 3, "allowed_tokens": 4}
    cached = model.generate(prompt, 16, generator=torch.Generator().manual_seed(7), use_cache=True, **options)
    uncached = model.generate(prompt, 16, generator=torch.Generator().manual_seed(7), use_cache=False, **options)
    assert cached.shape == (3, 20)
    assert torch.equal(cached[:, :4], prompt)
    assert torch.equal(cached, uncached)
    assert cached.max() < 4  # allowed_tokens masks id 4
    # The cache path gives the full pass's logits too.
    cache = model.new_cache()
    steps = [model(cached[:, :4], cache=cache)] + [model(cached[:, t : t + 1], cache=cache) for t in range(4, 20)]
    stepwise = torch.cat(steps, dim=1)
    torch.testing.assert_close(stepwise, model(cached), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("tokens", "error", "message"),
    [
        (torch.zeros(2, 8), TypeError, r"\.long\(\)"),
        (torch.full((2, 8), 5), ValueError, "vocab_size=5"),
        (torch.zeros(2, 25, dtype=torch.long), ValueError, "at most 24"),
        (torch.zeros(8, dtype=torch.long), ValueError, r"\[B, T\]"),
    ],
)
def test_lm_token_input_checks(tokens: torch.Tensor, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        _small_lm()(tokens)


def test_cnn_channels_last_gives_the_same_numbers_in_nhwc() -> None:
    torch.manual_seed(0)
    plain = create_model("cnn", channels=(4, 8))
    torch.manual_seed(0)
    nhwc = create_model("cnn", channels=(4, 8), channels_last=True)
    conv = nhwc.features[4].weight  # the second conv (with one input channel both layouts coincide)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    images = torch.rand(3, 1, 28, 28)
    assert torch.allclose(plain(images), nhwc(images), atol=1e-5)
    nhwc.load_state_dict(plain.state_dict())  # the same keys and shapes: checkpoints load either way
    assert nhwc.features[4].weight.is_contiguous(memory_format=torch.channels_last)
