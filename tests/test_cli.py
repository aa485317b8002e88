"""The trial's command line as a new user meets it: other tools' flag names, required flags, errors that name
the flag as typed, and a ``--help`` grouped by concern with each default stated once and true to the code."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mat.cli import FLAG_ALIASES, REQUIRED, build_parser, parameter_key, parse_cli
from mat.spec.config import RunArgs, TrainArgs
from mat.spec.methods import METHOD_ARGS, MATArgs
from mat.provenance import default_output_dir
from tests.helpers import TRIAL_SCRIPT


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str], required: tuple[str, ...] = ()) -> str:
    with pytest.raises(SystemExit) as e:
        parse_cli(argv, required=required)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ") and "Traceback" not in err
    return err.splitlines()[-1]


# ------------------------------------------------------------------------------- other tools' names

RUN_GLUE = ["--task_name", "sst2", "--model_name_or_path", "bert-base-uncased", "--num_train_epochs", "2",
            "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "128", "--max_seq_length", "64",
            "--learning_rate", "3e-5", "--warmup_ratio", "0.06", "--weight_decay", "0.1", "--seed", "7", "--fp16",
            "--do_predict", "--save_steps", "500", "--dataloader_num_workers", "2", "--output_dir", "out",
            "--max_train_samples", "100", "--max_eval_samples", "50", "--lr_scheduler_type", "cosine", "--method", "vanilla"]


def test_a_run_glue_command_line_parses_to_the_same_settings() -> None:
    cfg = parse_cli(RUN_GLUE, required=REQUIRED)
    run, train = cfg.run, cfg.train
    assert (run.task, run.model, run.max_length, run.eval_batch_size, run.precision) == ("sst2", "bert-base-uncased", 64, 128, "fp16")
    assert (run.predict, run.checkpoint_every, run.num_workers, run.output_dir) == (True, 500, 2, "out")
    assert (run.max_train_samples, run.max_eval_samples) == (100, 50)
    assert (train.epochs, train.batch_size, train.learning_rate, train.warmup_ratio, train.weight_decay, train.seed) == (
        2.0, 8, 3e-5, 0.06, 0.1, 7)
    assert train.lr_scheduler_type == "cosine"
    assert parse_cli(["--bf16"]).run.precision == "bf16"


def test_the_authors_run_sh_line_parses_to_the_same_settings() -> None:
    """Charles-Zhong/MAT's released CoLA line (docs/nni.md), flags as they wrote them."""
    cfg = parse_cli(["--task_name", "CoLA", "--model_name", "bert-base-uncased", "--seed", "42", "--batch_size", "64",
                     "--epochs", "20", "--optimizer", "Adam", "--sampling_times_theta", "10", "--sampling_times_delta", "5",
                     "--sampling_step_theta", "1e-5", "--sampling_step_delta", "1e-3", "--sampling_noise_ratio", "0.2",
                     "--lambda_s", "3", "--beta_s", "0.3", "--beta_p", "0.3", "--eval_times", "5", "--warm_up", "0.1",
                     "--scheduler_type", "linear"], required=REQUIRED)
    assert cfg.run.model == "bert-base-uncased" and cfg.run.eval_times == 5
    assert cfg.method == MATArgs(sampling_times_delta=5, sampling_times_theta=10, sampling_step_delta=1e-3, sampling_step_theta=1e-5,
                                 sampling_noise_ratio=0.2, lambda_s=3.0, beta_s=0.3, beta_p=0.3, sampler="adam")
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.train.seed, cfg.train.warmup_ratio) == (64, 20.0, 42, 0.1)
    assert parse_cli(["--model_path", "/models/bert", "--optimizer", "SGD"]).run.model == "/models/bert"
    assert parse_cli(["--optimizer", "SGD"]).method.sampler == "sgld"
    assert parse_cli(["--optimizer", "rmsprop"]).method.sampler == "rmsprop"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--per_device_train_bs", "8"], "unrecognized arguments: --per_device_train_bs 8. Did you mean '--per_device_train_batch_size'?"),
        (["--num_train_epoch", "2"], "Did you mean '--num_train_epochs'?"),
        (["--model_name_or_pth", "x"], "Did you mean '--model_name_or_path'?"),
        (["--do_train"], "This script always trains and then evaluates: drop --do_train and --do_eval."),
        (["--method", "vanilla", "--optimizer", "Adam"], "--optimizer is a flag of --method mat, not of vanilla."),
        (["--method", "smart", "--warm_up", "0.1", "--sampling_times", "2"], "--sampling_times is a flag of --method mat, not of smart."),
        (["--optimizer", "LBFGS"], "argument --optimizer: 'LBFGS': choose one of SGD, RMSprop, Adam"),
        (["--fp16", "--precision", "fp32"], "--fp16 sets --precision fp16: give either --fp16 or --precision, not both"),
        (["--fp16", "--bf16"], "argument --bf16: not allowed with argument --fp16"),
        (["--optimizer", "Adam", "--sampler", "sgld"], "give either --optimizer or --sampler, not both"),
        (["--sampling_times", "2", "--sampling_times_theta", "3"], "give either --sampling_times or --sampling_times_theta, not both"),
    ],
)
def test_other_names_are_known_to_the_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert message in _usage_error(argv, capsys)


