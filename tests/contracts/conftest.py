"""Fixtures for the contract tests: one deployment per session, and a `market` of factories.

Ape's pytest plugin snapshots the chain around every test (and the state machine isolates each
Hypothesis example with ``chain.isolate()``), so the session-scoped deployment is shared and
never leaks state between tests.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from market_helpers import MIN_STAKE, SLASH, Market
from voicemarket.market import chain as vm


@pytest.fixture(scope="session")
def actors(accounts) -> SimpleNamespace:
    names = ("deployer", "creator", "voice", "buyer", "operator", "keeper", "co", "arbiter", "treasurer", "other")
    return SimpleNamespace(**{name: accounts[i] for i, name in enumerate(names)})


@pytest.fixture(scope="session")
def deployment(actors, project) -> vm.Deployment:
    return vm.deploy(
        actors.deployer,
        stablecoin="mock",
        arbiter=actors.arbiter,
        treasurer=actors.treasurer,
        min_stake=MIN_STAKE,
        slash_amount=SLASH,
        project=project,
    )


@pytest.fixture(scope="session")
def market(deployment, actors, chain) -> Market:
    return Market(deployment, actors, chain)


@pytest.fixture(scope="session")
def registry(deployment):
    return deployment.registry


@pytest.fixture(scope="session")
def licenses(deployment):
    return deployment.licenses


@pytest.fixture(scope="session")
def router(deployment):
    return deployment.router


@pytest.fixture(scope="session")
def usd(deployment):
    return deployment.stablecoin


@pytest.fixture(scope="session")
def offers(deployment):
    return deployment.offers
