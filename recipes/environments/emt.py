# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "ase>=3.23",
#   "numpy",
# ]
# ///
"""ASE's EMT potential: a fast classical calculator for tests and demos (CPU only).

Cheap force calls make it the worst case for IPC overhead: a potential that passes the
md-benchmark gate with EMT passes with anything costlier.
"""


def setup(model, device):
    """Returns ASE's EMT calculator. `model` must be empty (EMT has no variants); `device` is
    ignored (EMT runs on the CPU)."""
    if model:
        raise ValueError(f"the emt environment has no models (got {model!r}); use the model string `emt`")
    from ase.calculators.emt import EMT

    return EMT()
