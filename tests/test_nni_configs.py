"""Every experiment config in ``nni_configs/``: accepted by NNI's own config classes, and runnable by us.

Checked without starting anything: the YAML loads into ``nni.experiment.config.ExperimentConfig`` and
passes its validation; tuner and assessor arguments pass the algorithms' own validators; the search space
file exists and its keys suit the ``--method`` of the trial command; every trial command is
``<python> trials/mat_trial.py <flags>`` whose flags our CLI parses into a valid config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from nni.experiment.config import ExperimentConfig
from nni.tools.package_utils.tuner_factory import create_validator_instance, get_builtin_module_class_name

from mat.cli import REQUIRED, parse_cli
from mat.spec.config import TrialConfig, apply_overrides, searchable_keys
from mat.evaluation import eval_steps
from mat.optim import warmup_steps

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "nni_configs").glob("*.yml"))
SCALE_OUT = ("remote.yml", "kubeflow.yml", "frameworkcontroller.yml", "aml.yml")
ids = [p.name for p in CONFIGS]


def raw(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def trial_commands(cfg: dict[str, Any]) -> list[str]:
    """The trial command(s): top level, or per role on Kubernetes."""
    ts = cfg["trainingService"]
    if ts["platform"] == "kubeflow":
        return [ts["worker"]["command"]]
    if ts["platform"] == "frameworkcontroller":
        return [role["command"] for role in ts["taskRoles"]]
    return [cfg["trialCommand"]]


def trial_args(command: str) -> tuple[str, list[str]]:
    """``(interpreter, flags)`` of ``<python> trials/mat_trial.py <flags>``."""
    words = shlex.split(command)
    assert len(words) >= 2 and words[1] == "trials/mat_trial.py", f"not '<python> trials/mat_trial.py ...': {command}"
    assert Path(words[0]).name.startswith("python"), f"not a python interpreter: {words[0]}"
    return words[0], words[2:]


def check_algorithm(kind: str, spec: dict[str, Any], config_dir: Path) -> None:
    """A tuner/assessor NNI can build with these arguments: built-in (its validator, else its signature) or
    customized (``codeDirectory`` + ``className``, a subclass of NNI's base class)."""
    import importlib
    import inspect

    args = spec.get("classArgs", {})
    if "className" in spec:
        code_dir = (config_dir / spec["codeDirectory"]).resolve()
        module_name, cls_name = spec["className"].rsplit(".", 1)
        assert (code_dir / f"{module_name}.py").is_file(), f"{spec['className']} is not in {code_dir}"
        sys.path.insert(0, str(code_dir))
        try:
            cls = getattr(importlib.import_module(module_name), cls_name)
        finally:
            sys.path.remove(str(code_dir))
        from nni.assessor import Assessor
        from nni.tuner import Tuner

        assert issubclass(cls, Tuner if kind == "tuners" else Assessor)
    else:
        module, name = get_builtin_module_class_name(kind, spec["name"])
        assert module, f"{spec['name']} is not a built-in NNI {kind[:-1]}"
        validator = create_validator_instance(kind, spec["name"])
        if validator is not None:
            validator.validate_class_args(**args)
            return
        cls = getattr(importlib.import_module(module), name)  # e.g. GridSearch has no validator
    inspect.signature(cls).bind(**args)


def test_there_are_configs() -> None:
    names = set(ids)
    assert {"quickstart.yml", *SCALE_OUT} <= names
    for model in ("bert-base", "roberta-large"):
        assert {f"{model}_{t}.yml" for t in ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")} <= names
        assert f"{model}_qnli_medianstop.yml" in names


@pytest.mark.parametrize("path", CONFIGS, ids=ids)
def test_nni_validates_the_config(path: Path, tmp_path: Path) -> None:
    config = ExperimentConfig.load(str(path))  # unknown or misspelled fields raise here
    if config.training_service.platform == "remote":  # the template's key file is the user's; NNI checks it exists
        key = tmp_path / "id_ed25519"
        key.write_text("not a key\n")
        for machine in config.training_service.machine_list:
            machine.ssh_key_file = str(key)
    canonical = config.json()  # canonicalise + validate, as nnictl does before it starts anything
    assert canonical["searchSpace"], "the search space file was not loaded"


@pytest.mark.parametrize("path", CONFIGS, ids=ids)
def test_algorithms_and_their_arguments(path: Path) -> None:
    cfg = raw(path)
    assert cfg["tuner"]["classArgs"]["optimize_mode"] == "maximize", "our metrics are scores: higher is better"
    check_algorithm("tuners", cfg["tuner"], path.parent)
    if "assessor" in cfg:
        assert cfg["assessor"]["classArgs"]["optimize_mode"] == "maximize"
        check_algorithm("assessors", cfg["assessor"], path.parent)
    assert cfg["tuner"].get("name") not in ("Anneal", "BOHB", "TPE"), (
        "Anneal and BOHB break on numpy 2 / ConfigSpace 1; plain TPE can hang at trialConcurrency > 1: use safe_tpe (docs/nni.md)"
    )


@pytest.mark.parametrize("path", CONFIGS, ids=ids)
def test_trial_commands_are_valid_trial_flags(path: Path) -> None:
    cfg = raw(path)
    space_file = (path.parent / cfg["searchSpaceFile"]).resolve()
    assert space_file.is_file(), f"searchSpaceFile {cfg['searchSpaceFile']} does not exist"
    assert (path.parent / cfg["trialCodeDirectory"]).resolve() == REPO, "trials run from the repo root"
    for command in trial_commands(cfg):
        _, flags = trial_args(command)
        try:
            trial = parse_cli(flags, required=REQUIRED)  # the trial script's own rule: --task and --model given
        except (SystemExit, ValueError) as e:  # argparse exits on a bad value or a missing flag
            pytest.fail(f"{path.name}: the trial rejects its flags ({e!r}): {command}")
        names = {f.name for group in (trial.run, trial.train, trial.method) for f in dataclasses.fields(group)}
        abbreviated = [w for w in flags if w.startswith("--") and w[2:].split("=")[0] not in names]
        assert not abbreviated, f"{abbreviated}: not field names (argparse would take a prefix as an abbreviation)"
        assert "--output_dir" not in flags, "under NNI the record goes to $NNI_OUTPUT_DIR"
        unknown = set(json.loads(space_file.read_text())) - set(searchable_keys(trial.run.method))
        assert not unknown, f"{space_file.name} has keys {sorted(unknown)} that --method {trial.run.method} does not take"


@pytest.mark.parametrize("path", [p for p in CONFIGS if raw(p)["trainingService"]["platform"] == "local"], ids=lambda p: p.name)
def test_local_configs_use_the_device_they_ask_for(path: Path) -> None:
    cfg = raw(path)
    trial = parse_cli(trial_args(cfg["trialCommand"])[1])
    if cfg.get("trialGpuNumber"):
        assert trial.run.device == "cuda", "a GPU experiment should fail loudly without a GPU, not train on CPU"
        assert isinstance(cfg["trainingService"].get("useActiveGpu"), bool)
    else:
        assert trial.run.device == "cpu"


def test_quickstart_is_small_and_local() -> None:
    cfg = raw(REPO / "nni_configs" / "quickstart.yml")
    assert cfg["trainingService"] == {"platform": "local"} and "trialGpuNumber" not in cfg
    assert cfg["maxTrialNumber"] <= 4 and cfg["trialConcurrency"] == 2
    _, flags = trial_args(cfg["trialCommand"])
    trial = parse_cli(flags)
    # sized to learn (docs/speed.md: ~5 minutes on 2 cores, best dev accuracy > 75%) and no larger
    assert trial.run.model == "minilm" and trial.run.max_length <= 64 and trial.run.max_train_samples <= 2000
    assert trial.run.max_eval_samples is None, "the whole dev set: accuracy on 256 sentences is too noisy to read"
    assert trial.run.group_by_length, "length-grouped batches: less padding, a shorter quickstart"
    assert trial.run.data_dir is None, "data from $MAT_DATA_DIR or the Hub, not a path of this machine"


def test_remote_template_calls_the_interpreter_by_absolute_path() -> None:
    cfg = raw(REPO / "nni_configs" / "remote.yml")
    python, _ = trial_args(cfg["trialCommand"])
    assert python.startswith("/"), "a .bashrc on the worker can put another python first (pyenv, conda)"
    for machine in cfg["trainingService"]["machineList"]:
        assert machine["pythonPath"] == str(Path(python).parent), "pythonPath is the bin folder of that interpreter"


@pytest.mark.parametrize("path", CONFIGS, ids=ids)
def test_each_config_is_documented(path: Path) -> None:
    assert path.name in (REPO / "docs" / "nni.md").read_text(), f"docs/nni.md does not mention {path.name}"


def test_safe_tpe_survives_an_end_event_with_another_trials_id() -> None:
    """NNI 3.0 (#5726): trial A ran parameters 1 but its end event says 0; B then reports 0. Plain TPE raises."""
    sys.path.insert(0, str(REPO / "trials"))
    try:
        from safe_tpe import SafeTpeTuner
    finally:
        sys.path.remove(str(REPO / "trials"))
    from nni.algorithms.hpo.tpe_tuner import TpeTuner

    space = {"x": {"_type": "choice", "_value": [1, 2, 3]}}
    for cls in (TpeTuner, SafeTpeTuner):
        tuner = cls(optimize_mode="maximize")
        tuner.update_search_space(space)
        p0, p1 = tuner.generate_parameters(0), tuner.generate_parameters(1)
        tuner.receive_trial_result(1, p1, 1.0)  # A's final result: the right id
        tuner.trial_end(0, True)  # A's end event: B's id
        if cls is TpeTuner:
            with pytest.raises(KeyError):  # the dispatcher thread dies on this: the experiment hangs
                tuner.receive_trial_result(0, p0, 2.0)
        else:
            tuner.receive_trial_result(0, p0, 2.0)
            assert sorted(r.loss for records in tuner._history.values() for r in records) == [-2.0, -1.0]


# ------------------------------------------------------------------------------ the authors' released runs

# BEST_LOGs of Charles-Zhong/MAT: EVAL_TIMES, then the iterations (0-based) of the first and the last logged
# evaluation, and how many there are.
AUTHORS_LOGS = {
    "bert-base_cola": (5, 26, 2678, 103),
    "bert-base_sst2": (10, 210, 10500, 50),
    "bert-base_qnli": (50, 261, 39150, 150),
    "bert-base_qqp": (50, 227, 34050, 150),
    "roberta-large_sst2": (10, 210, 10500, 50),
    "roberta-large_qqp": (50, 909, 136350, 150),
}
TRAIN_EXAMPLES = {"cola": 8551, "sst2": 67349, "qnli": 104743, "qqp": 363846}  # the paper's Table 6
FIRST_METRIC = {"cola": "mcc", "sst2": "accuracy", "qnli": "accuracy", "qqp": "accuracy"}  # first in their metric dict
AUTHORS_RUNS = {f"preset_{run}.yml": run for run in AUTHORS_LOGS} | {"seeds.yml": "bert-base_cola"}


def resolved(path: Path) -> TrialConfig:
    """The config a trial of this experiment runs: its flags, then the first value of each search-space key."""
    cfg = raw(path)
    space = json.loads((path.parent / cfg["searchSpaceFile"]).read_text())
    return apply_overrides(parse_cli(trial_args(cfg["trialCommand"])[1]), {k: v["_value"][0] for k, v in space.items()})


@pytest.mark.parametrize("name", sorted(AUTHORS_RUNS))
def test_the_released_runs_evaluate_select_and_warm_up_as_the_authors(name: str) -> None:
    """Each preset (and the seeds study of the CoLA preset) resolves to the authors' cadence, selection metric,
    regression reduction and warm-up: its evaluations fall where their log has them, at full data size."""
    trial = resolved(REPO / "nni_configs" / name)
    run, train, method = trial.run, trial.train, trial.method
    assert (run.eval_schedule, run.select_metric) == ("authors", FIRST_METRIC[run.task])
    assert (method.consistency_reduction, train.warmup_rounding) == ("sum", "none")
    times, first, last, count = AUTHORS_LOGS[AUTHORS_RUNS[name]]
    batches = math.ceil(TRAIN_EXAMPLES[run.task] / train.batch_size)
    total = int(train.epochs) * batches
    steps = sorted(eval_steps(batches, total, run.eval_times, run.eval_schedule))
    assert run.eval_times == times and (steps[0] - 1, steps[-1] - 1, len(steps)) == (first, last, count)
    assert warmup_steps(train.warmup_ratio, total, train.warmup_rounding) == train.warmup_ratio * total  # args.warm_up * total_iterations


def test_sst2_warms_up_over_1052_5_steps() -> None:
    train = resolved(REPO / "nni_configs" / "preset_bert-base_sst2.yml").train
    assert warmup_steps(train.warmup_ratio, 5 * 2105, train.warmup_rounding) == 1052.5
    assert warmup_steps(train.warmup_ratio, 5 * 2105) == 1052  # the default, whole steps


# ---------------------------------------------------------------------------- comparisons of methods


def test_configs_that_compare_methods_pin_one_precision() -> None:
    """Under ``--precision auto`` on CUDA, vanilla and FreeLB would run in bf16 and MAT, SMART and R3F in fp32.
    Configs that compare methods (several ``--method`` on one task and model, or a component ladder whose rungs
    switch methods) name one precision for every arm."""
    groups: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
    for path in CONFIGS:
        cfg = raw(path)
        if cfg["trainingService"]["platform"] != "local":
            continue
        trial = parse_cli(trial_args(cfg["trialCommand"])[1])
        if "rung" in json.loads((path.parent / cfg["searchSpaceFile"]).read_text()):  # a ladder compares within itself
            assert trial.run.precision != "auto", f"{path.name}: the ladder's rungs switch methods"
            continue
        groups.setdefault((trial.run.task, trial.run.model), {})[path.name] = (trial.run.method, trial.run.precision)
    compared = {k: arms for k, arms in groups.items() if len({m for m, _ in arms.values()}) > 1}
    assert ("rte", "bert-base-uncased") in compared
    for (task, model), arms in compared.items():
        precisions = {p for _, p in arms.values()}
        assert len(precisions) == 1 and "auto" not in precisions, f"{task}/{model}: arms at {arms}"
