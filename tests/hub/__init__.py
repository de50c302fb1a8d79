"""A Hub-compatible HTTP server on 127.0.0.1 that the tests point the real huggingface_hub client at."""

from tests.hub.server import KINDS, HubError, HubServer

__all__ = ["KINDS", "HubError", "HubServer"]
