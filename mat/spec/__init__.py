"""The torch-free contracts of mat-harness: what ``trials/``, ``mat/`` and ``analysis/`` agree on.

``analysis`` imports nothing of ``mat`` but this package, and this package imports no torch, so the analysis
runs where torch is not installed (``tests/test_layout.py`` keeps both so). It holds the task registry
(:mod:`~mat.spec.tasks`), the trial record (:mod:`~mat.spec.records`), the argument dataclasses
(:mod:`~mat.spec.config`, built from :mod:`~mat.spec.fields`), the method registry (:mod:`~mat.spec.methods`),
the component ladder (:mod:`~mat.spec.ladder`), the metrics (:mod:`~mat.spec.metrics`), the GLUE submission
files (:mod:`~mat.spec.submission`), the record's cost block (:mod:`~mat.spec.cost`), NNI's store layout
(:mod:`~mat.spec.nni_layout`) and the one "did you mean" rule of every registry (:mod:`~mat.spec.naming`).
"""
