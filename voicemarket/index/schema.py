"""The index's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Conventions, so that one set of queries runs on both databases:

- **Ids and addresses are text.** Model ids are uint256 (``0x`` + 64 lower-case hex digits);
  addresses are checksummed (``0xAbC...``), as the chain's tools print them. Offer, licence
  and request ids are sequential from 1 and fit a BIGINT.
- **Amounts are text of 78 digits**, zero-padded (:func:`amount`): a uint256 fits, and text
  order is numeric order, so ``price <= :max`` and ``ORDER BY price`` are exact on both
  databases (neither SQLite's INTEGER nor a float holds 10**18 * 100). Sums are made in
  Python, exactly.
- **Positions** order everything in chain order: ``block << 20 | log index``
  (:func:`position`), unique per log. Every row made by an event keeps the block of that
  event (``block``): rewinding a reorg deletes the rows made after the common ancestor, and
  the :data:`journal` restores the columns that later events changed (see
  :mod:`voicemarket.index.indexer`).
- **Times are unix seconds** (the block's timestamp), as the contracts keep them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION = 4
"""Bumped by every change to these tables; :mod:`voicemarket.index.db` migrates or refuses."""

AMOUNT_DIGITS = 78  # len(str(2**256 - 1))
LOG_INDEX_BITS = 20


def amount(value: int) -> str:
    """An amount as the tables store it: 78 decimal digits, zero-padded (text order = numeric order)."""
    value = int(value)
    if value < 0:
        raise ValueError(f"amounts are never negative, got {value}")
    return str(value).zfill(AMOUNT_DIGITS)


def position(block: int, log_index: int) -> int:
    """A log's place in chain order: ``block << 20 | log_index`` (unique per log)."""
    return int(block) << LOG_INDEX_BITS | int(log_index)


def block_of(position_: int) -> int:
    return int(position_) >> LOG_INDEX_BITS


metadata = MetaData()

_ID = String(66)  # 0x + 64 hex digits
_ADDRESS = String(42)
_AMOUNT = String(AMOUNT_DIGITS)


def _made_at() -> list[Column]:
    """Where the event that made a row stands: block (rewinds delete by it), time, transaction."""
    return [
        Column("block", BigInteger, nullable=False, index=True),
        Column("timestamp", BigInteger, nullable=False),
        Column("tx_hash", String(66), nullable=False),
    ]


