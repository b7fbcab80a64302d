import pytest
import torch


@pytest.fixture
def one_thread():
    "One intra-op thread: these models are small, and spinning OpenMP threads on a shared 2-core box only waits."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
