"""Every search space in ``search_spaces/``: valid for NNI, and every value in it a valid trial config.

A space's keys are config field names (``mat.spec.config.searchable_keys``); every combination of its choices
must build a config through ``apply_overrides``, the same merge a trial runs. The paper's tables and the
authors' released runs are written out here once more, as the oracle the files are checked against.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
from nni.common.hpo_utils.validation import validate_search_space

from mat.cli import parse_cli
from mat.spec.config import RunArgs, TrainArgs, TrialConfig, apply_overrides, searchable_keys
from mat.spec.methods import METHOD_ARGS

SPACES_DIR = Path(__file__).resolve().parents[1] / "search_spaces"
SPACES = sorted(SPACES_DIR.glob("*.json"))
BASELINES = ("vanilla", "freelb", "smart", "r3f", "salt")


def method_of(space: Path) -> str:
    """The method a space is for: the baselines' spaces are named after them, all others are MAT's."""
    return space.stem if space.stem in BASELINES else "mat"


def load(name: str) -> dict[str, Any]:
    return json.loads((SPACES_DIR / name).read_text())


def choices(space: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: v["_value"] for k, v in space.items()}


def base_config(method: str) -> TrialConfig:
    return TrialConfig(run=RunArgs(method=method), train=TrainArgs(), method=METHOD_ARGS[method]())


def test_there_are_spaces() -> None:
    names = {p.name for p in SPACES}
    assert {"quickstart.json", "mat_paper.json", "ablation_k.json", "ablation_lambda.json", "seeds.json"} <= names
    assert {f"{b}.json" for b in BASELINES} <= names
    assert len([n for n in names if n.startswith("preset_")]) == 6


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_nni_accepts_the_space(path: Path) -> None:
    space = json.loads(path.read_text())
    validate_search_space(space, raise_exception=True)  # NNI's own check (no comment keys allowed)
    assert space, "empty search space"


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_keys_are_searchable_fields(path: Path) -> None:
    method = method_of(path)
    unknown = set(json.loads(path.read_text())) - set(searchable_keys(method))
    assert not unknown, f"{path.name}: {sorted(unknown)} are not searchable for --method {method}"


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_every_combination_builds_a_valid_config(path: Path) -> None:
    space = json.loads(path.read_text())
    assert all(spec["_type"] == "choice" for spec in space.values()), "only choice spaces here; extend this test for others"
    method, values = method_of(path), choices(space)
    base = base_config(method)
    for combo in itertools.product(*values.values()):
        params = dict(zip(values, combo))
        cfg = apply_overrides(base, params)  # raises on a bad key or value
        resolved = cfg.params()
        for key, value in params.items():  # the merge kept every value (aliases set all their targets)
            targets = {"sampling_times": ("sampling_times_delta", "sampling_times_theta"), "beta": ("beta_s", "beta_p")}.get(key, (key,))
            for t in targets:
                assert resolved[t] == value, f"{path.name}: {key}={value!r} became {t}={resolved[t]!r}"


def nni_config(method: str, params: dict[str, Any]) -> TrialConfig:
    """The config a trial runs with under NNI: flags parsed, run settings replaced, NNI's parameters merged
    (the sequence of ``trials/mat_trial.py``)."""
    cfg = parse_cli(["--task", "cola", "--method", method])
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, output_dir="nni-out", trial_id="t"))
    return apply_overrides(cfg, params)


# (clipping, decay scope) per method, and the decay: the authors' torch defaults per MAT sampler
CLIP_AND_SCOPE = {"mat": (0.0, "all"), "vanilla": (1.0, "no_bias_norm"), "freelb": (1.0, "no_bias_norm"), "smart": (1.0, "no_bias_norm"), "r3f": (0.0, "no_bias_norm"),
                  "salt": (1.0, "no_bias_norm")}
MAT_DECAY = {"adam": 0.01, "sgld": 0.0, "rmsprop": 0.0}


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_every_space_resolves_to_its_reference_settings(path: Path) -> None:
    """Through the NNI merge: MAT's spaces (the six presets, mat_paper.json, seeds, ablations) never clip and
    decay as the authors' optimizer does for the sampler; the baselines keep their references' settings."""
    method, values = method_of(path), choices(json.loads(path.read_text()))
    for combo in itertools.product(*values.values()):
        cfg = nni_config(method, dict(zip(values, combo)))
        p = cfg.params()
        assert (p["max_grad_norm"], p["weight_decay_scope"]) == CLIP_AND_SCOPE[method], (path.name, combo)
        # a rung (components.json) may switch to vanilla or r3f: they keep MAT's resolved settings (Adam's decay)
        expected = MAT_DECAY[p.get("sampler", "adam")] if method == "mat" else 0.01
        assert p["weight_decay"] == expected, (path.name, combo)
        if path.stem.startswith("preset_"):
            assert p["learning_rate"] == 1e-5 and p["sampler"] == "adam" and p["weight_decay"] == 0.01


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_each_space_has_its_sources_written_down(path: Path) -> None:
    assert f"`{path.name}`" in (SPACES_DIR / "SOURCES.md").read_text(), f"{path.name} is not described in search_spaces/SOURCES.md"


def test_mat_paper_is_table_7() -> None:
    assert choices(load("mat_paper.json")) == {
        "sampling_times": [5, 10, 15, 20, 30],
        "sampling_step_theta": [1e-5, 3e-5, 5e-5],
        "beta": [0.1, 0.3, 0.5, 0.7, 0.9],
        "lambda_s": [0.1, 1, 2, 3, 4, 5],
        "sampler": ["sgld", "rmsprop", "adam"],
        "batch_size": [8, 16, 32, 64],
    }


def test_beta_is_one_beta_for_both_averages() -> None:
    """The paper has one beta (Algorithm 2, lines 5, 10 and 12); the authors' runs always set beta_s = beta_p."""
    cfg = apply_overrides(base_config("mat"), {"beta": 0.7})
    assert (cfg.method.beta_s, cfg.method.beta_p) == (0.7, 0.7)