state = Table(
    "index_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
"""Key/value: ``schema_version``, ``chain_id``, the contracts' addresses, ``next_block`` (the first
block not indexed yet), ``unjournaled_until`` (the last block indexed without a journal)."""

assets = Table(
    "assets",
    metadata,
    Column("address", _ADDRESS, primary_key=True),
    Column("symbol", String(32), nullable=False),
    Column("decimals", Integer, nullable=False),
)
"""The payment assets offers name (ETH and each ERC-20, read once from the token): prices are
written and read in their units ("10 mUSD") without asking the chain."""

blocks = Table(
    "blocks",
    metadata,
    Column("number", BigInteger, primary_key=True),
    Column("hash", String(66), nullable=False),
)
"""Hashes of recent indexed blocks (each batch's last block and every block with events), kept
for ``reorg_depth`` blocks: a block whose hash the chain no longer has was reorged away."""

journal = Table(
    "journal",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("block", BigInteger, nullable=False, index=True),
    Column("changes", JSON, nullable=False),  # [[table, key, {column: value before the block}], ...] in order
)
"""Per recent block, the columns its events changed in each row, as they were before it: a rewind applies them
back newest first (one row per block, not per change: a busy block is one insert)."""

models = Table(
    "models",
    metadata,
    Column("model_id", _ID, primary_key=True),
    Column("position", BigInteger, nullable=False, unique=True),
    Column("creator", _ADDRESS, nullable=False, index=True),
    Column("owner", _ADDRESS, nullable=False, index=True),
    Column("voice_owner", _ADDRESS, nullable=False, index=True),
    Column("voice_owner_bps", Integer, nullable=False),
    Column("consent", Boolean, nullable=False),  # the voice owner is not the creator: consent was signed
    Column("parent_id", _ID, nullable=True, index=True),
    Column("bundle_digest", String(66), nullable=False),
    Column("policy_hash", String(66), nullable=False),
    Column("languages", Integer, nullable=False),
    Column("metadata_cid", String(80), nullable=False, index=True),
    Column("dispute_window", Integer, nullable=False, default=0),
    Column("frozen", Boolean, nullable=False, default=False),
    Column("frozen_reason", String(66), nullable=True),
    Column("service_ends_at", BigInteger, nullable=False, default=0),  # 0 unless retired
    Column("uses", BigInteger, nullable=False, default=0),  # synthesis requests made
    Column("licenses_sold", BigInteger, nullable=False, default=0),
    *_made_at(),
    Index("ix_models_most_used", "uses", "position"),
    Index("ix_models_creator_newest", "creator", "position"),
)

model_metadata = Table(
    "model_metadata",
    metadata,
    Column("cid", String(80), primary_key=True),
    Column("state", String(8), nullable=False),  # pending | ok | error
    Column("name", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("search_text", Text, nullable=True),  # lower-case name and description, for text search
    Column("languages", JSON, nullable=True),
    Column("preview", Text, nullable=True),
    Column("image", Text, nullable=True),
    Column("architecture", Text, nullable=True),
    Column("version", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", BigInteger, nullable=False, default=0),
)
"""The ERC-721 metadata behind a CID (content-addressed: what a CID holds never changes, so rows
here are never rewound). ``error`` says why a document was refused; it is tried again later."""

offers = Table(
    "offers",
    metadata,
    Column("offer_id", BigInteger, primary_key=True, autoincrement=False),
    Column("model_id", _ID, nullable=False, index=True),
    Column("publisher", _ADDRESS, nullable=False),
    Column("tier", Integer, nullable=False),
    Column("asset", _ADDRESS, nullable=False),
    Column("price", _AMOUNT, nullable=False),
    Column("price_30d", _AMOUNT, nullable=False),  # subscriptions: the price of 30 days; others: price
    Column("period", BigInteger, nullable=False),
    Column("max_uses", BigInteger, nullable=False),
    Column("pack_size", BigInteger, nullable=False),
    Column("valid_until", BigInteger, nullable=False),
    Column("max_licenses", BigInteger, nullable=False),
    Column("permissions", Integer, nullable=False),
    Column("prohibitions", Integer, nullable=False),
    Column("attribution", Boolean, nullable=False),
    Column("transferable", Boolean, nullable=False),
    Column("purposes", Integer, nullable=False),
    Column("territories", String(512), nullable=False),
    Column("policy_hash", String(66), nullable=False),  # the ODRL document is rebuilt from the terms when read
    Column("active", Boolean, nullable=False),
    Column("sold", BigInteger, nullable=False, default=0),
    *_made_at(),
    Index("ix_offers_search", "model_id", "active", "tier", "asset", "price_30d"),
    Index("ix_offers_cheapest", "asset", "price_30d"),
)

licenses = Table(
    "licenses",
    metadata,
    Column("license_id", BigInteger, primary_key=True, autoincrement=False),
    Column("offer_id", BigInteger, nullable=False, index=True),
    Column("model_id", _ID, nullable=False, index=True),
    Column("tier", Integer, nullable=False),
    Column("buyer", _ADDRESS, nullable=False),
    Column("holder", _ADDRESS, nullable=False, index=True),
    Column("asset", _ADDRESS, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("paid", _AMOUNT, nullable=False),
    Column("expires_at", BigInteger, nullable=False, default=0),  # subscriptions
    Column("auto_renew", Boolean, nullable=False, default=False),
    Column("cancelled", Boolean, nullable=False, default=False),
    Column("uses", BigInteger, nullable=False, default=0),  # requests made under it, refunds given back
    Column("use_limit", BigInteger, nullable=False, default=0),  # 0 = unlimited (per period for subscriptions)
    *_made_at(),
)

requests = Table(
    "requests",
    metadata,
    Column("request_id", BigInteger, primary_key=True, autoincrement=False),
    Column("position", BigInteger, nullable=False, unique=True),
    Column("model_id", _ID, nullable=False, index=True),
    Column("license_id", BigInteger, nullable=False, index=True),
    Column("requester", _ADDRESS, nullable=False, index=True),
    Column("operator", _ADDRESS, nullable=False, index=True),
    Column("asset", _ADDRESS, nullable=False),
    Column("use_price", _AMOUNT, nullable=False),
    Column("fee", _AMOUNT, nullable=False),
    Column("language", Integer, nullable=False),
    Column("deadline", BigInteger, nullable=False),
    Column("status", Integer, nullable=False),  # voicemarket.protocol.RequestStatus
    Column("fail_reason", Integer, nullable=True),
    Column("output_cid", String(80), nullable=True),
    Column("fulfilled_at", BigInteger, nullable=True),
    Column("settle_after", BigInteger, nullable=True),
    Column("closed_at", BigInteger, nullable=True),  # settled, reversed, failed or expired
    *_made_at(),
)

operators = Table(
    "operators",
    metadata,
    Column("address", _ADDRESS, primary_key=True),
    Column("public_key", String(130), nullable=False),
    Column("registered", Boolean, nullable=False),  # false once the stake is withdrawn
    Column("stake", _AMOUNT, nullable=False),
    Column("unbonding_ends_at", BigInteger, nullable=False, default=0),
    Column("slashed", _AMOUNT, nullable=False),
    Column("fulfilled", BigInteger, nullable=False, default=0),
    Column("failed", BigInteger, nullable=False, default=0),
    Column("expired", BigInteger, nullable=False, default=0),
    Column("disputes_lost", BigInteger, nullable=False, default=0),
    *_made_at(),
)

operator_fees = Table(
    "operator_fees",
    metadata,
    Column("operator", _ADDRESS, primary_key=True),
    Column("asset", _ADDRESS, primary_key=True),
    Column("fee", _AMOUNT, nullable=False),
    *_made_at(),
)

model_operators = Table(
    "model_operators",
    metadata,
    Column("model_id", _ID, primary_key=True),
    Column("operator", _ADDRESS, primary_key=True),
    Column("allowed", Boolean, nullable=False),
    Column("allowed_until", BigInteger, nullable=False),
    *_made_at(),
)

revenue = Table(
    "revenue",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("model_id", _ID, nullable=False, index=True),
    Column("asset", _ADDRESS, nullable=False),
    Column("source", String(8), nullable=False),  # sales (licence manager) | uses (router)
    Column("kind", String(12), nullable=False),  # accrued | distributed
    Column("amount", _AMOUNT, nullable=False),  # accrued: gross; distributed: the parties' part
    Column("platform_fee", _AMOUNT, nullable=False),
    *_made_at(),
)
"""Every ``RevenueAccrued`` and ``RevenueDistributed`` of both money-holding contracts."""

payouts = Table(
    "payouts",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),  # the Credited log's (or the settle's)
    Column("model_id", _ID, nullable=False, index=True),
    Column("asset", _ADDRESS, nullable=False),
    Column("account", _ADDRESS, nullable=False, index=True),
    Column("party", String(12), nullable=False),  # creator | voice owner | co-creator | operator
    Column("amount", _AMOUNT, nullable=False),
    *_made_at(),
)
"""What each party was credited: model shares (the ``Credited`` logs of a distribution) and
operator fees (``SynthesisSettled``)."""

activity = Table(
    "activity",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(24), nullable=False),
    Column("model_id", _ID, nullable=True, index=True),
    Column("account", _ADDRESS, nullable=True, index=True),  # who acted: buyer, requester, operator, ...
    Column("counterparty", _ADDRESS, nullable=True, index=True),  # whom it concerns besides
    Column("license_id", BigInteger, nullable=True),
    Column("request_id", BigInteger, nullable=True),
    Column("data", JSON, nullable=False),
    *_made_at(),
)
"""The live feed (server-sent events): licences sold, uses requested, fulfilments, failures,
expiries, settlements, disputes, in chain order."""

REWOUND_TABLES = (
    models,
    offers,
    licenses,
    requests,
    operators,
    operator_fees,
    model_operators,
    revenue,
    payouts,
    activity,
)
"""Tables whose rows events make and change: what a rewind deletes and restores."""

TABLES_BY_NAME = {table.name: table for table in REWOUND_TABLES}
