"""The component ladder (issue 14): the ``rung`` parameter through the NNI merge, refusals with reasons, and
what each rung's trial really trains with and costs. The configs are the CPU study's own."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from mat.cli import parse_cli
from mat.provenance import resolve
from mat.spec.config import TrialConfig, apply_overrides
from mat.spec.ladder import AUTHORS_DELTA, LADDER, RUNG_NAMES, RUNGS, VISIBLE_DELTA, get_rung, previous_rung
from mat.spec.methods import MATArgs, R3FArgs, VanillaArgs
from mat.spec.records import read_record
from mat.train import fit
from tests.helpers import REPO, make_tiny_setup
from trials.search_space import search_space_problems

CPU_CONFIGS = sorted((REPO / "nni_configs").glob("components_*.yml"))
SPACE = json.loads((REPO / "search_spaces" / "components.json").read_text())
SHARED_TRAIN = ("learning_rate", "weight_decay", "weight_decay_scope", "max_grad_norm", "epochs", "batch_size",
                "warmup_ratio", "lr_scheduler_type", "adam_epsilon")


def base(path: Path = REPO / "nni_configs" / "components_cola.yml") -> TrialConfig:
    """The config a components trial starts from: its trialCommand's flags, as under NNI."""
    words = shlex.split(yaml.safe_load(path.read_text())["trialCommand"])
    cfg = parse_cli(words[2:])
    return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, output_dir="nni-out", trial_id="t"))


def test_the_rungs_are_named_as_the_issue_names_them() -> None:
    assert RUNG_NAMES == ("vanilla", "inner_steps", "sampling", "dropout_consistency", "mat", "mat_visible_delta", "r3f")
    assert SPACE["rung"]["_value"] == list(RUNG_NAMES) and SPACE["seed"]["_value"] == [1, 2, 3, 4, 5]
    assert [previous_rung(r) for r in RUNG_NAMES] == [None, *LADDER[:-1], "vanilla"]


def test_each_rung_adds_its_own_part() -> None:
    cfg = base()
    got = {r: apply_overrides(cfg, {"rung": r, "seed": 3}) for r in RUNG_NAMES}
    assert {r: c.run.method for r, c in got.items()} == {r.name: r.method for r in RUNGS}
    assert all(c.params()["rung"] == r and c.train.seed == 3 for r, c in got.items())
    assert isinstance(got["vanilla"].method, VanillaArgs)
    assert got["r3f"].method == R3FArgs(noise_type="uniform", eps=1e-5, r3f_lambda=cfg.method.lambda_s)
    m = {r: c.method for r, c in got.items() if isinstance(c.method, MATArgs)}
    shared = cfg.method
    assert (m["inner_steps"].sampling_times_theta, m["inner_steps"].lambda_s, m["inner_steps"].sampling_noise_ratio,
            m["inner_steps"].beta_s, m["inner_steps"].beta_p, m["inner_steps"].sampling_times_delta) == (2, 0, 0, 0, 0, 0)
    assert dataclasses.replace(m["sampling"], lambda_s=shared.lambda_s, sampling_times_delta=shared.sampling_times_delta) == shared
    assert (m["dropout_consistency"].sampling_times_delta, m["dropout_consistency"].adv_init_epsilon) == (0, 0.0)
    assert m["dropout_consistency"].lambda_s == shared.lambda_s > 0
    for rung, delta in (("mat", AUTHORS_DELTA), ("mat_visible_delta", VISIBLE_DELTA)):
        assert {k: getattr(m[rung], k) for k in delta} == dict(delta)
        assert dataclasses.replace(m[rung], **{k: getattr(shared, k) for k in delta}) == shared, "only δ's own fields differ"


@pytest.mark.parametrize("path", CPU_CONFIGS, ids=lambda p: p.name)
def test_every_rung_shares_the_training_settings(path: Path) -> None:
    """One trial command, seven rungs: learning rate, decay and its scope, clipping, schedule, epochs, batch."""
    cfg = base(path)
    trains = {r: apply_overrides(cfg, {"rung": r, "seed": 1}).train for r in RUNG_NAMES}
    for name in SHARED_TRAIN:
        assert len({getattr(t, name) for t in trains.values()}) == 1, name
    assert trains["vanilla"].max_grad_norm == 0.0 and trains["vanilla"].weight_decay_scope == "all"


@pytest.mark.parametrize("path", CPU_CONFIGS, ids=lambda p: p.name)
def test_the_components_space_passes_the_search_space_check(path: Path) -> None:
    assert search_space_problems(SPACE, "mat") == []
    cfg = base(path)
    for rung, seed in itertools.product(*(v["_value"] for v in SPACE.values())):
        apply_overrides(cfg, {"rung": rung, "seed": seed})


