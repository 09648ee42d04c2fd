"""The buyer's encryption key: derived from one wallet signature, so that a buyer needs nothing new.

Private requests seal the audio to this key (:mod:`voicemarket.content.envelopes`); local-use
licences (issue 19) will wrap a model's data key to it. It is a secp256k1 key, like the account's
own, but not the account's: a wallet never hands out its private key, while every wallet signs.

How it is made (:meth:`BuyerKey.derive`): the account signs, with ``personal_sign`` (EIP-191),
the fixed message :func:`key_message` names — the purpose ``voicemarket encryption key v1``, the
chain id and the account — and the key is HKDF-SHA256 of the signature's ``r || s`` (``s`` in
its low form; ``v`` left out, since wallets write it as 0/1 or 27/28). Wallets sign with RFC 6979
deterministic nonces, so the same account gets the same key on every device, every time: nothing
to store, back up or register, and a browser (the DApp) derives the same key as ``ape run say``.

What this costs, and why it is still the choice:

- **Whoever gets that signature has the key.** A site that talks a buyer into signing the same
  message can read their private results. The message therefore says so in plain words, and
  signs nothing else: it is no transaction, no permit, no login challenge.
- **Wallets without deterministic signatures** (some multi-party and smart-contract wallets) give
  another key each time. ``say`` opens a result in the same run that derived the key, so it
  works; following a request again later fails with :class:`~voicemarket.errors.BuyerKeyError`
  saying so. Such a buyer can keep the derived private key themselves, or ask publicly.
- The alternative, registering a public key on-chain once, needs a transaction and storage and
  still a private key kept somewhere; a signature-derived key is what many wallets' encryption
  schemes do.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_utils import to_checksum_address

from voicemarket.content.envelopes import SALT_SIZE
from voicemarket.content.sealing import address_from_public_key, public_key_from_private
from voicemarket.errors import BuyerKeyError

PURPOSE = "voicemarket encryption key v1"
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HKDF_SALT = b"voicemarket/buyer-key/v1"
_SALT_LABEL = b"voicemarket/input-salt/v1\x00"


def key_message(chain_id: int, account: str) -> str:
    """The text the buyer's wallet signs (EIP-191 ``personal_sign``) to make their encryption key."""
    return (
        f"{PURPOSE}\n"
        f"chain: {int(chain_id)}\n"
        f"account: {to_checksum_address(account)}\n\n"
        "Signing this makes your voicemarket encryption key: it opens the speech you ask for privately "
        "and the voice models you license for local use. Anyone who gets this signature can read them. "
        "Sign it only in voicemarket's own tools; no transaction or login ever needs it."
    )


def key_from_signature(r: int, s: int, chain_id: int, account: str) -> bytes:
    """The 32-byte private key for a signature ``(r, s)`` of :func:`key_message` (``s`` normalised low)."""
    if not (0 < r < SECP256K1_ORDER and 0 < s < SECP256K1_ORDER):
        raise BuyerKeyError("the wallet's signature is malformed (r or s out of range)")
    s = min(s, SECP256K1_ORDER - s)
    info = int(chain_id).to_bytes(32, "big") + bytes.fromhex(to_checksum_address(account)[2:])
    material = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    for counter in range(256):  # a result outside 1..n-1 has probability ~2**-128: try the next one
        candidate = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=info + bytes([counter])).derive(
            material
        )
        if 0 < int.from_bytes(candidate, "big") < SECP256K1_ORDER:
            return candidate
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class BuyerKey:
    """An account's encryption key pair on one chain."""

    account: str
    chain_id: int
    private_key: bytes = field(repr=False)

    @property
    def public_key(self) -> bytes:
        """64 bytes (x || y): what a private request names as its reply-to key."""
        return public_key_from_private(self.private_key)

    @property
    def key_address(self) -> str:
        """The address of the encryption key (not the account's): how messages name it."""
        return address_from_public_key(self.public_key)

    def input_salt(self, text: str) -> bytes:
        """The salt of a private request's ``inputHash`` for ``text``: HMAC-SHA256 under this key, so the
        buyer can make it again (to reveal it in a dispute) and nobody else can guess it."""
        digest = hmac.new(self.private_key, _SALT_LABEL + text.encode("utf-8"), hashlib.sha256).digest()
        return digest[:SALT_SIZE]

    @classmethod
    def derive(cls, account: Any, chain_id: int) -> BuyerKey:
        """Ask ``account`` (an Ape account: it may prompt for its passphrase) to sign :func:`key_message`,
        check that it signed as itself, and derive the key."""
        from eth_account import Account
        from eth_account.messages import encode_defunct

        address = to_checksum_address(str(account.address))
        message = encode_defunct(text=key_message(chain_id, address))
        signature = account.sign_message(message)
        if signature is None:
            raise BuyerKeyError(
                f"account {address} did not sign the encryption-key message: without it the request cannot be "
                "private; sign it, or ask for public speech (--public)"
            )
        r, s, v = int.from_bytes(bytes(signature.r), "big"), int.from_bytes(bytes(signature.s), "big"), signature.v
        signer = Account.recover_message(message, vrs=(v, r, s))
        if signer.lower() != address.lower():
            raise BuyerKeyError(f"the wallet signed the encryption-key message as {signer}, not as {address}")
        return cls(address, int(chain_id), key_from_signature(r, s, chain_id, address))
