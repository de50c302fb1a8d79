"""The `hub` fixture: the loopback Hub, with huggingface_hub pointed at it.

huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_DISABLE_XET into its `constants` when it is first
imported, so the server is bound (on a free port) and the environment set when this module is
imported, from tests/conftest.py, before any test module imports huggingface_hub. Subprocesses that
tests start inherit the same environment.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

import pytest

from tests.hub.server import HubServer

# Variables that would point huggingface_hub at a real Hub, a real token or a real cache.
UNSET = (
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_STORED_TOKENS_PATH", "HF_OIDC_RESOURCE",
    "HF_OIDC_ID_TOKEN", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_XET_CACHE", "HF_ASSETS_CACHE",
    "HF_HUB_OFFLINE", "HF_HUB_DISABLE_IMPLICIT_TOKEN",
)  # fmt: skip


def _point_huggingface_hub_at(server: HubServer, home: str) -> None:
    if "huggingface_hub" in sys.modules:
        raise RuntimeError(
            "huggingface_hub was imported before tests/conftest.py: it would talk to the real Hub. Import tests.hub.fixtures first."
        )
    for name in UNSET:
        os.environ.pop(name, None)
    os.environ.update(
        HF_ENDPOINT=server.endpoint,
        HF_HOME=home,
        HF_HUB_DISABLE_XET="1",  # the legacy LFS upload path: Xet storage cannot be served here
        HF_XET_CLIENT_RETRY_MAX_ATTEMPTS="2",  # for the tests that turn Xet on: hf_xet's own retries, few and quick
        HF_XET_CLIENT_RETRY_BASE_DELAY="50ms",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )


LOOPBACK_HUB = HubServer()
HF_HOME = tempfile.mkdtemp(prefix="hubcard-tests-hf-home-")
_point_huggingface_hub_at(LOOPBACK_HUB, HF_HOME)
atexit.register(shutil.rmtree, HF_HOME, ignore_errors=True)
atexit.register(shutil.rmtree, LOOPBACK_HUB.state.root, ignore_errors=True)


@pytest.fixture(scope="session")
def hub_server() -> Iterator[HubServer]:
    """The session's loopback Hub, serving."""
    yield LOOPBACK_HUB.start()
    LOOPBACK_HUB.stop()


@pytest.fixture
def hub(hub_server: HubServer) -> Iterator[HubServer]:
    """The loopback Hub, empty: no users, no repos, no faults (see tests/hub/README.md)."""
    hub_server.reset()
    yield hub_server
    hub_server.reset()