def test_an_unknown_rung_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown rung 'matt'\. Did you mean 'mat'\? Valid rungs: vanilla, inner_steps, "):
        apply_overrides(base(), {"rung": "matt"})
    with pytest.raises(ValueError, match="rung must be a string"):
        get_rung(3)


@pytest.mark.parametrize("params,reason", [
    ({"rung": "dropout_consistency", "sampling_times_delta": 2}, r"sets sampling_times_delta = 0 \(δ ≡ 0 .*also set sampling_times_delta = 2"),
    ({"rung": "dropout_consistency", "sampling_times": 2}, r"sets sampling_times_delta = 0"),
    ({"rung": "inner_steps", "lambda_s": 3}, r"sets lambda_s = 0\.0 .*also set lambda_s = 3"),
    ({"rung": "mat", "adv_max_norm": 1e-3}, r"rung 'mat' sets adv_max_norm = 1e-05"),
    ({"rung": "vanilla", "sampling_times_theta": 2}, r"rung 'vanilla' sets sampling_times_theta = 1"),
    ({"rung": "inner_steps", "sampling_times_theta": 1}, r"needs sampling_times_theta >= 2 \(got 1\): K_θ = 1 is one optimizer step"),
    ({"rung": "sampling", "sampling_noise_ratio": 0}, r"needs sampling_noise_ratio > 0\.0"),
    ({"rung": "mat", "lambda_s": 0}, r"needs lambda_s > 0\.0"),
    ({"rung": "r3f", "sampler": "sgld"}, r"needs sampler == adam .*trains with AdamW"),
])
def test_a_rung_with_a_contradicting_parameter_is_refused_with_the_reason(params: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        apply_overrides(base(), params)


def test_a_rung_needs_mat_as_the_base_method() -> None:
    with pytest.raises(ValueError, match="needs --method mat in the trial command"):
        apply_overrides(parse_cli(["--method", "vanilla"]), {"rung": "vanilla"})
    k_delta_zero = apply_overrides(parse_cli(["--method", "mat", "--sampling_times_delta", "0"]), {})
    with pytest.raises(ValueError, match="needs sampling_times_delta >= 1"):
        apply_overrides(k_delta_zero, {"rung": "mat"})


# ------------------------------------------------------------------------------------ real (tiny) trials

# training's forward, backward passes per step at K_δ = K_θ = 2 (a 2B forward counts 2; the δ phase's input
# gradients count as backward passes); --diagnostics adds one forward per step to the MAT-method rungs, counted
# apart; optimizer updates per step: K_θ for those, one for vanilla and r3f
PASSES = {"vanilla": (1, 1), "inner_steps": (2, 2), "sampling": (2, 2), "dropout_consistency": (5, 4),
          "mat": (7, 6), "mat_visible_delta": (7, 6), "r3f": (2, 2)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_tiny_setup(tmp_path_factory.mktemp("ladder"), n_train=16, n_dev=8)


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("rung", RUNG_NAMES)
def test_a_rung_trial_records_its_rung_and_its_compute(tiny: dict[str, Path], tmp_path: Path, rung: str) -> None:
    flags = shlex.split(yaml.safe_load((REPO / "nni_configs" / "components_cola.yml").read_text())["trialCommand"])[2:]
    flags = [w for w in flags if w not in ("--group_by_length",)]
    cfg = parse_cli(flags + ["--task", "sst2", "--model", str(tiny["model"]), "--data_dir", str(tiny["data"]),
                             "--epochs", "1", "--batch_size", "8", "--max_length", "32", "--output_dir", str(tmp_path)])
    fit(resolve(apply_overrides(cfg, {"rung": rung, "seed": 2})), show_progress=False)
    rec = read_record(tmp_path / "trial.json")
    assert (rec.status, rec.params["rung"], rec.method, rec.seed) == ("SUCCEEDED", rung, get_rung(rung).method, 2)
    steps = rec.cost["optimizer_steps"]
    assert (rec.cost["passes"]["forward"] / steps, rec.cost["passes"]["backward"] / steps) == PASSES[rung]
    mat_step = get_rung(rung).method == "mat"
    assert rec.cost["diagnostic_passes"] == {"forward": float(steps) if mat_step else 0.0, "backward": 0.0}
    assert rec.cost["optimizer_updates"] == steps * (2 if mat_step else 1)
    tele = rec.evals[0].telemetry  # the first interval holds step 1, where the parameter-wide norms are measured
    assert tele["update_norm"] > 0 and tele["grad_norm"] > 0
    if get_rung(rung).method == "mat":
        assert tele["delta_own_kl"] == 0.0 if rung in ("inner_steps", "sampling", "dropout_consistency") else tele["delta_own_kl"] > 0
        assert (tele["theta_noise_norm"] > 0) == (rung != "inner_steps")
        assert tele["dropout_kl"] > 0
