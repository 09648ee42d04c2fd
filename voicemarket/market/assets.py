"""Which asset an offer or a command names: ETH, the deployment's stablecoin, or any ERC-20 on the chain.

:func:`asset_info` reads an ERC-20's symbol and decimals from the chain; amounts are then parsed and
formatted by :mod:`voicemarket.units`.
"""

from __future__ import annotations

from typing import Any

from eth_utils import is_address, keccak, to_checksum_address

from voicemarket.errors import AssetError
from voicemarket.units import ETH_ASSET, AssetInfo

__all__ = ["asset_info"]


def asset_info(asset: str, deployment: Any = None) -> AssetInfo:
    """``ETH``, ``stablecoin`` (the deployment's) or an ERC-20 address, with its symbol and decimals."""
    text = str(asset).strip()
    if text.upper() == "ETH" or (is_address(text) and int(text, 16) == 0):
        return ETH_ASSET
    if text.lower() == "stablecoin":
        if deployment is None or deployment.stablecoin is None:
            raise AssetError("this deployment has no stablecoin: use asset: ETH or an ERC-20 address")
        text = deployment.stablecoin.address
    if not is_address(text):
        raise AssetError(f"asset must be ETH, stablecoin or an ERC-20 address, got {asset!r}")
    address = to_checksum_address(text)
    if deployment is not None and deployment.stablecoin is not None and address == deployment.stablecoin.address:
        token = deployment.stablecoin
        return AssetInfo(address, str(token.symbol()), int(token.decimals()))
    return _erc20_info(address)


def _erc20_info(address: str) -> AssetInfo:
    """Symbol and decimals of any ERC-20 (raw calls: no ABI of it is needed)."""
    import ape
    from eth_abi import decode

    def call(selector: str, kind: str) -> Any:
        try:
            raw = ape.chain.provider.web3.eth.call({"to": address, "data": keccak(text=selector)[:4]})
            return decode([kind], bytes(raw))[0]
        except Exception:  # noqa: BLE001 - any failure means "not an ERC-20 we can read"
            return None

    decimals = call("decimals()", "uint8")
    if decimals is None:
        raise AssetError(f"{address} does not answer decimals(): it is not an ERC-20 token on this chain")
    return AssetInfo(address, call("symbol()", "string") or address[:10], int(decimals))
