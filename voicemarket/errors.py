"""The errors a user of voicemarket's packages can cause, one type per thing to do about it.

    PackageError                      base: catch this to handle any of them
    ├── ContentNotFound (LookupError)  the store has no content under that CID
    ├── IntegrityError (ValueError)    bytes are not what they claim: CID, SHA-256 or an
    │                                  authentication tag disagrees (corrupt, truncated, tampered)
    ├── DecryptionError                this private key cannot open this bundle (not a recipient)
    ├── BundleError (ValueError)       inputs or a bundle's layout are not a valid voice bundle
    │   └── CreatorMismatch            an intact bundle registered by another creator than it names
    ├── StoreError                     the store itself failed (Kubo unreachable, disk full, ...)
    └── LicenceError (ValueError)      an offer or ODRL document the contract cannot express
"""

from __future__ import annotations


class PackageError(Exception):
    """Base of every error in voicemarket's bundles, encryption, stores and licence documents."""


class ContentNotFound(PackageError, LookupError):
    """The store holds nothing under the requested CID."""


class IntegrityError(PackageError, ValueError):
    """Content does not match its CID or digest, or failed authentication: never use such bytes."""


class DecryptionError(PackageError):
    """The key given cannot decrypt this content (for example, the operator is not a recipient)."""


class BundleError(PackageError, ValueError):
    """The inputs do not make a valid voice bundle, or a file is not a voice bundle."""


class CreatorMismatch(BundleError):
    """The bundle names one creator and the registry another: someone re-registered a bundle they
    did not make (a public bundle's digest is no secret). Never serve such a model."""


class StoreError(PackageError):
    """The storage backend failed (unreachable node, refused request, I/O error)."""


class PolicyError(PackageError, ValueError):
    """An offer or licence document that the on-chain offer cannot express."""
