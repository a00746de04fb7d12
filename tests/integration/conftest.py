"""Fixtures shared by several integration test modules."""

from tests.integration.faults_support import fault_world  # noqa: F401 - the fault-injection harness's world
