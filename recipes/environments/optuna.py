# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "optuna>=3.6",
#   "cmaes>=0.10",
#   "numpy",
# ]
# ///
"""Optuna for adaptive steps: the python that runs flow's Optuna adapter
(recipes/adaptive/optuna_adapter.py) and, if the step says so, the evaluations.

`cmaes` is there for the CMA-ES sampler.
"""


def setup(model, device):
    """Nothing to set up: the environment serves the algorithm, not a calculator. `model`
    must be empty."""
    if model:
        raise ValueError(f"the optuna environment has no models (got {model!r})")
    return None
