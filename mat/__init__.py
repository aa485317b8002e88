"""mat-harness: Mixed-strategy Adversarial Training (MAT) and its baselines for fine-tuning.

Importing ``mat`` is cheap: it imports no torch, so ``analysis`` (which uses :mod:`mat.spec.tasks` and
:mod:`mat.spec.records`) runs on machines without torch.
"""

__version__ = "0.1.0"
