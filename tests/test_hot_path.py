"""What runs every step stays cheap: one picture callback, no per-step host syncs, a preallocated KV cache."""

from __future__ import annotations

import pytest
import torch

import linzoo.models.lm as lm_module
from helpers import tiny
from linzoo.callbacks import Pictures
from linzoo.layers.kv_cache import KVCache
from linzoo.models import DecoderLM
from linzoo.run.trainer import instantiate_all


def test_generation_checks_the_prompt_once_not_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    real_check = lm_module.check_tokens

    def counting_check(tokens: torch.Tensor, **kwargs: object) -> None:
        calls.append(bool(kwargs.get("check_values", True)))
        real_check(tokens, **kwargs)

    monkeypatch.setattr(lm_module, "check_tokens", counting_check)
    model = DecoderLM(vocab_size=3, seq_len=16, dim=16, depth=1, num_heads=2).eval()
    prompt = torch.full((2, 1), 2)
    for use_cache in (True, False):
        calls.clear()
        tokens = model.generate(prompt, 10, use_cache=use_cache, generator=torch.Generator().manual_seed(0))
        assert tokens.shape == (2, 11) and calls == [True]  # the prompt only, not the 10 steps
    calls.clear()
    model(torch.zeros(2, 4, dtype=torch.long))
    assert calls == [True]  # CPU tokens: the id range is checked (no device to wait for)


def test_token_values_are_checked_only_when_asked() -> None:
    model = DecoderLM(vocab_size=3, seq_len=8, dim=16, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="vocab_size=3"):
        model(torch.full((1, 4), 7))
    lm_module.check_tokens(torch.full((1, 4), 7), vocab_size=3, max_length=8, model="m", check_values=False)


def test_lm_cache_is_preallocated_to_the_context_and_matches_the_full_pass() -> None:
    torch.manual_seed(0)
    model = DecoderLM(vocab_size=5, seq_len=12, dim=16, depth=2, num_heads=2).eval()
    cache = model.new_cache()
    assert [c.max_length for c in cache] == [12, 12]
    tokens = torch.randint(0, 5, (3, 12))
    with torch.no_grad():
        steps = [model(tokens[:, :5], cache=cache)] + [model(tokens[:, i : i + 1], cache=cache) for i in range(5, 12)]
        torch.testing.assert_close(torch.cat(steps, dim=1), model(tokens), rtol=1e-5, atol=1e-5)
    buffer = cache[0]._key_buffer
    assert buffer is not None and buffer.shape[-2] == 12  # one allocation, filled in place
    assert cache[0].keys.data_ptr() == buffer.data_ptr()


def test_kv_cache_rejects_a_bad_length() -> None:
    with pytest.raises(ValueError, match="max_length"):
        KVCache(0)


def test_the_default_config_has_one_picture_callback_for_every_task(compose_train, tmp_path) -> None:
    callbacks = instantiate_all(compose_train(tiny("mlp"), output_dir=tmp_path).callbacks)
    pictures = [c for c in callbacks if isinstance(c, Pictures)]
    assert len(pictures) == 1
    assert list(pictures[0].drawers) == ["reconstructions", "latent_map", "samples", "confusion_matrix", "curves"]
    # checkpoint, LR monitor, model summary, progress bar, pictures (was 8 with five picture callbacks)
    assert len(callbacks) == 5


def test_pictures_hand_hooks_only_to_the_drawers_of_the_running_task(compose_train, tmp_path) -> None:
    from linzoo.tasks import Autoencoding, Classifier, LanguageModeling

    pictures = next(
        c for c in instantiate_all(compose_train([], output_dir=tmp_path).callbacks) if isinstance(c, Pictures)
    )
    drawn = {
        task: sorted(type(d).__name__ for d in pictures._for(object.__new__(task)))
        for task in (Classifier, Autoencoding, LanguageModeling)
    }
    assert drawn == {
        Classifier: ["ConfusionMatrix", "TrainingCurves"],
        Autoencoding: ["LatentMap", "ReconstructionGrid", "TrainingCurves"],
        LanguageModeling: ["SampleGrid", "TrainingCurves"],
    }


def test_run_safety_forwards_every_hook_its_parts_use() -> None:
    """The three run-safety parts reach Lightning through one callback (one dispatch per hook)."""
    from lightning.pytorch.callbacks import Callback

    from linzoo.callbacks.divergence import StopOnDivergence
    from linzoo.callbacks.interruption import SaveOnInterrupt
    from linzoo.callbacks.rng_state import RestoreRNGStates
    from linzoo.callbacks.safety import RunSafety

    for part in (StopOnDivergence, SaveOnInterrupt, RestoreRNGStates):
        used = {name for name in vars(part) if name.startswith("on_") and hasattr(Callback, name)}
        assert used and used <= set(vars(RunSafety)), part.__name__
