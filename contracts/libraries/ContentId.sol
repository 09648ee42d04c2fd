// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

/// @title Content ids stored compactly: a multicodec byte and a SHA2-256 digest
/// @notice A CID is stored as (codec, digest) and rebuilt on demand as the binary CIDv1
/// `0x01 <codec> 0x12 0x20 <digest>` (both supported codecs fit in a one-byte varint), or as
/// Kubo's base32 text form for `ipfs://` URIs.
library ContentId {
    /// @notice dag-pb: what `ipfs add` makes by default (CIDv0 is dag-pb as well).
    uint8 internal constant DAG_PB = 0x70;
    /// @notice raw: a single-block file added with raw leaves.
    uint8 internal constant RAW = 0x55;

    bytes internal constant _BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

    function isSupportedCodec(uint8 codec) internal pure returns (bool) {
        return codec == DAG_PB || codec == RAW;
    }

    /// @notice The binary CIDv1 of a SHA2-256 digest under `codec` (36 bytes).
    function toBytes(uint8 codec, bytes32 digest) internal pure returns (bytes memory) {
        return abi.encodePacked(uint8(0x01), codec, uint8(0x12), uint8(0x20), digest);
    }

    /// @notice `ipfs://` followed by the CIDv1 in multibase base32 (lower case, no padding), as
    /// Kubo prints it with `--cid-version 1`.
    function toIpfsUri(uint8 codec, bytes32 digest) internal pure returns (string memory) {
        return string.concat("ipfs://b", _base32(toBytes(codec, digest)));
    }

    /// @dev RFC 4648 base32, lower case, no padding.
    function _base32(bytes memory data) private pure returns (string memory) {
        uint256 bits = data.length * 8;
        bytes memory out = new bytes((bits + 4) / 5);
        uint256 buffer;
        uint256 buffered;
        uint256 o;
        for (uint256 i; i < data.length; ++i) {
            buffer = (buffer << 8) | uint8(data[i]);
            buffered += 8;
            while (buffered >= 5) {
                buffered -= 5;
                out[o++] = _BASE32[(buffer >> buffered) & 31];
            }
        }
        if (buffered > 0) out[o] = _BASE32[(buffer << (5 - buffered)) & 31];
        return string(out);
    }
}
