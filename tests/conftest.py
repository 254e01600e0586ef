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


@pytest.fixture(scope="session")
def reduced_cache(tmp_path_factory):
    """Cache root of the reduced proving ground, shared by the slow end-to-end tests: the first one builds the
    world and pre-trains both tiny CLIPs (about 90 s), the others reuse them."""
    return tmp_path_factory.mktemp("reduced_pg")


@pytest.fixture
def fast_env_info(monkeypatch):
    """Skip torch's environment probe in train.main's log header (it shells out for seconds per call)."""
    from tests.helpers.tiny_env import skip_env_probe

    skip_env_probe(monkeypatch)


@pytest.fixture
def run_hygiene(monkeypatch):
    """fast_env_info + afterwards undo the process-wide state a train.main run leaves behind
    (ENGINE.DETERMINISTIC's flag, the log handlers on the root logger)."""
    from tests.helpers.tiny_env import reset_run_state, skip_env_probe

    skip_env_probe(monkeypatch)
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


# Markers: `slow` (long end-to-end runs; `-m "not slow"` is the quick run) and `dassl` (needs a real
# Dassl.pytorch install). Dassl tests skip where Dassl is not installed, unless PROMPTKD_REQUIRE_DASSL=1
# (CI's Dassl stage sets it), where a missing Dassl is a failure: the stage must not pass by skipping.
def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long end-to-end test (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "dassl: runs on a real Dassl.pytorch install")


def require_dassl():
    """Import and return the real ``dassl`` package, or skip (fail under PROMPTKD_REQUIRE_DASSL=1)."""
    try:
        import dassl  # noqa: F401
    except ImportError as exc:
        if os.environ.get("PROMPTKD_REQUIRE_DASSL") == "1":
            pytest.fail(f"PROMPTKD_REQUIRE_DASSL=1 but Dassl cannot be imported: {exc}")
        pytest.skip("Dassl.pytorch is not installed")
    return dassl


@pytest.fixture
def real_dassl():
    """The real ``dassl`` package (see ``require_dassl``)."""
    return require_dassl()
