"""Config: frozen dataclasses, CLI flags named as fields, the NNI merge and its errors."""

from __future__ import annotations

import dataclasses

import pytest

from mat.cli import parse_cli
from mat.config import MATArgs, TrainArgs, apply_overrides, searchable_keys


def _mat() -> object:
    return parse_cli(["--task", "rte", "--method", "mat"])


def test_cli_flags_are_the_field_names() -> None:
    cfg = parse_cli(["--task", "sst2", "--method", "mat", "--sampling_times_delta", "2", "--beta_s", "0.5", "--epochs", "1", "--predict"])
    assert cfg.run.task == "sst2" and cfg.run.predict is True
    assert cfg.method.sampling_times_delta == 2 and cfg.method.beta_s == 0.5 and cfg.train.epochs == 1.0
    assert cfg.train.learning_rate == 2e-5  # resolved default


def test_configs_are_frozen() -> None:
    cfg = _mat()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.method.lambda_s = 3.0  # type: ignore[misc]


def test_sampling_step_theta_is_the_learning_rate() -> None:
    cfg = parse_cli(["--method", "mat", "--sampling_step_theta", "3e-5"])
    assert cfg.train.learning_rate == 3e-5
    merged = apply_overrides(cfg, {"learning_rate": 5e-5})
    assert merged.train.learning_rate == 5e-5 and merged.method.sampling_step_theta == 5e-5
    with pytest.raises(SystemExit):  # a usage error (exit 2) naming the disagreement: tests/test_bad_input.py
        parse_cli(["--method", "mat", "--learning_rate", "1e-5", "--sampling_step_theta", "3e-5"])
    with pytest.raises(ValueError, match="disagree"):
        apply_overrides(cfg, {"learning_rate": 1e-5, "sampling_step_theta": 2e-5})


def test_merge_coerces_and_expands_aliases() -> None:
    cfg = apply_overrides(_mat(), {"sampling_times": 5.0, "lambda_s": 2, "batch_size": 16.0, "sampler": "rmsprop"})
    assert (cfg.method.sampling_times_delta, cfg.method.sampling_times_theta) == (5, 5)
    assert isinstance(cfg.method.lambda_s, float) and cfg.method.lambda_s == 2.0
    assert cfg.train.batch_size == 16 and isinstance(cfg.train.batch_size, int)
    assert cfg.params()["sampler"] == "rmsprop" and "sampling_times" not in cfg.params()


@pytest.mark.parametrize(
    "params,message",
    [
        ({"lamda_s": 1.0}, r"unknown parameter 'lamda_s' for method mat\. Did you mean 'lambda_s'\? Valid keys: .*beta_p"),
        ({"sampling_times_delta": -1}, r"MATArgs\.sampling_times_delta=-1 is out of range: allowed \[0, 10000\]"),
        ({"beta_s": 1.5}, r"MATArgs\.beta_s=1\.5 is out of range: allowed \[0\.0, 1\.0\]"),
        ({"sampling_step_delta": -0.1}, r"sampling_step_delta=-0\.1 is out of range"),
        ({"sampler": "sgd"}, r"MATArgs\.sampler='sgd' is not allowed: choose one of \['sgld', 'rmsprop', 'adam'\]"),
        ({"lambda_s": "3"}, r"MATArgs\.lambda_s must be a number, got str '3'"),
        ({"sampling_times": 2.5}, r"must be an integer, got 2\.5"),
        ({"seed": True}, r"TrainArgs\.seed must be a number"),
        ({"learning_rate": float("nan")}, r"must be finite"),
    ],
)
def test_bad_parameters_name_the_field_and_the_allowed_values(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_overrides(_mat(), params)


def test_keys_of_another_method_are_unknown() -> None:
    cfg = parse_cli(["--method", "vanilla"])
    with pytest.raises(ValueError, match="unknown parameter 'lambda_s' for method vanilla"):
        apply_overrides(cfg, {"lambda_s": 1.0})
    assert "sampling_times" not in searchable_keys("vanilla")
    assert {"adv_steps", "adv_lr", "adv_init_mag"} <= set(searchable_keys("freelb"))


def test_dataclasses_validate_on_construction() -> None:
    with pytest.raises(ValueError, match=r"TrainArgs\.warmup_ratio=2 is out of range"):
        TrainArgs(warmup_ratio=2)
    with pytest.raises(ValueError, match="adv_init_type='gauss' is not allowed"):
        MATArgs(adv_init_type="gauss")