def test_every_alias_is_a_flag_of_the_field_it_names() -> None:
    parser = build_parser("mat")
    dest = {s: a.dest for a in parser._actions for s in a.option_strings}
    for alias, (field, whose) in FLAG_ALIASES.items():
        assert dest[f"--{alias}"] == field, alias
        assert set(whose.split(", ")) <= {"run_glue", "authors"}


def test_the_alias_table_in_the_docs_lists_every_alias() -> None:
    table = (Path(__file__).resolve().parents[1] / "docs" / "nni.md").read_text()
    for alias, (field, _) in FLAG_ALIASES.items():
        assert re.search(rf"`--{alias}\b[^|]*` \|[^\n]*`--{field}\b", table), f"docs/nni.md: no row for --{alias} -> --{field}"
    for flag in ("--fp16", "--bf16", "--optimizer"):
        assert f"`{flag}" in table


# ---------------------------------------------------------------------------------- required flags


def test_no_arguments_prints_the_usage_and_what_is_required_and_writes_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("NNI_PLATFORM", None)
    proc = subprocess.run([sys.executable, str(TRIAL_SCRIPT)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("usage: mat_trial.py --task TASK --model MODEL ")
    assert lines[-1] == ("mat_trial.py: error: the following arguments are required: --task (cola sst2 mrpc stsb qqp mnli qnli "
                         "rte wnli anli_r1 anli_r2 anli_r3), --model (a Hub id, a local folder, or minilm)")
    assert len(lines) == 2
    assert list(tmp_path.iterdir()) == [], "nothing written"


def test_an_alias_satisfies_a_required_flag(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = parse_cli(["--task_name", "rte", "--model_name_or_path", "minilm"], required=REQUIRED)
    assert (cfg.run.task, cfg.run.model) == ("rte", "minilm")
    last = _usage_error(["--task", "rte"], capsys, required=REQUIRED)
    assert last.endswith("error: the following arguments are required: --model (a Hub id, a local folder, or minilm)")


# ------------------------------------------------------------------------- values named by their flag


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--sampling_times_delta", "-1"], "error: --sampling_times_delta=-1 is out of range [0, 10000]"),
        (["--sampling_times_delta=-1"], "error: --sampling_times_delta=-1 is out of range [0, 10000]"),
        (["--warm_up", "1.5"], "error: --warm_up=1.5 is out of range [0.0, 1.0]"),
        (["--per_device_train_batch_size", "0"], "error: --per_device_train_batch_size=0 is out of range [1, 65536]"),
        (["--max-length", "4"], "error: --max-length=4 is out of range [8, 4096]"),
        (["--sampling_times", "0"], "error: --sampling_times=0 is out of range [1, 10000]"),
        (["--method", "smart", "--bregman_beta", "1.2"], "error: --bregman_beta=1.2 is out of range [0.0, 1.0]"),
    ],
)
def test_an_out_of_range_value_names_the_flag_as_typed(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _usage_error(argv, capsys).endswith(message)


def test_an_nni_parameter_is_named_by_its_key() -> None:
    assert parameter_key("sampling_times_theta", {"sampling_times": 0, "lambda_s": 1}) == "sampling_times"
    assert parameter_key("lambda_s", {"sampling_times": 0, "lambda_s": -1}) == "lambda_s"
    assert parameter_key("beta_p", {"beta": 2}) == "beta"


# ------------------------------------------------------------------------------------------- --help


def _help(method: str, required: tuple[str, ...] = REQUIRED) -> str:
    os.environ["COLUMNS"] = "200"  # one line per flag and help
    try:
        return build_parser(method, required).format_help()
    finally:
        del os.environ["COLUMNS"]


@pytest.mark.parametrize("method", list(METHOD_ARGS))
def test_help_is_grouped_run_training_and_the_methods_own(method: str) -> None:
    text = _help(method)
    sections = re.findall(r"^(\S[^\n]*):$", text, flags=re.M)
    assert sections[:3] == ["options", "run settings (flags of NNI's trialCommand; never searched)",
                            "training (searchable: an NNI parameter of the same name overrides the flag)"]
    own = f"--method {method}: its own hyperparameters (searchable)"
    assert (own in sections) == (method != "vanilla"), "a method with no hyperparameters has no section"

    def section(title: str) -> str:
        return text.split(f"\n{title}:\n")[1].split("\n\n")[0]

    assert re.findall(r"^  (--\w+)", section(sections[1]), flags=re.M)[:3] == ["--task", "--model", "--method"]
    assert set(re.findall(r"^  --(\w+)", section(sections[2]), flags=re.M)) == {f.name for f in TrainArgs.__dataclass_fields__.values()}
    if method != "vanilla":
        fields = set(METHOD_ARGS[method].__dataclass_fields__)
        assert fields <= set(re.findall(r"^  --(\w+)", section(own), flags=re.M))


@pytest.mark.parametrize("method", list(METHOD_ARGS))
def test_help_states_each_default_once_and_as_the_code_has_it(method: str) -> None:
    parser = build_parser(method, REQUIRED)
    text = _help(method)
    for action in parser._actions:
        if not action.option_strings or action.help in (None, argparse.SUPPRESS):
            continue
        entry = text.split(f"  {action.option_strings[0]} ", 1)[1].split("\n  --", 1)[0] if f"  {action.option_strings[0]} " in text \
            else text.split(f"  {action.option_strings[0]}", 1)[1].split("\n  --", 1)[0]
        assert len(re.findall(r"\bdefault\b", entry.lower())) <= 1, f"{action.option_strings[0]}: the default is stated twice: {entry}"
        if action.default not in (None, "", False) and action.nargs != 0 and "default" not in (action.help or "").lower():
            assert f"(default: {action.default})" in entry, action.option_strings[0]
    defaults = {f.name: f.default for f in (*RunArgs.__dataclass_fields__.values(), *TrainArgs.__dataclass_fields__.values())}
    assert "(default: 3.0)" in text.split("  --epochs ")[1].split("\n  --")[0] and defaults["epochs"] == 3.0
    for name in REQUIRED:
        assert f"  --{name} {name.upper()}" in text and "Required." in text.split(f"  --{name} ")[1].split("\n  --")[0]
    assert "--max-length" not in text, "the hyphen spelling is accepted, not listed"


def test_output_dir_help_names_the_folder_the_code_uses() -> None:
    help_text = RunArgs.__dataclass_fields__["output_dir"].metadata["help"]
    pattern = re.search(r"else (runs/\S+)", help_text)
    assert pattern is not None
    cfg = parse_cli(["--task", "rte", "--model", "minilm", "--method", "smart", "--seed", "7"])
    expected = pattern.group(1).replace("<task>", "rte").replace("<method>", "smart").replace("<seed>", "7")
    assert str(default_output_dir(cfg)) == expected
