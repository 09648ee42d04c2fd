"""What the oracle is doing, from Redis and the chain: ``python -m oracle status`` and the
Prometheus endpoint of ``python -m oracle run`` both read this one snapshot, so they agree, and
both describe the whole operator (every process on every machine), not one process."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from oracle.runtime import Services, queue_name

COUNTERS = (
    "queued",
    "requeued",
    "fulfilled",
    "failed",
    "expired",
    "rejected",
    "onchain",
    "transactions",
    "replacements",
    "foreign_nonces",
    "reverted_transactions",
    "gas_used",
    "redis_losses",
    "deep_reorgs",
    "reorg_requeued",
    "nonce_resyncs",
)


def snapshot(svc: Services) -> dict[str, Any]:
    """Everything ``status`` shows; the chain head is None when the node does not answer."""
    ledger = svc.ledger
    checkpoint = ledger.checkpoint()
    try:
        head = int(svc.router.w3.eth.block_number)
    except Exception:  # noqa: BLE001 - status must work while the RPC is down
        head = None
    stats = ledger.stats()
    subs = ledger.submissions()
    states = ledger.state_counts()
    leases = {}
    for role in ("listener", "submitter"):
        holder = svc.redis.get(ledger.key("lease", role))
        leases[role] = holder.decode() if holder else None
    return {
        "namespace": ledger.ns,
        "chain_head": head,
        "last_block": checkpoint[0] if checkpoint else None,
        "lag_blocks": (head - checkpoint[0]) if head is not None and checkpoint else None,
        "queue_depth": int(svc.redis.llen(queue_name(svc.settings))),
        "queued": states.get("queued", 0),
        "in_flight": states.get("working", 0),
        "ready": states.get("ready", 0),
        "submitting": states.get("submitting", 0),
        "pending_transactions": sum(1 for s in subs if s.state == "sent"),
        "unconfirmed_transactions": sum(1 for s in subs if s.state == "mined"),
        "next_nonce": ledger.next_nonce(),
        "fulfilled": stats.get("fulfilled", 0),
        "failed": stats.get("failed", 0),
        "failed_by_reason": {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("failed:")},
        "totals": {k: stats.get(k, 0) for k in COUNTERS},
        "leases": leases,
        "at": time.time(),
    }


class StatusCollector(Collector):
    """Prometheus metrics from :func:`snapshot`, computed at scrape time."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self):  # noqa: ANN201 - prometheus_client's protocol
        snap = snapshot(self.svc)
        gauges = {
            "oracle_chain_head_block": ("latest block the node reports", snap["chain_head"]),
            "oracle_last_block": ("last confirmed block the listener read", snap["last_block"]),
            "oracle_queue_depth": ("tasks waiting in the Celery queue", snap["queue_depth"]),
            "oracle_next_nonce": ("next nonce the operator account will use", snap["next_nonce"]),
            "oracle_pending_transactions": ("sent, not yet mined", snap["pending_transactions"]),
            "oracle_unconfirmed_transactions": ("mined, not yet confirmed", snap["unconfirmed_transactions"]),
        }
        for name, (help_text, value) in gauges.items():
            if value is not None:
                yield GaugeMetricFamily(name, help_text, value=value)
        states = GaugeMetricFamily("oracle_requests", "requests in progress by state", labels=["state"])
        for state in ("queued", "in_flight", "ready", "submitting"):
            states.add_metric([state], snap[state])
        yield states
        for name in COUNTERS:
            yield CounterMetricFamily(
                f"oracle_{name}", f"{name.replace('_', ' ')} since the first start", value=snap["totals"][name]
            )
        reasons = CounterMetricFamily("oracle_failures", "requests failed on-chain, by reason", labels=["reason"])
        for reason, value in snap["failed_by_reason"].items():
            reasons.add_metric([reason], value)
        yield reasons


def render(snap: dict[str, Any]) -> str:
    """The human form of a snapshot (``python -m oracle status``)."""
    lines = [f"oracle {snap['namespace']}"]
    head, last = snap["chain_head"], snap["last_block"]
    lines.append(f"  chain head        {head if head is not None else 'unreachable'}")
    lines.append(
        f"  last block read   {last if last is not None else 'none yet'}"
        + (f" ({snap['lag_blocks']} behind)" if snap["lag_blocks"] is not None else "")
    )
    lines.append(f"  queue depth       {snap['queue_depth']}")
    lines.append(
        f"  in flight         {snap['in_flight']} synthesising, {snap['ready']} ready, "
        f"{snap['submitting']} being submitted"
    )
    lines.append(
        f"  transactions      {snap['pending_transactions']} pending, "
        f"{snap['unconfirmed_transactions']} awaiting confirmations, next nonce {snap['next_nonce']}"
    )
    lines.append(f"  fulfilled         {snap['fulfilled']}")
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(snap["failed_by_reason"].items()))
    lines.append(f"  failed            {snap['failed']}" + (f" ({reasons})" if reasons else ""))
    lines.append(
        f"  leases            listener: {snap['leases']['listener'] or '-'}, "
        f"submitter: {snap['leases']['submitter'] or '-'}"
    )
    return "\n".join(lines)
