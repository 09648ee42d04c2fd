"""The errors a user of voicemarket can cause, one type per thing to do about it, in one tree.

Every message says what went wrong and what to do. Catch :class:`VoicemarketError` to handle any
of them; the commands turn them into one ``Error:`` line (``voicemarket.cli.console.user_errors``).
The oracle has its own tree (``oracle/errors.py``), synth/ its own (``synth/errors.py``).

    VoicemarketError                      base: catch this to handle any of them
    ├── UnitError (ValueError)            an amount or a duration that cannot be read (units.py)
    ├── PackageError                      content/: bundles, encryption, stores, CIDs, licence documents
    │   ├── ContentNotFound (LookupError)  the store has no content under that CID
    │   ├── IntegrityError (ValueError)    bytes are not what they claim: CID, SHA-256 or an
    │   │   │                              authentication tag disagrees (corrupt, truncated, tampered)
    │   │   ├── CarError                   a CAR file is malformed, or a block in it does not match its CID
    │   │   └── DagError                   a block is not the dag-pb / UnixFS node it claims to be
    │   ├── DecryptionError                this private key cannot open this bundle or box (not a recipient)
    │   ├── EnvelopeError (ValueError)     a private request's envelope opened, but is not a valid one
    │   ├── BundleError (ValueError)       inputs or a bundle's layout are not a valid voice bundle
    │   │   ├── CreatorMismatch            an intact bundle registered by another creator than it names
    │   │   └── PreviewError               a preview clip that is (or holds) the reference or a recording
    │   ├── StoreError                     the store itself failed (Kubo unreachable, disk full, ...)
    │   ├── ContentTooLarge                content larger than the caller takes (refused before or while reading)
    │   ├── InvalidCID (ValueError)        text or bytes that are not a content id this project reads
    │   ├── CanonicalJSONError (ValueError) a value with no canonical JSON form (NaN, lone surrogate, ...)
    │   └── PolicyError (ValueError)       an offer or ODRL document the contract cannot express
    ├── MarketError                       market/: what the chain, a deployment or the user's input refuses
    │   ├── DeploymentError                no deployment saved, a stale one, a wrong parameters file
    │   ├── AssetError (ValueError)        an asset that is not ETH, the stablecoin or a readable ERC-20
    │   ├── MintError                      the creator's model folder, preview, offers, operators or consent
    │   ├── GovernanceError                a retirement, freeze or version the registry would refuse
    │   ├── LicensingError                 the buyer's offer, cap, allowance or licence
    │   ├── OperatorError                  an operator's registration, stake or unbonding
    │   ├── KeepingError                   a dispute, settlement or auto-renewal that cannot happen now
    │   ├── SpeechError                    a request the buyer can fix: licence, operator, text, fee, store
    │   │   └── AudioMismatch              the delivered audio is not what the operator committed to
    │   ├── ChannelError (ValueError)      a payment-channel voucher or operation that is malformed or refused
    │   ├── BuyerKeyError                  the wallet would not (or could not) make the buyer's encryption key
    │   └── LocalUseError                  a local-use option, purchase, delivery, fetch or usage report refused
    ├── ServiceSettingsError (ValueError)  a long-running service's settings (the index) that cannot be used
    ├── IndexingError                     index/: what the indexer or its database cannot do
    │   ├── IndexSchemaError               the database holds another schema version than this code reads
    │   ├── IndexQueryError (ValueError)   a search or list the index cannot answer as asked (names the field)
    │   └── ReorgTooDeep                   the chain replaced blocks older than the index can rewind
    └── DevError                          dev/: the local services and the demo
        ├── ServiceError (RuntimeError)    a local service (anvil, redis, a worker) failed to start or died
        └── DemoError                      the demo cannot go on
"""

from __future__ import annotations


class VoicemarketError(Exception):
    """Base of every error voicemarket raises for its users; the message says what to do."""


class UnitError(VoicemarketError, ValueError):
    """An amount or a duration written in a way that cannot be read."""


# ---------------------------------------------------------------- content/


class PackageError(VoicemarketError):
    """Base of every error in voicemarket's bundles, encryption, stores and licence documents."""


class ContentNotFound(PackageError, LookupError):
    """The store holds nothing under the requested CID."""


class IntegrityError(PackageError, ValueError):
    """Content does not match its CID or digest, or failed authentication: never use such bytes."""


