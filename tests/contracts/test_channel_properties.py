"""The market state machine (test_market_properties.py) with payment channels (issue 18).

The base machine's rules that change what a channel sees stay (time, sales, transfers, pauses,
freezes, retirements, operators allowed and removed, the router replaced, renewals,
distributions, withdrawals; the others are left out so that a third of the steps are channels'),
and these are added on the same world: the buyers' ETH channels
with the operator (deposits, top-ups, withdrawal requests, withdrawals before and after the
delay) and redemptions of vouchers on any licence a buyer holds, with their faults (replayed,
forged, another operator's, over-spent). The model predicts each voucher's outcome — redeemed,
or skipped for the reason the contract gives (stale, bad signature, underfunded, operator not
allowed, licence refused: paused, frozen, retired, lapsed, used up) — and the batch's revert
(a priced licence sold in another asset). A redemption consumes the licence's uses exactly as
that many router requests would (quota periods included), so the base machine's licence checks
cover it; the use price goes into the channels' own ledger, split by `distribute` as a router use.

After every step: the channels contract holds exactly every channel's balance plus its credits,
pots and platform balance (conservation), and each channel and lane is the model's. Each example
ends by distributing and withdrawing the channels' ledger too.

A deep drill (`@pytest.mark.deep`: make audit, or VOICEMARKET_DEEP=1): CHANNEL_EXAMPLES examples
(default 40) of 60 steps, derandomised, or the audit profile's size with HYPOTHESIS_PROFILE=audit.
The fast checks of the same properties in make test are tests/contracts/test_channels.py and the
forge invariant suite test-forge/PaymentChannels.t.sol.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from eth_abi import decode
from eth_utils import keccak
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test

from test_market_properties import (  # noqa: F401 - `world`: the module fixture this machine runs on
    DAY,
    ERRORS,
    SUCCESSES,
    TTS,
    LedgerM,
    Tier,
    err,
    machine_for,
    machine_settings,
    world,
)
from voicemarket.market.channels import Voucher, channel_id, domain_separator, key_signer
from voicemarket.protocol import ETH

FEE = 10**14  # what the buyers pay the operator per use on top of the use price
DELAY = 2 * DAY
SKIPPED_TOPIC = "0x" + keccak(text="VoucherSkipped(bytes32,uint256,uint8,bytes)").hex()
REDEEMED_TOPIC = "0x" + keccak(text="VoucherRedeemed(bytes32,uint256,uint128,uint64)").hex()
STALE, BAD_SIGNATURE, UNDERFUNDED, NOT_ALLOWED, LICENCE_REFUSED = range(5)
CHANNEL_RULES = ("channel_deposit", "channel_start_withdrawal", "channel_withdraw", "channel_redeem")
REQUIRED = (
    "channel: redeemed",
    "channel: skipped stale",
    "channel: skipped bad signature",
    "channel: skipped underfunded",
    "channel: skipped licence refused",
    "channel: withdrawn after the delay",
)


def channel_machine_for(w, channels):
    base = machine_for(w)
    a = w.a
    buyers = [a.buyer, a.other]
    operator = a.operator
    domain = domain_separator(channels.address, w.chain.chain_id)
    for abi in channels.contract_type.abi:
        if abi.type == "error":
            w.errors[keccak(text=abi.selector)[:4]] = (abi.name, [x.canonical_type for x in abi.inputs])

    class ChannelMarket(base):
        def __init__(self) -> None:
            super().__init__()
            self.ch_ledger = LedgerM()
            self.channel_balance = {b.address: 0 for b in buyers}
            self.channel_at = {b.address: 0 for b in buyers}
            self.lanes: dict[tuple[str, int], tuple[int, int]] = {}

        def _ledger(self, key):
            if key == "ch":
                return channels, self.ch_ledger
            return super()._ledger(key)

        # ------------------------------------------------------------ channel rules

        @rule(who=st.integers(0, 1), amount=st.sampled_from([10**15, 10**17, 10**18]))
        def channel_deposit(self, who, amount):
            self._deposit(buyers[who], amount)

        def _deposit(self, buyer, amount: int) -> None:
            if self._send(channels.deposit, operator, ETH, amount, value=amount, sender=buyer):
                self.channel_balance[buyer.address] += amount
                self.channel_at[buyer.address] = 0
                self._won("channel_deposit")

        @rule(who=st.integers(0, 1))
        def channel_start_withdrawal(self, who):
            buyer = buyers[who]
            cid = channel_id(buyer.address, operator.address)
            expected = set() if self.channel_balance[buyer.address] else {err("Channels_NothingDeposited", cid)}
            if self._send(channels.startWithdrawal, operator, ETH, sender=buyer, expected=expected):
                if not self.channel_at[buyer.address]:
                    self.channel_at[buyer.address] = self.now + DELAY
                self._won("channel_start_withdrawal")

        @rule(who=st.integers(0, 1), wait=st.booleans())
        def channel_withdraw(self, who, wait):
            buyer = buyers[who]
            at = self.channel_at[buyer.address]
            if wait and at:
                self._advance_to(at)
            cid = channel_id(buyer.address, operator.address)
            t = self.now + 1
            expected = set()
            if not at:
                expected.add(err("Channels_NotWithdrawing", cid))
            elif t < at:
                expected.add(err("Channels_WithdrawalLocked", cid, at))
            if self._send(channels.withdrawChannel, operator, ETH, sender=buyer, expected=expected):
                self.eth[buyer.address] += self.channel_balance[buyer.address]
                self.channel_balance[buyer.address] = self.channel_at[buyer.address] = 0
                self._won("channel_withdraw")
                self._won("channel: withdrawn after the delay")

        @rule(
            data=st.data(),
            uses=st.integers(1, 3),
            fault=st.sampled_from([None, None, None, None, "replay", "forged", "other operator", "overspent"]),
        )
        def channel_redeem(self, data, uses, fault):
            held = [lic for lic in self.licenses if lic.holder in self.channel_balance]
            if not held:
                return
            usable = [lic for lic in held if self._licensed(lic, self.now + 1)[0]]
            lic = self._pick(data, held, usable if fault is None else [])
            buyer = next(b for b in buyers if b.address == lic.holder)
            o, model = lic.offer, self.models[lic.offer.model]
            use_price = o.price if o.tier == Tier.PAY_PER_USE and not o.pack_size else 0
            lane = self.lanes.get((buyer.address, lic.id), (0, 0))
            amount, total = lane[0] + uses * (use_price + FEE), lane[1] + uses
            if fault is None and self.channel_balance[buyer.address] < amount - lane[0]:
                self._deposit(buyer, amount - lane[0])  # successes need a funded channel
            balance = self.channel_balance[buyer.address]
            if fault == "replay" and lane != (0, 0):
                amount, total = lane
            elif fault == "overspent":
                amount = lane[0] + max(balance + 1, uses * (use_price + FEE))
            signer = a.voice if fault == "forged" else buyer
            sender = a.keeper if fault == "other operator" else operator
            v = Voucher(buyer.address, operator.address, ETH, lic.id, o.model, amount, total)
            v = v.signed(domain, key_signer(str(signer.private_key)))
            added, new_uses = amount - lane[0], total - lane[1]
            t = self.now + 1
            # The model's verdict, in the contract's order.
            expected, skip = set(), None
            if amount < lane[0] or total < lane[1] or (amount, total) == lane:
                skip = STALE
            elif fault in ("forged", "other operator"):
                skip = BAD_SIGNATURE
            elif added > balance:
                skip = UNDERFUNDED
            elif new_uses:
                router = self.routers[self.lm_router]
                if router.allowed_until.get((o.model, operator.address), 0) <= t:
                    skip = NOT_ALLOWED
                elif self._refused(lic, t, new_uses):
                    skip = LICENCE_REFUSED
                elif use_price and o.asset != ETH:
                    expected.add("Channels_AssetMismatch")
            receipt = self._send(channels.redeem, [v.as_call()], sender=sender, expected=expected)
            if not receipt:
                return
            skipped = [
                int(decode(["uint8", "bytes"], bytes.fromhex(x["data"][2:]))[0])
                for x in receipt["logs"]
                if x["topics"][0] == SKIPPED_TOPIC
            ]
            redeemed = [x for x in receipt["logs"] if x["topics"][0] == REDEEMED_TOPIC]
            if skip is not None:
                assert skipped == [skip] and not redeemed, f"voucher skipped {skipped}, the model says {skip}"
                name = {0: "stale", 1: "bad signature", 2: "underfunded", 3: "not allowed", 4: "licence refused"}
                self._won(f"channel: skipped {name[skip]}")
                return
            assert skipped == [] and len(redeemed) == 1, f"voucher skipped {skipped}, the model says redeemed"
            self.lanes[(buyer.address, lic.id)] = (amount, total)
            self.channel_balance[buyer.address] -= added
            price = use_price * new_uses
            if new_uses:
                _limit, _used, tag = self._quota(lic, t)
                if o.tier == Tier.SUBSCRIPTION and lic.period_start != tag:
                    lic.period_start, lic.used = tag, 0
                lic.used += new_uses
                lic.consumed += new_uses
            if price:
                self.ch_ledger.accrue(o.model, ETH, price, self.fee_bps)
            self._credit(self.ch_ledger, "ch", operator.address, ETH, added - price)
            self._won("channel_redeem")
            self._won("channel: redeemed")
            if model.payees:
                self._won("channel: redeemed for a model with payees")

        def _refused(self, lic, t: int, count: int) -> bool:
            """consumeUses would revert: paused, frozen, retired, lapsed, not permitted, or used up."""
            if self.lm_paused:
                return True
            o, m = lic.offer, self.models[lic.offer.model]
            if not o.permissions & TTS or m.frozen or (m.service_ends and t >= m.service_ends):
                return True
            if (o.valid_until and t > o.valid_until) or (o.tier == Tier.SUBSCRIPTION and t >= lic.expires):
                return True
            limit, used, _ = self._quota(lic, t)
            return bool(limit) and used + count > limit

        # The base rules that do not change what a channel sees are left out (named None here), so
        # that about one step in three is a channel's; those that do (time, sales, transfers,
        # pauses, freezes, retirements, operators allowed or removed, the router replaced,
        # renewals, distributions and withdrawals) stay.
        set_platform_fee = set_asset_allowed = set_retirement_notice = set_dispute_window = None
        register_model = register_version = publish_offer = deactivate_offer = set_auto_renew = None
        cancel_subscription = approve_license = set_allowance = withdraw_platform_fees = request = None
        request_and_decide = fulfil = fulfil_batch = fail = cancel_expired = dispute = resolve_dispute = None
        settle = dispute_lapses = start_unbonding = withdraw_stake = register_operator = add_stake = None
        set_dispute_bond = set_stake_params = probe_refusals = keeper_renew = None

        # ------------------------------------------------------------ invariants and the end

        @invariant()
        def the_channels_hold_what_they_owe(self):
            held = int(w.rpc("eth_getBalance", channels.address, "latest"), 16)
            book = self.ch_ledger
            owed = sum(v for (_, asset), v in book.credits.items() if asset == ETH)
            owed += sum(s + p for (_, asset), (s, p) in book.pots.items() if asset == ETH)
            owed += book.platform.get(ETH, 0)
            assert held == sum(self.channel_balance.values()) + owed, f"conservation: channels hold {held}"
            for b in buyers:
                cid = channel_id(b.address, operator.address)
                assert tuple(channels.channel(cid)) == (self.channel_balance[b.address], self.channel_at[b.address])
            for (buyer, license_id), lane in self.lanes.items():
                assert tuple(channels.redeemed(channel_id(buyer, operator.address), license_id)) == lane

        def _drain(self) -> None:
            book = self.ch_ledger
            for model_id, asset in list(book.pots):
                assert self._distribute("ch", model_id, asset, a.other)
            for (account, asset), owed in list(book.credits.items()):
                if owed:
                    self._withdraw("ch", next(x for x in w.everyone if x.address == account), asset)
            if book.platform.get(ETH):
                self._withdraw_platform("ch", ETH, a.treasurer)
            self.the_channels_hold_what_they_owe()
            super()._drain()

    return ChannelMarket


@pytest.mark.deep
def test_channel_state_machine(world, project, capsys):  # noqa: F811 - the imported fixture
    """The market with payment channels keeps the chain equal to the model; every channel rule
    and path is reached."""
    SUCCESSES.clear()
    ERRORS.clear()
    channels = project.PaymentChannels.at(world.d.licenses.paymentChannels())
    machine = channel_machine_for(world, channels)
    base = machine_settings()
    deep = os.environ.get("HYPOTHESIS_PROFILE") == "audit"
    examples = base.max_examples if deep else int(os.environ.get("CHANNEL_EXAMPLES", "40"))
    profile = settings(base, max_examples=examples, stateful_step_count=60, derandomize=not deep)
    run_state_machine_as_test(machine, settings=profile)
    counts = Counter({k: v for k, v in SUCCESSES.items() if k.startswith("channel")})
    counts["(all rules and paths)"] = sum(SUCCESSES.values())
    with capsys.disabled():
        print("\n" + "\n".join(f"{v:>9}  {k}" for k, v in sorted(counts.items())))
    missing = [name for name in CHANNEL_RULES + REQUIRED if not SUCCESSES[name]]
    assert not missing, f"never succeeded: {missing}"