@pytest.mark.parametrize("name,varied,values", [("ablation_k.json", "sampling_times", [1, 5, 10, 20, 30, 50]), ("ablation_lambda.json", "lambda_s", [0.1, 1, 3, 5, 10, 50])])
def test_ablations_vary_one_thing(name: str, varied: str, values: list[float]) -> None:
    space = choices(load(name))
    assert space[varied] == values
    assert all(len(v) == 1 for k, v in space.items() if k != varied), "everything else pinned"
    # The two ablations differ only in what they vary: the rest is the same fixed setting.
    other = choices(load("ablation_lambda.json" if name == "ablation_k.json" else "ablation_k.json"))
    assert {k: v for k, v in space.items() if k not in ("sampling_times", "lambda_s")} == {
        k: v for k, v in other.items() if k not in ("sampling_times", "lambda_s")
    }


# The authors' BEST_LOGs (Charles-Zhong/MAT): epochs, batch, K_theta, K_delta, noise ratio, lambda, beta_s, beta_p.
RELEASED = {
    "bert-base_cola": (20, 64, 10, 5, 0.2, 3, 0.3, 0.3),
    "bert-base_sst2": (5, 32, 10, 5, 0.1, 3, 0.3, 0.3),
    "bert-base_qnli": (3, 8, 10, 5, 0.2, 1, 0.3, 0.3),
    "bert-base_qqp": (3, 32, 10, 5, 0.1, 1, 0.3, 0.3),
    "roberta-large_sst2": (5, 32, 5, 5, 0.2, 1, 0.5, 0.5),
    "roberta-large_qqp": (3, 8, 5, 5, 0.1, 1, 0.3, 0.3),
}
RELEASED_COMMON = {
    "sampler": "adam", "seed": 42, "lr_scheduler_type": "linear", "warmup_ratio": 0.1, "adv_init_type": "randn",
    "adv_init_epsilon": 1e-5, "adv_max_norm": 1e-5, "sampling_step_theta": 1e-5, "sampling_step_delta": 1e-3,
}
FIELDS = ("epochs", "batch_size", "sampling_times_theta", "sampling_times_delta", "sampling_noise_ratio", "lambda_s", "beta_s", "beta_p")


@pytest.mark.parametrize("run", sorted(RELEASED))
def test_presets_are_the_released_runs(run: str) -> None:
    space = choices(load(f"preset_{run}.json"))
    assert all(len(v) == 1 for v in space.values()), "a preset is one config"
    got = {k: v[0] for k, v in space.items()}
    assert got == {**dict(zip(FIELDS, RELEASED[run])), **RELEASED_COMMON}
    cfg = apply_overrides(base_config("mat"), got)
    assert math.isclose(cfg.train.learning_rate, 1e-5)


def test_seeds_is_one_config_over_five_seeds() -> None:
    space, cola = choices(load("seeds.json")), choices(load("preset_bert-base_cola.json"))
    assert len(set(space["seed"])) == 5
    assert {k: v for k, v in space.items() if k != "seed"} == {k: v for k, v in cola.items() if k != "seed"}


def test_quickstart_is_small() -> None:
    space = choices(load("quickstart.json"))
    assert math.prod(len(v) for v in space.values()) <= 8
    assert max(space["sampling_times"]) <= 2, "K steps multiply the CPU time"
