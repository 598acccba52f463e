# /// script
# requires-python = ">=3.10"
# dependencies = [
#   "chgnet>=0.4",
#   "ase>=3.23",
# ]
# ///
"""CHGNet (pretrained universal potential). Its weights ship inside the PyPI package, so this
environment works offline once built. Pulls torch: a large environment (~6 GB with CUDA).

Model strings: `chgnet` (the package's default pretrained model), `chgnet-0.3.0`,
`chgnet-0.2.0`, `chgnet-r2scan` (versions shipped in the package), or `chgnet-/path/to/model.pth.tar`.
"""


def setup(model, device):
    """Returns CHGNet's ASE calculator on `device` (`cpu`, `cuda`, `cuda:1`, ...)."""
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    if model and ("/" in model or model.endswith((".pth", ".tar"))):
        return CHGNetCalculator(CHGNet.from_file(model), use_device=device)
    if model:
        return CHGNetCalculator(CHGNet.load(model_name=model, use_device=device, verbose=False), use_device=device)
    return CHGNetCalculator(use_device=device)
