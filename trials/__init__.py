"""The NNI side of mat-harness: the trial entry point and the tools around ``nnictl``.

* ``trials/mat_trial.py``: one trial (standalone, or NNI's ``trialCommand``); the only module that imports
  ``nni``.
* :mod:`trials.experiment`: ``python -m trials.experiment run CONFIG`` starts an experiment and waits for it.
* :mod:`trials.search_space`: ``python -m trials.search_space FILE --method M`` checks a search-space file.
* :mod:`trials.reproduce`: ``python -m trials.reproduce RECORD`` trains a recorded trial again and compares it
  with its record, bit for bit.
* ``trials/safe_tpe.py``: NNI's TPE with a defect of NNI 3.0 handled (a customized tuner).

Run these from the repository root (the ``mat`` library is installed; this folder is not).
"""
