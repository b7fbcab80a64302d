import os

import numpy as np
import pytest
import torch


@pytest.fixture
def one_thread():
    "One intra-op thread: these models are small, and spinning OpenMP threads on a shared 2-core box only waits."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def trapped_checkpoint(tmp_path):
    """A function saving a Lightning-style checkpoint of a state dict whose hyper-parameters hold an object whose
    unpickling would create a folder; it returns `(path, sprung)`, the folder a loader that runs no code leaves absent."""
    sprung = tmp_path / 'pwned'
    class Trap:
        def __reduce__(self): return (os.mkdir, (str(sprung),))
    def save(state_dict:dict):
        torch.save({'state_dict': state_dict, 'hyper_parameters': {'trap': Trap()}}, tmp_path / 'trap.ckpt')
        with pytest.raises(Exception): torch.load(tmp_path / 'trap.ckpt', weights_only=True)   # the trap is real
        return tmp_path / 'trap.ckpt', sprung
    return save


# No test reaches the network: the Hugging Face Hub is read from caches the tests lay out (HF_HUB_OFFLINE), in this
# process and in the ones it starts; tests of pushes mock the transport (tests/test_export.py).
os.environ['HF_HUB_OFFLINE'] = '1'
from huggingface_hub import constants as _hub_constants
_hub_constants.HF_HUB_OFFLINE = True


def tone(freq:float, seconds:float=1.0, seed:int=0, rate:int=16000) -> np.ndarray:
    "A sine at `freq` Hz with a little seeded noise, float32 at `rate`: the labelled test clips of several test files."
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.normal(size=len(t))).astype(np.float32)
