"""Private requests' sealed boxes and envelopes, and the buyer's encryption key derived from a signature."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given
from hypothesis import strategies as st

from voicemarket.content.envelopes import (
    ENVELOPE_OVERHEAD,
    RequestEnvelope,
    input_commitment,
    open_output,
    open_request,
    seal_output,
    seal_request,
)
from voicemarket.content.sealing import (
    BOX_OVERHEAD,
    box_data_key,
    open_box,
    open_box_with_key,
    public_key_from_private,
    seal_box,
)
from voicemarket.errors import BuyerKeyError, DecryptionError, EnvelopeError, IntegrityError, PackageError
from voicemarket.market import chain as vm
from voicemarket.market.buyer_key import SECP256K1_ORDER, BuyerKey, key_from_signature, key_message

OPERATOR = bytes(range(1, 33))
OTHER = bytes(range(2, 34))
# Anvil's first account (the "test test ... junk" mnemonic), a public vector.
ANVIL0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL0_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


@given(message=st.binary(max_size=3000))
def test_a_box_opens_for_its_recipient_only(message):
    """A sealed box gives back exactly its message to the recipient's key, and to no other key."""
    box = seal_box(message, public_key_from_private(OPERATOR))
    assert len(box) == BOX_OVERHEAD + len(message)
    assert open_box(box, OPERATOR) == message
    assert open_box_with_key(box, box_data_key(box, OPERATOR)) == message
    with pytest.raises(DecryptionError, match="not for account key"):
        open_box(box, OTHER)


@given(message=st.binary(max_size=64), where=st.integers(0), bit=st.integers(0, 7))
def test_any_flipped_bit_of_a_box_is_caught(message, where, bit):
    """A change to any bit of a box (its key wrapping or its sealed stream) fails; nothing is returned."""
    box = bytearray(seal_box(message, public_key_from_private(OPERATOR)))
    box[where % len(box)] ^= 1 << bit
    with pytest.raises(PackageError):
        open_box(bytes(box), OPERATOR)


def test_a_short_text_fits_inline_sealed_and_the_envelope_round_trips():
    buyer = public_key_from_private(OTHER)
    text = "é" * ((vm.MAX_INPUT_BYTES - 1 - ENVELOPE_OVERHEAD) // 2)  # 308 bytes: the most that fits inline
    envelope = RequestEnvelope(text, buyer, b"\x07" * 16)
    box = seal_request(envelope, public_key_from_private(OPERATOR))
    data = vm.private_input(box)
    assert len(data) == vm.MAX_INPUT_BYTES
    assert text.encode() not in data
    parsed = vm.RequestInput.parse(data)
    assert parsed.private and parsed.cid is None
    opened = open_request(parsed.inline, OPERATOR)
    assert opened == envelope and opened.input_hash == input_commitment(text, b"\x07" * 16)
    with pytest.raises(ValueError, match="fit on-chain"):
        vm.private_input(
            seal_request(RequestEnvelope(text + "x", buyer, b"\x07" * 16), public_key_from_private(OPERATOR))
        )


def test_the_commitment_hides_the_text_and_binds_it():
    """inputHash of a private request is not the text's SHA-256 (a guessed line cannot be tested against it),
    and another text or salt gives another commitment."""
    import hashlib

    salt = b"\x01" * 16
    assert input_commitment("Yes.", salt) != hashlib.sha256(b"Yes.").digest()
    assert input_commitment("Yes.", salt) != input_commitment("Yes!", salt)
    assert input_commitment("Yes.", salt) != input_commitment("Yes.", b"\x02" * 16)


def test_a_box_that_is_not_an_envelope_says_so():
    box = seal_box(b"\x09not an envelope", public_key_from_private(OPERATOR))
    with pytest.raises(EnvelopeError, match="not a version-1 request envelope"):
        open_request(box, OPERATOR)
    with pytest.raises(IntegrityError, match="not a voicemarket sealed box"):
        open_request(b"plain text", OPERATOR)


def test_the_output_is_sealed_to_the_buyer():
    buyer = BuyerKey(ANVIL0_ADDRESS, 31337, OTHER)
    audio = b"RIFF" + bytes(5000)
    box = seal_output(audio, buyer.public_key)
    assert audio not in box
    assert open_output(box, buyer.private_key) == audio
    with pytest.raises(DecryptionError):
        open_output(box, OPERATOR)


class _Wallet:
    """A wallet that signs with eth_account, as MetaMask and Ape's accounts do (RFC 6979)."""

    def __init__(self, key: str, *, signs_as: str | None = None, declines: bool = False) -> None:
        self.key = signs_as or key
        self.address = Account.from_key(key).address
        self.declines = declines

    def sign_message(self, message):
        if self.declines:
            return None
        signed = Account.sign_message(message, self.key)

        class Signature:
            v, r, s = signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")

        return Signature()


def test_the_buyer_key_is_the_same_every_time_and_per_chain():
    """The same account on the same chain always gets the same key (nothing to store); another chain or
    account another one. The vector pins the derivation: changing it would lock buyers out of their results."""
    wallet = _Wallet(ANVIL0_KEY)
    first, again = BuyerKey.derive(wallet, 31337), BuyerKey.derive(wallet, 31337)
    assert first == again
    assert first.key_address == "0x7b5275cf09c5bAd4dC85735565119Aef36493A66"
    assert first.key_address != ANVIL0_ADDRESS
    assert BuyerKey.derive(wallet, 1).private_key != first.private_key
    assert BuyerKey.derive(_Wallet("0x" + "22" * 32), 31337).private_key != first.private_key
    assert first.input_salt("Hello.") == again.input_salt("Hello.") != first.input_salt("Hello!")


def test_the_key_message_says_what_the_signature_gives_away():
    message = key_message(31337, ANVIL0_ADDRESS.lower())
    assert message.startswith("voicemarket encryption key v1\nchain: 31337\naccount: " + ANVIL0_ADDRESS)
    assert "Anyone who gets this signature can read them" in message


def test_a_high_s_signature_gives_the_same_key():
    """Wallets may write s in either form: the key depends on (r, low s) only, not on v."""
    signed = Account.sign_message(encode_defunct(text=key_message(5, ANVIL0_ADDRESS)), ANVIL0_KEY)
    low = key_from_signature(signed.r, signed.s, 5, ANVIL0_ADDRESS)
    assert key_from_signature(signed.r, SECP256K1_ORDER - signed.s, 5, ANVIL0_ADDRESS) == low


def test_a_wallet_that_declines_or_signs_as_another_account_is_refused():
    with pytest.raises(BuyerKeyError, match="did not sign the encryption-key message"):
        BuyerKey.derive(_Wallet(ANVIL0_KEY, declines=True), 1)
    with pytest.raises(BuyerKeyError, match=f"not as {ANVIL0_ADDRESS}"):
        BuyerKey.derive(_Wallet(ANVIL0_KEY, signs_as="0x" + "33" * 32), 1)
