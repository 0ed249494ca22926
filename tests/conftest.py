"""Shared fixtures. Real data lives in ../shared/data and is never copied into the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

try:  # keep torch to one thread so the suite behaves on 2 cores
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (real-data test)")
    return SHARED_DATA


@pytest.fixture
def store(tmp_path):
    """An empty data store (prices and metrics SQLite files) in a temporary folder."""
    from cryptorl.data.store import DataStore

    s = DataStore(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance with 2 CPUs for every test that needs Ray, shut down at the end."""
    ray = pytest.importorskip("ray")
    from cryptorl import parallel

    parallel.ensure_ray(workers=2)
    yield ray
    parallel.shutdown()


@pytest.fixture(scope="session", autouse=True)
def _default_folders_outside_the_checkout(tmp_path_factory):
    """The commands' default data and model stores (./data, ./models) point into a temporary folder,
    so that no test leaves them in the checkout (a test that means a default sets its own)."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("defaults")
    mp.setenv("CRYPTORL_DATA", str(root / "data"))
    mp.setenv("CRYPTORL_MODELS", str(root / "models"))
    yield
    mp.undo()