class CarError(IntegrityError):
    """A CAR file is malformed, or a block in it does not match its CID."""


class DagError(IntegrityError):
    """A block is not the dag-pb / UnixFS node it claims to be."""


class DecryptionError(PackageError):
    """The key given cannot decrypt this content (for example, the operator is not a recipient)."""


class EnvelopeError(PackageError, ValueError):
    """A private request's sealed input opened with the operator's key but is not a valid envelope."""


class BundleError(PackageError, ValueError):
    """The inputs do not make a valid voice bundle, or a file is not a voice bundle."""


class CreatorMismatch(BundleError):
    """The bundle names one creator and the registry another: someone re-registered a bundle they
    did not make (a public bundle's digest is no secret). Never serve such a model."""


class PreviewError(BundleError):
    """A preview clip that is, or holds, the reference clip or one of the creator's recordings: published
    unencrypted, it would hand anyone the prompt a zero-shot model needs to clone the voice."""


class StoreError(PackageError):
    """The storage backend failed (unreachable node, refused request, I/O error)."""


class ContentTooLarge(PackageError):
    """The content under a CID is larger than the caller's ``max_bytes``: refused from its declared size
    before reading, or as soon as more than that was read (``size`` is what is known of it)."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class InvalidCID(PackageError, ValueError):
    """A string or byte string is not a content id this project understands."""


class CanonicalJSONError(PackageError, ValueError):
    """A value that has no canonical JSON form (NaN, infinity, lone surrogate, non-string key...)."""


class PolicyError(PackageError, ValueError):
    """An offer or licence document that the on-chain offer cannot express."""


# ---------------------------------------------------------------- market/


class MarketError(VoicemarketError):
    """Base of what the market's workflows refuse before or instead of a transaction."""


class DeploymentError(MarketError):
    """A deployment is missing, stale, or its parameters file is wrong; the message says what to do."""


class AssetError(MarketError, ValueError):
    """A payment asset that is not ETH, the deployment's stablecoin or an ERC-20 token on this chain."""


class MintError(MarketError):
    """Something the creator can fix (the folder, the offers file, an operator, the consent); the message says how."""


class GovernanceError(MarketError):
    """A retirement, freeze, unfreeze or new version the registry would refuse; the message says what to do."""


class LicensingError(MarketError):
    """A buyer's mistake (wrong offer, cap too low, allowance missing, ...); the message says what to do."""


class OperatorError(MarketError):
    """An operator's mistake (not registered, stake too low, still locked, ...); the message says what to do."""


class KeepingError(MarketError):
    """A dispute, settlement or auto-renewal that cannot happen now; the message says why and what to do."""


class SpeechError(MarketError):
    """Something the buyer can fix (licence, operator, text, fee, store); the message says what."""


class AudioMismatch(SpeechError):
    """The audio behind the delivered CID is not what the operator committed to on-chain."""


class ChannelError(MarketError, ValueError):
    """A payment-channel voucher or channel operation is malformed or refused (docs/api.md)."""


class BuyerKeyError(MarketError):
    """The buyer's encryption key cannot be made (the wallet declined to sign, or signed with another
    account), or does not open a result sealed to the buyer; the message says what to do."""


class LocalUseError(MarketError):
    """A local-use licence's option, purchase, delivery, fetch or usage report that cannot happen (say why)."""


# ---------------------------------------------------------------- services: index/, web/


class ServiceSettingsError(VoicemarketError, ValueError):
    """A service's settings (file, environment or options) that cannot be used; the message names each."""


class IndexingError(VoicemarketError):
    """Base of what the indexer or its database cannot do; the message says what to do."""


class IndexSchemaError(IndexingError):
    """The database holds an index of another schema version than this code reads."""


class IndexQueryError(IndexingError, ValueError):
    """A query the index cannot answer as asked; ``field`` names the parameter to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ReorgTooDeep(IndexingError):
    """The chain replaced blocks that the index can no longer rewind (older than its journal)."""


# ---------------------------------------------------------------- dev/


class DevError(VoicemarketError):
    """Base of the development harness's errors (local services, the demo)."""


class ServiceError(DevError, RuntimeError):
    """A local service could not be started, or died while it was needed."""


class DemoError(DevError):
    """The demo cannot go on; the message says what to do."""
