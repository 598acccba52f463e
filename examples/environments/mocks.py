# /// script
# requires-python = ">=3.10"
# dependencies = ["numpy>=1.24", "h5py>=3.8"]
# ///
"""The Python environment of the mock-catalog examples: numpy and h5py.

flow builds it once under the machine's root (`build-env`), and the mock-generation tasks
run `python` from it. `setup` is the environment-file contract; the mocks need no
calculator, so it returns None.
"""


def setup(model, device):
    return None
