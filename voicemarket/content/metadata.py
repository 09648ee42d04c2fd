"""ERC-721 metadata JSON for a voice-model token (the document its ``tokenURI`` points at).

Follows the ERC-721 metadata schema (``name``, ``description``, ``image``) with the
marketplace conventions wallets and explorers read: ``animation_url`` for the preview clip
and ``attributes`` as ``{"trait_type", "value"}`` pairs. Serialised canonically (RFC 8785)
so that the same model always gives the same document and the same CID.
"""

from __future__ import annotations

from typing import Any

from voicemarket.content.bundle import Manifest
from voicemarket.content.canonical import canonical_json
from voicemarket.content.multiformats import CID


def ipfs_uri(cid: CID | str) -> str:
    return f"ipfs://{CID.parse(cid)}"


def model_metadata(
    manifest: Manifest, *, digest: bytes, preview: CID | str, image: str | None = None, external_url: str | None = None
) -> dict[str, Any]:
    """The metadata of a voice model: ``digest`` is the bundle's SHA-256, ``preview`` the public clip's CID."""
    if len(digest) != 32:
        raise ValueError("digest is the 32-byte SHA-256 of the bundle")
    document: dict[str, Any] = {
        "name": manifest.name,
        "description": manifest.description,
        "animation_url": ipfs_uri(preview),
        "attributes": [
            {"trait_type": "Languages", "value": ", ".join(manifest.languages)},
            {"trait_type": "Architecture", "value": f"{manifest.architecture} {manifest.architecture_version}"},
            {"trait_type": "Version", "value": manifest.version},
            {"trait_type": "Sample rate", "value": manifest.sample_rate, "display_type": "number"},
            {"trait_type": "Bundle SHA-256", "value": "0x" + digest.hex()},
            {"trait_type": "Creator", "value": manifest.creator},
            {"trait_type": "Voice owner", "value": manifest.voice_owner},
        ],
        "properties": {"languages": list(manifest.languages), "digest": "0x" + digest.hex()},
    }
    if image is not None:
        document["image"] = image
    if external_url is not None:
        document["external_url"] = external_url
    return document


def metadata_bytes(document: dict[str, Any]) -> bytes:
    return canonical_json(document)
