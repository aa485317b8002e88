"""Fuzzing (issue 6): any parameter dict gives a valid frozen config or a clear ValueError; any bytes given
as trial.json are parsed or refused with a RecordError naming the file, never another exception."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mat.cli import parse_cli
from mat.spec.config import PER_METHOD_FIELDS, TrialConfig, apply_overrides, searchable_keys
from mat.spec.methods import METHOD_ARGS
from mat.spec.records import RecordError, TrialRecord, read_record, record_from_dict, write_record

BASE = {m: parse_cli(["--method", m]) for m in METHOD_ARGS}
values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.sampled_from(["adam", "sgld", "rmsprop", "normalized", "raw", "randn", "l2", "inf", "linear"]),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def param_dicts(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    method = draw(st.sampled_from(sorted(METHOD_ARGS)))
    keys = st.one_of(st.sampled_from(searchable_keys(method)), st.text(min_size=1, max_size=12))
    return method, draw(st.dictionaries(keys, values, max_size=5))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(param_dicts())
def test_any_params_give_a_valid_config_or_a_value_error(case: tuple[str, dict[str, object]]) -> None:
    method, params = case
    try:
        cfg = apply_overrides(BASE[method], params)
    except ValueError as e:
        assert str(e)  # a message, never empty
        return
    assert isinstance(cfg, TrialConfig)
    for group in (cfg.train, cfg.method):
        assert dataclasses.is_dataclass(group)
        for f in dataclasses.fields(group):
            v = getattr(group, f.name)
            if isinstance(v, float):
                assert math.isfinite(v)
    assert cfg.train.learning_rate is not None
    for k, v in params.items():  # every accepted value landed where it belongs
        if k in (*PER_METHOD_FIELDS, "sampling_step_theta") and v is None:
            continue  # None means "the method's default" (mat.spec.config.method_train_defaults)
        if k in cfg.params():
            assert cfg.params()[k] == v


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_any_bytes_are_parsed_or_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "trial.json"
    path.write_bytes(data)
    try:
        read_record(path)
    except RecordError as e:
        assert str(path) in str(e)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["schema", "trial_id", "method", "task", "model", "seed", "params", "status",
                                        "evals", "best", "final", "wall_seconds"]), values, max_size=12))
def test_any_json_object_is_a_record_or_a_record_error(d: dict[str, object]) -> None:
    try:
        rec = record_from_dict(d, "x.json")
    except RecordError as e:
        assert "x.json" in str(e)
    else:
        assert rec.schema == 1


def test_a_written_record_reads_back(tmp_path: Path) -> None:
    rec = TrialRecord(trial_id="a", method="mat", task="rte", model="m", seed=3, params={"lambda_s": 1.0}, status="SUCCEEDED")
    write_record(rec, tmp_path)
    assert read_record(tmp_path / "trial.json") == rec
