import os
import sys

import pytest

# The top-level packages (engine/, clip/, datasets/, trainers/, tools/) run from the repository root.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch thread (bit-for-bit reproducible CPU numerics), then restore the count."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def fast_env_info(monkeypatch):
    """Skip torch's environment probe in train.main's log header (it shells out for seconds per call)."""
    from tests.helpers.tiny_env import stub_env_info

    stub_env_info(monkeypatch)


@pytest.fixture
def run_hygiene(monkeypatch):
    """fast_env_info + afterwards undo the process-wide state a train.main run leaves behind
    (ENGINE.DETERMINISTIC's flag, the log handlers on the root logger)."""
    from tests.helpers.tiny_env import reset_run_state, stub_env_info

    stub_env_info(monkeypatch)
    yield
    reset_run_state()


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module (the machine's cores are shared: one thread is faster than
    several contended ones); the previous setting is restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
