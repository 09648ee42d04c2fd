"""Several operators serving one model, their oracles sharing one Redis (a standby coordinator
taking over is in test_faults.py)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from oracle.router import RouterClient
from oracle_helpers import SECOND_OPERATOR_INDEX, wait_for

pytestmark = pytest.mark.integration


def test_two_operators_serve_one_model_from_one_redis_each_only_what_names_it(
    sandbox, accounts, buyers, start_oracle, chain
):
    operators = [accounts[2], accounts[SECOND_OPERATOR_INDEX]]
    shared = sandbox.publish_voice(accounts[1], operators, files=sandbox.tiny)
    licenses = {b.address: sandbox.buy_license(b, shared) for b in buyers[:2]}
    client = RouterClient.connect(chain.provider.uri, sandbox.router.address)
    first_block = chain.blocks.head.number
    first = start_oracle(workers=1, voices=[shared], operator_index=2)
    # The second operator runs everything in one `python -m oracle run --workers 1` (a laptop).
    second = start_oracle(workers=1, voices=[shared], operator_index=SECOND_OPERATOR_INDEX, all_in_one=True)
    assert first.ledger().ns != second.ledger().ns  # one Redis, two namespaces
    named = {}
    for i in range(6):
        buyer, operator = buyers[i % 2], operators[i % 2]
        named[sandbox.request(buyer, shared, licenses[buyer.address], operator, f"Line {i}.")] = operator.address

    def fulfilled():
        return [
            (rid, args["operator"])
            for name, rid, args in client.outcome_logs(first_block)
            if name == "SynthesisFulfilled" and rid in named
        ]

    wait_for(lambda: len(fulfilled()) >= len(named), 90, "every request to be fulfilled", first)
    time.sleep(0.5)
    assert Counter(rid for rid, _ in fulfilled()) == dict.fromkeys(named, 1)
    assert all(operator == named[rid] for rid, operator in fulfilled())
