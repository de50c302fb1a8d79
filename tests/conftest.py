"""Shared fixtures. tests.hub.fixtures is imported first: it points huggingface_hub at the loopback Hub."""

from tests.hub.fixtures import hub, hub_server  # noqa: F401  (fixtures)
from tests.classroom import course  # noqa: F401, E402  (a fixture; imports huggingface_hub, so after the loopback Hub's)
