"""Config: frozen dataclasses, CLI flags named as fields, the NNI merge and its errors."""

from __future__ import annotations

import dataclasses

import pytest

from mat.cli import parse_cli
from mat.spec.config import RunArgs, TrainArgs, TrialConfig, apply_overrides, searchable_keys
from mat.spec.methods import METHOD_ARGS, MATArgs


def _mat() -> TrialConfig:
    return parse_cli(["--task", "rte", "--method", "mat"])


def test_cli_flags_are_the_field_names() -> None:
    cfg = parse_cli(["--task", "sst2", "--method", "mat", "--sampling_times_delta", "2", "--beta_s", "0.5", "--epochs", "1", "--predict"])
    assert cfg.run.task == "sst2" and cfg.run.predict is True
    assert cfg.method.sampling_times_delta == 2 and cfg.method.beta_s == 0.5 and cfg.train.epochs == 1.0
    assert cfg.train.learning_rate == 1e-5  # resolved: MAT's default (the authors')


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
        ({"sampling_times_delta": -1}, r"^sampling_times_delta=-1 is out of range \[0, 10000\]$"),
        ({"beta_s": 1.5}, r"^beta_s=1\.5 is out of range \[0\.0, 1\.0\]$"),
        ({"sampling_step_delta": -0.1}, r"sampling_step_delta=-0\.1 is out of range"),
        ({"sampler": "sgd"}, r"^sampler='sgd' is not allowed: choose one of \['sgld', 'rmsprop', 'adam'\]$"),
        ({"lambda_s": "3"}, r"^lambda_s='3' must be a number, not a str$"),
        ({"sampling_times": 2.5}, r"sampling_times_\w+=2\.5 must be an integer"),
        ({"seed": True}, r"^seed=True must be a number"),
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
    with pytest.raises(ValueError, match=r"^warmup_ratio=2 is out of range"):
        TrainArgs(warmup_ratio=2)
    with pytest.raises(ValueError, match="adv_init_type='gauss' is not allowed"):
        MATArgs(adv_init_type="gauss")


# ------------------------------------------------------------------------------- per-method defaults

PER_METHOD = {  # method: (learning_rate, weight_decay, weight_decay_scope, max_grad_norm), each with its source
    "mat": (1e-5, 0.01, "all", 0.0),  # Charles-Zhong/MAT: optim(model.parameters(), lr=1e-5), no clipping
    "vanilla": (2e-5, 0.01, "no_bias_norm", 1.0),  # google-research/bert optimization.py
    "freelb": (2e-5, 0.01, "no_bias_norm", 1.0),  # run_glue_freelb.py --max_grad_norm 1.0
    "smart": (2e-5, 0.01, "no_bias_norm", 1.0),  # mt-dnn --global_grad_clipping 1.0
    "r3f": (2e-5, 0.01, "no_bias_norm", 0.0),  # fairseq examples/rxf --clip-norm 0.0
}


@pytest.mark.parametrize("method", sorted(PER_METHOD))
def test_train_defaults_are_per_method(method: str) -> None:
    cfg = parse_cli(["--method", method])
    got = tuple(cfg.params()[k] for k in ("learning_rate", "weight_decay", "weight_decay_scope", "max_grad_norm"))
    assert got == PER_METHOD[method]


@pytest.mark.parametrize("sampler,decay", [("adam", 0.01), ("sgld", 0.0), ("rmsprop", 0.0)])
def test_mat_decay_follows_the_sampler_through_every_path(sampler: str, decay: float) -> None:
    """The authors' torch defaults: AdamW decays 0.01, SGD and RMSprop not at all; the CLI, the NNI merge (also
    after the trial script's ``dataclasses.replace`` of the run settings) and a direct build all agree."""
    cli = parse_cli(["--method", "mat", "--sampler", sampler])
    replaced = dataclasses.replace(_mat(), run=dataclasses.replace(_mat().run, output_dir="x"))  # as trials/mat_trial.py
    merged = apply_overrides(replaced, {"sampler": sampler})
    direct = TrialConfig(run=RunArgs(method="mat"), train=TrainArgs(), method=MATArgs(sampler=sampler))
    for cfg in (cli, merged, direct):
        assert (cfg.train.weight_decay, cfg.train.weight_decay_scope, cfg.train.max_grad_norm) == (decay, "all", 0.0)


def test_a_given_value_wins_over_the_method_default() -> None:
    cfg = parse_cli(["--method", "mat", "--weight_decay", "0.05", "--max_grad_norm", "1", "--weight_decay_scope", "no_bias_norm"])
    merged = apply_overrides(cfg, {"sampler": "sgld"})  # given values are kept when the sampler changes
    assert (merged.train.weight_decay, merged.train.weight_decay_scope, merged.train.max_grad_norm) == (0.05, "no_bias_norm", 1.0)
    # a field changed after construction counts as given, also with the defaults recorded
    cfg2 = dataclasses.replace(_mat(), train=dataclasses.replace(_mat().train, weight_decay=0.2))
    assert cfg2.train.weight_decay == 0.2 and apply_overrides(cfg2, {"sampler": "sgld"}).train.weight_decay == 0.2


def test_bad_scope_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"weight_decay_scope='bias' is not allowed: choose one of \['all', 'no_bias_norm'\]"):
        apply_overrides(_mat(), {"weight_decay_scope": "bias"})


def test_every_method_resolves_every_per_method_field() -> None:
    for method, cls in METHOD_ARGS.items():
        cfg = TrialConfig(run=RunArgs(method=method), train=TrainArgs(), method=cls())
        assert all(v is not None for v in dataclasses.asdict(cfg.train).values()), method
