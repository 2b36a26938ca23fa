"""Every config composes, and its model/data/linear choices reach the built objects."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException, InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from linzoo.layers.linear import FactoryLinear, LinearSpec
from linzoo.tasks import Task

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MODELS = sorted(path.stem for path in (CONFIGS / "model").glob("*.yaml"))
LINEARS = sorted(path.stem for path in (CONFIGS / "linear").glob("*.yaml"))
DATAS = sorted(path.stem for path in (CONFIGS / "data").glob("*.yaml"))
EXPERIMENTS = sorted(path.stem for path in (CONFIGS / "experiment").glob("*.yaml"))
DEBUGS = sorted(path.stem for path in (CONFIGS / "debug").glob("*.yaml"))
TRAINERS = sorted(path.stem for path in (CONFIGS / "trainer").glob("*.yaml"))
SCHEDULERS = sorted(path.stem for path in (CONFIGS / "scheduler").glob("*.yaml"))


def test_every_group_has_the_promised_options() -> None:
    assert MODELS == ["autoencoder", "cnn", "lm", "mixer", "mlp", "transformer"]
    assert {"default", "xavier", "trunc_normal", "gpt2"} <= set(LINEARS)
    assert {"mnist", "fashion_mnist", "mnist_sample"} <= set(DATAS)
    assert {"default", "cpu", "gpu", "ddp"} <= set(TRAINERS)
    assert {"fast_dev_run", "overfit", "limit", "profiler"} <= set(DEBUGS)


@pytest.mark.parametrize("data", DATAS)
@pytest.mark.parametrize("linear", LINEARS)
@pytest.mark.parametrize("model", MODELS)
def test_model_linear_data_compose(compose_train, model: str, linear: str, data: str) -> None:
    cfg = compose_train([f"model={model}", f"linear={linear}", f"data={data}"])
    # The net receives the chosen linear file's init (files that set none inherit default's).
    assert cfg.model.net.linear.init == OmegaConf.load(CONFIGS / "linear" / f"{linear}.yaml").get("init", "default")
    assert "monitor" not in cfg  # the task declares its metric (linzoo.callbacks.monitor reads it)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


@pytest.mark.parametrize("model", MODELS)
def test_each_model_config_builds_its_task_with_factory_linears(compose_train, model: str) -> None:
    cfg = compose_train([f"model={model}", "linear=xavier", "linear.bias=false"])
    task = instantiate(cfg.model)
    assert isinstance(task, Task)
    linears = [m for m in task.net.modules() if isinstance(m, FactoryLinear)]
    assert linears, "every model has Linears"
    assert all(m.bias is None and m.spec.init == "xavier_uniform" for m in linears)


def test_role_override_reaches_only_that_role(compose_train) -> None:
    cfg = compose_train(["model=transformer", "linear.roles.attn_out.init=zeros"])
    task = instantiate(cfg.model)
    linears = [m for m in task.net.modules() if isinstance(m, FactoryLinear)]
    for layer in linears:
        is_zero = bool((layer.weight == 0).all())
        assert is_zero == (layer.role == "attn_out"), layer.role


def test_unknown_role_override_is_rejected(compose_train) -> None:
    with pytest.raises(ConfigCompositionException):
        compose_train(["linear.roles.atn_out.init=zeros"])


def test_unknown_init_name_lists_the_valid_ones(compose_train) -> None:
    cfg = compose_train(["linear.init=glorot"])
    with pytest.raises(InstantiationException, match="xavier_uniform"):
        instantiate(cfg.model)


def test_linear_config_round_trips_to_a_spec(compose_train) -> None:
    cfg = compose_train(["linear=gpt2"])
    from linzoo.layers.linear import as_linear_spec

    spec = as_linear_spec(cfg.linear)
    assert isinstance(spec, LinearSpec) and spec.policy == "gpt2" and spec.roles == {}


def one_parameter_adamw(lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2, 2))], lr=lr)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("model", MODELS)
def test_every_scheduler_composes_with_every_model(compose_train, model: str, scheduler: str) -> None:
    # scheduler=<name> on the command line replaces a model's own choice whole
    # (model=transformer picks warmup_cosine): no key of one schedule leaks into another.
    cfg = compose_train([f"model={model}", f"scheduler={scheduler}"])
    if scheduler == "none":
        assert cfg.scheduler is None
        return
    expected = OmegaConf.load(CONFIGS / "scheduler" / f"{scheduler}.yaml")
    assert cfg.scheduler._target_ == (expected.get("_target_") or "linzoo.tasks.optim.cosine")
    schedule = instantiate(cfg.scheduler)(one_parameter_adamw(cfg.optimizer.lr), total_steps=50)
    assert isinstance(schedule, torch.optim.lr_scheduler.LRScheduler)


def test_the_default_transformer_job_warms_up_then_decays(compose_train) -> None:
    cfg = compose_train(["model=transformer"])
    assert (cfg.optimizer.lr, cfg.scheduler.warmup_steps) == (0.003, 100)
    optimizer = one_parameter_adamw(cfg.optimizer.lr)
    schedule = instantiate(cfg.scheduler)(optimizer, total_steps=1000)
    lrs = []
    for _ in range(1000):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[0] == pytest.approx(0.003 / 100) and lrs[99] == pytest.approx(0.003)
    assert all(a < b for a, b in zip(lrs[:99], lrs[1:100]))
    assert all(a >= b - 1e-12 for a, b in zip(lrs[99:], lrs[100:]))  # then only down (to rounding)
    assert lrs[-1] < 1e-6
    assert compose_train(["model=transformer", "scheduler.warmup_steps=0"]).scheduler.warmup_steps == 0
    assert compose_train(["model=mlp"]).scheduler.warmup_steps == 0  # only the transformer's job warms up


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_compose(compose_train, experiment: str) -> None:
    from linzoo.run.validation import check_train_config

    cfg = compose_train([f"experiment={experiment}"])
    OmegaConf.to_container(cfg, resolve=True)
    check_train_config(cfg)  # what train() checks first: a recipe must pass its own rules
    instantiate(cfg.model)


@pytest.mark.parametrize("debug", DEBUGS)
@pytest.mark.parametrize("trainer", TRAINERS)
def test_trainer_and_debug_compose(compose_train, trainer: str, debug: str) -> None:
    cfg = compose_train([f"trainer={trainer}", f"debug={debug}"])
    # debug comes last in train.yaml's defaults: its trainer settings win over the trainer file's.
    for key, value in OmegaConf.load(CONFIGS / "debug" / f"{debug}.yaml").get("trainer", {}).items():
        assert cfg.trainer[key] == value, (trainer, debug, key)


@pytest.mark.parametrize("logger", ["csv", "tensorboard", "[csv,tensorboard]"])
@pytest.mark.parametrize("callbacks", ["default", "early_stopping", "role_stats", "none"])
def test_logger_and_callbacks_instantiate(compose_train, tmp_path, logger: str, callbacks: str) -> None:
    from linzoo.run.trainer import instantiate_all

    cfg = compose_train([f"logger={logger}", f"callbacks={callbacks}"], output_dir=tmp_path)
    assert len(instantiate_all(cfg.logger)) == logger.count(",") + 1
    names = {type(c).__name__ for c in instantiate_all(cfg.get("callbacks"))}
    assert ("EarlyStopping" in names) == (callbacks == "early_stopping")
    assert ("ModelCheckpoint" in names) == (callbacks != "none")
    assert ("RoleStats" in names) == (callbacks == "role_stats")


def test_eval_config_composes(compose_eval, tmp_path) -> None:
    cfg = compose_eval([f"ckpt_path={tmp_path / 'x.ckpt'}"])
    assert cfg.trainer.precision is None


def test_the_written_out_schemas_match_the_classes_signatures() -> None:
    """Task and data schemas are written out in linzoo/run/schemas.py (no Lightning import before a
    config error); they must equal what the classes' keyword arguments give."""
    from dataclasses import fields

    from linzoo.data import ImageFolderDataModule, MNISTDataModule
    from linzoo.run.schemas import TASK_SCHEMAS, DataModuleConfig, ImageFolderDataModuleConfig, schema_from_signature
    from linzoo.tasks import Autoencoding, Classifier, LanguageModeling

    classes = {"classifier": Classifier, "autoencoding": Autoencoding, "language_modeling": LanguageModeling}
    for written, cls in [
        *((TASK_SCHEMAS[name], cls) for name, cls in classes.items()),
        (DataModuleConfig, MNISTDataModule),
        (ImageFolderDataModuleConfig, ImageFolderDataModule),
    ]:
        derived = schema_from_signature(cls)
        as_tuples = [[(f.name, str(f.type), f.default) for f in fields(schema)] for schema in (written, derived)]
        assert sorted(as_tuples[0]) == sorted(as_tuples[1]), cls.__name__
