"""The keeper sweeps local-use licences (issue 19): a real `python -m oracle keeper` process with
``keeper_key_delivery`` set, on the session's anvil with its own redis-server. A purchase that no key
holder delivered is refunded once its deadline passes; a delivery is settled into the model's pot
once its dispute window passes; neither earlier. Anyone may send both (docs/local-use.md).
"""

from __future__ import annotations

import pytest

from oracle_helpers import wait_for
from test_keeper import CREATOR, KEEPER, Market, market, start_keeper  # noqa: F401 - fixtures, reused
from voicemarket.content.sealing import key_id, public_key_from_private
from voicemarket.market.local_use import wrap_license_key
from voicemarket.protocol import ETH, LocalUseStatus, Tier

pytestmark = pytest.mark.integration

LOCAL_PRICE = 4 * 10**15
DATA_KEY = bytes(range(32))
LICENSE_KEY = (7).to_bytes(32, "big")


def test_the_keeper_refunds_undelivered_purchases_and_settles_deliveries_when_due(
    market: Market,  # noqa: F811 - the fixture imported above
    start_keeper,  # noqa: F811
    accounts,
):
    kd, creator = market.d.key_delivery, accounts[CREATOR]
    offer = market.offer(Tier.BUYOUT)
    kd.offerLocalUse(offer, LOCAL_PRICE, key_id(DATA_KEY), sender=creator)
    buyer = accounts[3]
    undelivered, delivered = market.buyout(buyer, offer), market.buyout(buyer, offer)
    public = public_key_from_private(LICENSE_KEY)
    for licence in (undelivered, delivered):
        kd.buyLocalUse(licence, public, LOCAL_PRICE, value=LOCAL_PRICE, sender=buyer)
    wrapped = wrap_license_key(DATA_KEY, public, delivered, market.chain.chain_id, kd.address)
    kd.recordDelivery(delivered, wrapped, sender=creator)
    keeper = start_keeper(KEEPER, key_delivery=kd.address)
    keeper.wait_rounds(2)  # neither is due: nothing is sent
    assert [LocalUseStatus(int(kd.localUse(x).status)) for x in (undelivered, delivered)] == [
        LocalUseStatus.PENDING,
        LocalUseStatus.DELIVERED,
    ]
    market.travel(kd.localUse(undelivered).deadline)  # one day: the undelivered purchase is due a refund
    wait_for(lambda: int(kd.localUse(undelivered).status) == LocalUseStatus.REFUNDED, 30, "the refund", keeper)
    assert int(kd.creditOf(buyer, ETH)) == LOCAL_PRICE
    assert int(kd.localUse(delivered).status) == LocalUseStatus.DELIVERED  # its window runs 2 days
    market.travel(kd.localUse(delivered).deadline)
    wait_for(lambda: int(kd.localUse(delivered).status) == LocalUseStatus.SETTLED, 30, "the settlement", keeper)
    fee = LOCAL_PRICE * int(market.d.licenses.platformFeeBps()) // 10_000
    assert tuple(kd.potOf(market.model_id, ETH)) == (LOCAL_PRICE - fee, fee)
    swept = {"keeper_local_refund": 1, "keeper_local_settle": 1}  # each once, counted when seen mined
    wait_for(lambda: {k: keeper.ledger().stats().get(k) for k in swept} == swept, 30, "both counted", keeper)
