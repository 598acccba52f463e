# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "mace-torch>=0.3.10",
#   "ase>=3.23",
# ]
# ///
"""MACE. Foundation models (`mace-small`, `mace-medium`, `mace-large`, ...) are downloaded at
first use into the root's cache (HF_HOME / ~/.cache/mace): build-env runs where the network is,
but the first *use* needs it too unless the weights are already cached. A path
(`mace-/path/to/model.model`) is the offline case.
"""
import os


def setup(model, device):
    """Returns a MACE calculator on `device`. `model` is a foundation-model size/name for
    `mace_mp` (default `medium`), or a path to a trained `.model` file."""
    default_dtype = "float32" if str(device).startswith("cuda") else "float64"
    if model and (os.sep in model or model.endswith((".model", ".pt"))):
        from mace.calculators import MACECalculator

        return MACECalculator(model_paths=model, device=device, default_dtype=default_dtype)
    from mace.calculators import mace_mp

    return mace_mp(model=model or "medium", device=device, default_dtype=default_dtype)
