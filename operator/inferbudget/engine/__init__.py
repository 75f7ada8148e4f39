"""The decision core: which variant, how many replicas, and why. Pure: no I/O, no clock, no Kubernetes.

    decision, state = decide(spec, observation, state, now)

`spec` is the InferenceBudget's spec, `observation` what was measured this cycle, `state` what the engine
remembered from the last cycle (EngineState.from_json(status.engineState)), `now` the time in seconds. The same
inputs always give the same outputs, so the engine runs alike in the operator, the simulator and tests.
"""

from inferbudget.engine.core import decide
from inferbudget.engine.decision import REASONS, Decision, Reason
from inferbudget.engine.observation import FailedRollout, Observation
from inferbudget.engine.state import EngineState

__all__ = ["REASONS", "Decision", "EngineState", "FailedRollout", "Observation", "Reason", "decide"]
