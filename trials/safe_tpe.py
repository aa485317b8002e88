"""NNI's TPE tuner, made to survive NNI 3.0 ending a trial under another trial's parameter id.

NNI 3.0 hands queued parameters to whichever trial asks first, but records them by creation order
(microsoft/nni#5726, #5693). With trials running side by side, a trial's "end" event can then carry the
parameter id of a trial that is still running; TPE forgets that id, and when the running trial reports its
final result (with its true id) ``TpeTuner.receive_trial_result`` raises ``KeyError``: the dispatcher dies
and the experiment hangs in RUNNING with no error shown (seen in the quickstart at 2 trials at a time).
Metrics carry the right id, so TPE learns the right thing once the forgotten entry is restored.

Use it as a customized tuner (paths relative to the config file)::

    tuner:
      codeDirectory: ../trials
      className: safe_tpe.SafeTpeTuner
      classArgs: {optimize_mode: maximize}
"""

from __future__ import annotations

from typing import Any

from nni.algorithms.hpo.tpe_tuner import TpeTuner


class SafeTpeTuner(TpeTuner):
    """``TpeTuner`` whose final results never fail on a parameter id already ended under another trial."""

    def receive_trial_result(self, parameter_id: int, parameters: Any, value: Any, **kwargs: Any) -> None:
        if parameter_id not in self._running_params and parameter_id in self._params:
            # ended early by a mislabelled trial end
            self._running_params[parameter_id] = self._params[parameter_id]
        super().receive_trial_result(parameter_id, parameters, value, **kwargs)
