"""Fixtures shared by the whole suite.

Ape's pytest plugin provides ``accounts`` (funded from the standard test mnemonic in
ape-config.yaml), ``chain`` and ``project``, and starts anvil through ape-foundry when the
suite runs with ``--network ethereum:local:foundry`` (as ``make test`` does).

Hypothesis profiles: ``ci`` (the default) and ``audit`` (deep; for auditors), selected with
the environment variable HYPOTHESIS_PROFILE.

Tests marked ``deep`` (long fault drills, full-size runs) are skipped by ``make test`` and run
by ``make audit`` (HYPOTHESIS_PROFILE=audit) or whenever VOICEMARKET_DEEP=1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from voicemarket.dev.services import RedisServer

settings.register_profile(
    "ci",
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "audit",
    max_examples=2_000,
    stateful_step_count=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=20, stateful_step_count=10)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

RUN_DEEP = os.environ.get("VOICEMARKET_DEEP") == "1" or os.environ.get("HYPOTHESIS_PROFILE") == "audit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if RUN_DEEP:
        return
    skip = pytest.mark.skip(reason="a deep test: run by make audit, or with VOICEMARKET_DEEP=1")
    for item in items:
        if "deep" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private, persistent redis-server on a free 127.0.0.1 port, stopped by PID afterwards."""
    with RedisServer() as server:
        yield server
