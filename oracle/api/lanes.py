"""The vouchers the API accepted, per lane (channel, licence), kept in Redis so that a restart
loses no money: the latest voucher, the one before it, and how many uses were served.

A voucher pays ahead for one use; a stream that fails before any audio gives the use back
(``served`` goes down) and the buyer's next request reuses the same voucher. The redeemer hands in
the latest voucher whose every use was served (:meth:`Lane.redeemable`), never one paying for a
use still owed to the buyer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import redis


@dataclass
class Lane:
    buyer: str
    asset: str
    model_id: int
    amount: int = 0  # the latest accepted voucher's totals
    uses: int = 0
    signature: str = ""
    prev_amount: int = 0  # the voucher before it (redeemable while the latest is not fully served)
    prev_uses: int = 0
    prev_signature: str = ""
    served: int = 0  # uses served (streams begun) in all

    @property
    def prepaid(self) -> int:
        return self.uses - self.served

    def redeemable(self) -> tuple[int, int, str] | None:
        """(amount, uses, signature) of the latest voucher whose uses were all served."""
        if self.signature and self.served >= self.uses:
            return self.amount, self.uses, self.signature
        if self.prev_signature and self.served >= self.prev_uses:
            return self.prev_amount, self.prev_uses, self.prev_signature
        return None


class LaneBook:
    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.redis, self.ns = client, namespace

    def lock(self, channel: bytes, license_id: int):  # noqa: ANN201 - a redis-py Lock (a context manager)
        """The lane's lock in Redis: API processes sharing one Redis never accept one voucher twice."""
        return self.redis.lock(
            f"{self.ns}:api:lock:{channel.hex()}:{license_id}", timeout=30, blocking_timeout=15, thread_local=False
        )

    def _key(self, channel: bytes, license_id: int) -> str:
        return f"{self.ns}:api:lane:{channel.hex()}:{license_id}"

    def get(self, channel: bytes, license_id: int) -> Lane | None:
        raw = self.redis.hgetall(self._key(channel, license_id))
        if not raw:
            return None
        data = {k.decode(): v.decode() for k, v in raw.items()}
        ints = ("model_id", "amount", "uses", "prev_amount", "prev_uses", "served")
        return Lane(**{k: int(v) if k in ints else v for k, v in data.items()})

    def save(self, channel: bytes, license_id: int, lane: Lane) -> None:
        pipe = self.redis.pipeline()
        pipe.hset(self._key(channel, license_id), mapping={k: str(v) for k, v in asdict(lane).items()})
        pipe.sadd(f"{self.ns}:api:channel:{channel.hex()}", str(license_id))
        pipe.sadd(f"{self.ns}:api:lanes", f"{channel.hex()}:{license_id}")
        pipe.execute()

    def lanes_of(self, channel: bytes) -> dict[int, Lane]:
        out = {}
        for member in self.redis.smembers(f"{self.ns}:api:channel:{channel.hex()}"):
            lane = self.get(channel, int(member))
            if lane is not None:
                out[int(member)] = lane
        return out

    def all_lanes(self) -> list[tuple[bytes, int, Lane]]:
        out = []
        for member in sorted(self.redis.smembers(f"{self.ns}:api:lanes")):
            channel_hex, license_id = member.decode().split(":")
            lane = self.get(bytes.fromhex(channel_hex), int(license_id))
            if lane is not None:
                out.append((bytes.fromhex(channel_hex), int(license_id), lane))
        return out
