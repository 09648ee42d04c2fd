"""The keeper (`python -m oracle keeper`) as an operator runs it: a real process started by the test on
the session's anvil with its own redis-server, stopped by PID. The test moves the chain's clock and
checks the chain: renewals happen exactly once a period and only when the current holder agreed and
can pay, lapsed subscriptions stay lapsed, deliveries settle after their window, undecided disputes
lapse, expired requests are refunded, and two keepers at once spend nothing twice.

Accounts (Ape's test accounts): 0 deploys, 1 creates, 2 operates, 3..7 buy, 8 and 9 keep (and 7, in the
test of three keepers, where it buys nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from oracle.keeper import keeper_namespace
from oracle.keeper_settings import KeeperSettings
from oracle_helpers import wait_for
from voicemarket import protocol
from voicemarket.content.multiformats import CID, RAW
from voicemarket.dev.sandbox import ROOT, public_key
from voicemarket.dev.services import ManagedProcess, RedisServer
from voicemarket.market import chain as vm
from voicemarket.protocol import ETH, Action, Language, RequestStatus, Tier, language_bits

pytestmark = pytest.mark.integration

DAY = 86_400
PERIOD = 30 * DAY
PRICE = 5 * 10**6  # 5 mUSD a period
FEE = 10**14  # the operator's fee per request, in ETH
BUYOUT = 10**15
BOND = 10**16
WINDOW = 3_600  # the model's dispute window
CREATOR, OPERATOR, KEEPER, SECOND_KEEPER, THIRD_KEEPER = 1, 2, 8, 9, 7


@dataclass
class Market:
    """A fresh deployment with a stablecoin, one model, its operator, and helpers to trade on it."""

    d: vm.Deployment
    start_block: int
    accounts: object
    chain: object
    model_id: int = 0
    labels: int = field(default=0)

    @property
    def token(self):
        return self.d.stablecoin

    def now(self) -> int:
        return int(self.chain.pending_timestamp)

    def travel(self, timestamp: int) -> None:
        """Mine a block at ``timestamp`` (the chain's clock only moves forward)."""
        self.chain.mine(timestamp=max(int(timestamp), self.chain.blocks.head.timestamp + 1))

    def _digest(self, text: str) -> bytes:
        self.labels += 1
        return hashlib.sha256(f"{text} {self.labels} {self.d.registry.address}".encode()).digest()

    def register_model(self) -> int:
        creator, operator = self.accounts[CREATOR], self.accounts[OPERATOR]
        digest = self._digest("bundle")
        self.d.registry.registerModel(
            vm.model_registration(
                bundle_digest=digest,
                bundle_cid=CID(1, RAW, digest),
                metadata_cid=CID(1, RAW, self._digest("meta")),
                languages=language_bits("en"),
                voice_owner=creator.address,
                policy_hash=self._digest("policy"),
                dispute_window=WINDOW,
            ),
            sender=creator,
        )
        self.model_id = protocol.model_id(creator.address, digest)
        self.d.router.registerOperator(public_key(operator), value=self.d.router.minStake(), sender=operator)
        self.d.router.setFee(ETH, FEE, sender=operator)
        self.d.router.setOperatorAllowed(self.model_id, operator, True, sender=creator)
        return self.model_id

    def offer(self, tier: Tier, *, transferable: bool = False) -> int:
        subscription = tier == Tier.SUBSCRIPTION
        terms = {
            "modelId": self.model_id,
            "tier": int(tier),
            "asset": self.token.address if subscription else ETH,
            "price": PRICE if subscription else BUYOUT,
            "period": PERIOD if subscription else 0,
            "maxUses": 0,
            "packSize": 0,
            "validUntil": 0,
            "maxLicenses": 0,
            "permissions": int(Action.TEXT_TO_SPEECH),
            "prohibitions": 0,
            "attribution": False,
            "transferable": transferable,
            "purposes": 0,
            "policyHash": self._digest("offer"),
        }
        receipt = self.d.offers.publishOffer(terms, b"", sender=self.accounts[CREATOR])
        return int(receipt.events.filter(self.d.offers.OfferPublished)[0].offerId)

    def subscribe(self, buyer, offer: int, *, auto_renew: bool = True, allowance_periods: int = 10) -> int:
        """Buy one period; then (by default) auto-renewal on and an allowance for ``allowance_periods``."""
        self.token.mint(buyer, 100 * PRICE, sender=buyer)
        self.token.approve(self.d.licenses, PRICE, sender=buyer)
        receipt = self.d.licenses.buy(offer, PRICE, 1, sender=buyer)
        license = int(receipt.events.filter(self.d.licenses.LicensePurchased)[0].licenseId)
        if auto_renew:
            self.d.licenses.setAutoRenew(license, True, sender=buyer)
        self.token.approve(self.d.licenses, allowance_periods * PRICE, sender=buyer)
        return license

    def expires(self, license: int) -> int:
        return int(self.d.licenses.license(license).expiresAt)

    def renewals(self, license: int) -> int:
        """``SubscriptionUpdate`` logs of the licence beyond its purchase's."""
        logs = self.d.licenses.SubscriptionUpdate.range(
            self.start_block, self.chain.blocks.head.number + 1, search_topics={"tokenId": license}
        )
        return len(list(logs)) - 1

    def buyout(self, buyer, offer: int) -> int:
        receipt = self.d.licenses.buy(offer, BUYOUT, 1, value=BUYOUT, sender=buyer)
        return int(receipt.events.filter(self.d.licenses.LicensePurchased)[0].licenseId)

    def request(self, buyer, license: int, *, deadline_in: int = 3_600) -> tuple:
        text = f"request {self.labels}"
        self.labels += 1
        params = {
            "modelId": self.model_id,
            "licenseId": license,
            "operator": self.accounts[OPERATOR].address,
            "maxFee": FEE,
            "deadline": self.now() + deadline_in,
            "params": vm.SynthesisParams(Language.EN).pack(),
            "inputHash": vm.input_hash(text),
            "input": vm.inline_input(text),
        }
        receipt = self.d.router.requestSynthesis(params, value=FEE, sender=buyer)
        return vm.request_from_log(receipt.events.filter(self.d.router.SynthesisRequested)[0])

    def fulfil(self, request: tuple) -> None:
        audio = hashlib.sha256(f"audio {request[0]}".encode()).digest()
        self.d.router.fulfil(request, audio, CID(1, RAW, audio).to_bytes(), sender=self.accounts[OPERATOR])

    def status(self, request: tuple) -> RequestStatus:
        return RequestStatus(int(self.d.router.requestStatus(request[0])))

    def credit(self, account) -> int:
        return int(self.d.router.creditOf(account, ETH))


@pytest.fixture
def market(accounts, chain) -> Market:
    start = chain.blocks.head.number + 1
    box = Market(vm.deploy(accounts[0], stablecoin="mock", dispute_bond=BOND), start, accounts, chain)
    box.register_model()
    return box


@dataclass
class KeeperProcess:
    """One `python -m oracle keeper` process and what it left in Redis and its log."""

    process: ManagedProcess
    settings: KeeperSettings
    address: str

    def wait_started(self) -> None:
        self.process.wait_until(lambda: bool(self.events("keeper starting")), 60, "the keeper to start")

    def ledger(self):
        import redis

        from oracle.ledger import Ledger

        return Ledger(redis.Redis.from_url(self.settings.redis_url), keeper_namespace(self.settings, self.address))

    def rounds(self) -> int:
        return self.ledger().stats().get("keeper_rounds", 0)

    def wait_rounds(self, count: int) -> None:
        """Let ``count`` more rounds pass (so that what was due has been seen)."""
        target = self.rounds() + count
        wait_for(lambda: self.rounds() >= target, 30, f"{count} keeper rounds", self)

    def events(self, name: str) -> list[dict]:
        out = []
        for line in self.process.log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == name:
                out.append(entry)
        return out

    def log_tails(self) -> str:
        return f"--- {self.process.name}\n{self.process.log_tail(40)}"


@pytest.fixture
def start_keeper(market, redis_server, tmp_path, chain, accounts):
    """``start_keeper(account, redis_url=...)``: a keeper process for ``market``, stopped by PID afterwards."""
    started: list[KeeperProcess] = []

    def start(
        account: int = KEEPER, *, redis_url: str | None = None, name: str | None = None, wait: bool = True, **extra
    ) -> KeeperProcess:
        name = name or f"keeper{len(started) + 1}"
        settings = {
            "rpc_url": chain.provider.uri,
            "router": market.d.router.address,
            "redis_url": redis_url or redis_server.url,
            "keeper_test_account": account,
            "keeper_start_block": market.start_block,
            "keeper_interval_s": 0.3,
            "confirmations": 0,
            "leader_lease_s": 3,
            "log_format": "json",
            "stuck_after_s": 30,
            **{f"keeper_{key}": value for key, value in extra.items()},  # e.g. key_delivery=...
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
        env.update({f"ORACLE_{k.upper()}": str(v) for k, v in settings.items()})
        env["PYTHONUNBUFFERED"] = "1"
        log_path = tmp_path / "logs" / f"{name}.log"
        process = ManagedProcess(
            [sys.executable, "-m", "oracle", "keeper"], log_path=log_path, env=env, cwd=ROOT, name=name
        )
        keeper = KeeperProcess(process, KeeperSettings(**settings), accounts[account].address)
        started.append(keeper)
        process.start()
        if wait:
            keeper.wait_started()
        return keeper

    yield start
    for keeper in started:
        keeper.process.stop()


def _due(market: Market, license: int) -> None:
    """Move the clock into the licence's renewal window (a minute after it opens)."""
    market.travel(market.expires(license) - DAY + 60)


def test_a_due_auto_renewing_subscription_is_renewed_exactly_once_per_period(market, start_keeper, accounts):
    buyer = accounts[3]
    license = market.subscribe(buyer, market.offer(Tier.SUBSCRIPTION))
    first_end = market.expires(license)
    paid_before = int(market.token.balanceOf(buyer))
    keeper = start_keeper()
    keeper.wait_rounds(3)
    assert market.expires(license) == first_end and market.renewals(license) == 0  # not due yet

    _due(market, license)
    wait_for(lambda: market.expires(license) == first_end + PERIOD, 30, "the first renewal", keeper)
    keeper.wait_rounds(4)
    assert market.expires(license) == first_end + PERIOD and market.renewals(license) == 1
    assert int(market.token.balanceOf(buyer)) == paid_before - PRICE

    _due(market, license)  # the next period's window
    wait_for(lambda: market.expires(license) == first_end + 2 * PERIOD, 30, "the second renewal", keeper)
    keeper.wait_rounds(4)
    assert market.renewals(license) == 2 and int(market.token.balanceOf(buyer)) == paid_before - 2 * PRICE
    renewed = [e for e in keeper.events("subscription renewed") if e["license_id"] == license]
    assert len(renewed) == 2 and keeper.ledger().stats()["keeper_renewed"] == 2


def test_a_transferred_license_is_not_renewed_until_its_new_holder_agrees(market, start_keeper, accounts):
    holder, victim, control_holder = accounts[3], accounts[4], accounts[5]
    offer = market.offer(Tier.SUBSCRIPTION, transferable=True)
    license = market.subscribe(holder, offer)
    control = market.subscribe(control_holder, offer)  # same window: shows the keeper was at work
    market.token.mint(victim, 100 * PRICE, sender=victim)
    market.token.approve(market.d.licenses, 100 * PRICE, sender=victim)  # a standing allowance
    market.d.licenses.transferFrom(holder, victim, license, sender=holder)
    assert not market.d.licenses.license(license).autoRenew  # the transfer cleared it
    end, victim_funds, holder_funds = (
        market.expires(license),
        market.token.balanceOf(victim),
        market.token.balanceOf(holder),
    )
    keeper = start_keeper()

    _due(market, license)
    wait_for(lambda: market.renewals(control) == 1, 30, "the control licence's renewal", keeper)
    keeper.wait_rounds(4)
    assert market.expires(license) == end and market.renewals(license) == 0
    assert market.token.balanceOf(victim) == victim_funds and market.token.balanceOf(holder) == holder_funds

    # The new holder agrees: from then on the keeper renews it, from the new holder's funds.
    market.d.licenses.setAutoRenew(license, True, sender=victim)
    wait_for(lambda: market.renewals(license) == 1, 30, "the renewal the new holder agreed to", keeper)
    assert market.token.balanceOf(victim) == victim_funds - PRICE and market.token.balanceOf(holder) == holder_funds


def test_a_holder_short_of_allowance_or_balance_is_skipped_with_the_reason(market, start_keeper, accounts):
    short_allowance, short_balance = accounts[3], accounts[4]
    offer = market.offer(Tier.SUBSCRIPTION)
    first = market.subscribe(short_allowance, offer, allowance_periods=0)
    market.token.approve(market.d.licenses, PRICE - 1, sender=short_allowance)
    second = market.subscribe(short_balance, offer)
    market.token.transfer(accounts[0], market.token.balanceOf(short_balance) - (PRICE - 1), sender=short_balance)
    keeper = start_keeper()

    _due(market, first)
    wait_for(lambda: len(keeper.events("renewal skipped")) >= 2, 30, "both skips to be logged", keeper)
    keeper.wait_rounds(3)
    skipped = {e["license_id"]: e for e in keeper.events("renewal skipped")}
    assert (
        skipped[first]["reason"] == "allowance"
        and f"allows the licence manager {PRICE - 1}" in skipped[first]["detail"]
    )
    assert skipped[second]["reason"] == "balance" and f"holds {PRICE - 1}" in skipped[second]["detail"]
    assert skipped[first]["level"] == "warning"
    assert len(keeper.events("renewal skipped")) == 2  # said once, not every round
    assert market.renewals(first) == market.renewals(second) == 0

    # Once the holder approves, the same window's next round renews it.
    market.token.approve(market.d.licenses, PRICE, sender=short_allowance)
    wait_for(lambda: market.renewals(first) == 1, 30, "the renewal once approved", keeper)
    assert market.renewals(second) == 0


def test_a_lapsed_subscription_is_never_revived(market, start_keeper, accounts):
    holder = accounts[3]
    license = market.subscribe(holder, market.offer(Tier.SUBSCRIPTION), allowance_periods=0)
    end = market.expires(license)
    keeper = start_keeper()
    market.travel(end + 2 * DAY)  # days after it lapsed, the holder approves for something else
    market.token.approve(market.d.licenses, 100 * PRICE, sender=holder)
    funds = market.token.balanceOf(holder)

    wait_for(
        lambda: any(e["license_id"] == license for e in keeper.events("renewal skipped")),
        30,
        "the lapse to be logged",
        keeper,
    )
    keeper.wait_rounds(4)
    [skip] = [e for e in keeper.events("renewal skipped") if e["license_id"] == license]
    assert skip["reason"] == "lapsed" and "never revive" in skip["detail"]
    assert market.expires(license) == end and market.renewals(license) == 0
    assert market.token.balanceOf(holder) == funds


def test_deliveries_settle_after_their_window_and_undecided_disputes_lapse(market, start_keeper, accounts):
    buyer, operator = accounts[3], accounts[OPERATOR]
    license = market.buyout(buyer, market.offer(Tier.BUYOUT))
    plain, disputed = market.request(buyer, license), market.request(buyer, license)
    market.fulfil(plain)
    market.fulfil(disputed)
    market.d.router.dispute(disputed, value=BOND, sender=buyer)
    operator_credit, buyer_credit = market.credit(operator), market.credit(buyer)
    keeper = start_keeper()
    keeper.wait_rounds(3)
    assert market.status(plain) == RequestStatus.FULFILLED  # its window is still open

    market.travel(market.now() + WINDOW)
    wait_for(lambda: market.status(plain) == RequestStatus.SETTLED, 30, "the settlement", keeper)
    keeper.wait_rounds(3)
    assert market.status(disputed) == RequestStatus.DISPUTED  # the arbiter has 7 days
    assert market.credit(operator) == operator_credit + FEE

    market.travel(market.now() + int(market.d.router.ARBITRATION_PERIOD()))
    wait_for(lambda: market.status(disputed) == RequestStatus.SETTLED, 30, "the dispute to lapse", keeper)
    assert market.credit(operator) == operator_credit + 2 * FEE
    assert market.credit(buyer) == buyer_credit + BOND  # the bond went back
    # The keeper's log says what each of its settlements did, once the transaction is final.
    wait_for(lambda: len(keeper.events("requests settled")) == 2, 30, "the settlements to be logged", keeper)
    assert [(e["settled"], e["lapsed"]) for e in keeper.events("requests settled")] == [
        ([plain[0]], []),
        ([disputed[0]], [disputed[0]]),
    ]


def test_expired_requests_are_cancelled_and_refunded(market, start_keeper, accounts):
    buyer = accounts[3]
    license = market.buyout(buyer, market.offer(Tier.BUYOUT))
    request = market.request(buyer, license, deadline_in=600)
    credit = market.credit(buyer)
    keeper = start_keeper()
    keeper.wait_rounds(3)
    assert market.status(request) == RequestStatus.PENDING

    market.travel(request[vm.REQUEST_FIELDS.index("deadline")] + 1)
    wait_for(lambda: market.status(request) == RequestStatus.EXPIRED, 30, "the refund", keeper)
    assert market.credit(buyer) == credit + FEE
    wait_for(lambda: keeper.events("request expired and refunded"), 30, "the refund to be logged", keeper)
    assert [e["request_id"] for e in keeper.events("request expired and refunded")] == [request[0]]


def test_once_makes_one_round_and_exits(market, redis_server, accounts, chain):
    """`python -m oracle keeper --once` (for cron) refunds an expired request and exits 0."""
    request = market.request(accounts[3], market.buyout(accounts[3], market.offer(Tier.BUYOUT)), deadline_in=60)
    market.travel(request[vm.REQUEST_FIELDS.index("deadline")] + 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
    env.update(
        ORACLE_RPC_URL=chain.provider.uri,
        ORACLE_ROUTER=market.d.router.address,
        ORACLE_REDIS_URL=redis_server.url,
        ORACLE_KEEPER_TEST_ACCOUNT=str(KEEPER),
        ORACLE_KEEPER_START_BLOCK=str(market.start_block),
        ORACLE_CONFIRMATIONS="0",
        ORACLE_LOG_FORMAT="text",
    )
    done = subprocess.run(
        [sys.executable, "-m", "oracle", "keeper", "--once"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "cancellation sent" in done.stderr and "keeper stopped" in done.stderr
    assert market.status(request) == RequestStatus.EXPIRED


def test_two_keepers_at_once_spend_nothing_twice(market, start_keeper, accounts, tmp_path):
    """Two keepers on separate Redis servers (nothing shared but the chain) and a third on the first's
    Redis (standing by), each with its own account, act on the same due work; every renewal, refund and
    payout happens once."""
    buyers = [accounts[i] for i in (3, 4, 5)]
    offer = market.offer(Tier.SUBSCRIPTION)
    licenses = [market.subscribe(buyer, offer) for buyer in buyers]
    ends = [market.expires(license) for license in licenses]
    funds = [market.token.balanceOf(buyer) for buyer in buyers]
    license = market.buyout(accounts[6], market.offer(Tier.BUYOUT))
    expiring = [market.request(accounts[6], license, deadline_in=600) for _ in range(2)]
    delivered = [market.request(accounts[6], license) for _ in range(3)]
    for request in delivered:
        market.fulfil(request)
    operator_credit, buyer_credit = market.credit(accounts[OPERATOR]), market.credit(accounts[6])
    market.travel(ends[0] - DAY + 60)  # every renewal due, every deadline and window passed

    with RedisServer(directory=tmp_path / "redis-b") as second_redis:
        first = start_keeper(KEEPER, name="keeper-a", wait=False)
        second = start_keeper(SECOND_KEEPER, redis_url=second_redis.url, name="keeper-b", wait=False)
        third = start_keeper(THIRD_KEEPER, name="keeper-c", wait=False)  # on keeper-a's Redis: one lease
        for keeper in (first, second, third):
            keeper.wait_started()

        def done() -> bool:
            return (
                all(market.renewals(lic) >= 1 for lic in licenses)
                and all(market.status(r) == RequestStatus.EXPIRED for r in expiring)
                and all(market.status(r) == RequestStatus.SETTLED for r in delivered)
            )

        wait_for(done, 60, "all the due work", second)
        standing = [k for k in (first, third) if k.events("another keeper holds the lease; standing by")]
        assert len(standing) == 1, "exactly one of two keepers on one Redis stands by"
        acting = first if standing == [third] else third
        acting.wait_rounds(4)
        second.wait_rounds(4)
        second.process.stop()  # before its Redis goes

    for lic, end, buyer, before in zip(licenses, ends, buyers, funds, strict=True):
        assert market.renewals(lic) == 1 and market.expires(lic) == end + PERIOD
        assert market.token.balanceOf(buyer) == before - PRICE
    assert market.credit(accounts[6]) == buyer_credit + 2 * FEE
    assert market.credit(accounts[OPERATOR]) == operator_credit + 3 * FEE
    assert not standing[0].events("keeper lease taken; keeping") and not standing[0].events("renewal sent")
    # Whatever raced, the keepers' own records agree with the chain: three renewals landed, no more.
    assert sum(len(k.events("subscription renewed")) for k in (acting, second)) == len(licenses)
