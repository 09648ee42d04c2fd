"""Where a voicemarket deployment lives per network, and the parameters it is deployed with.

- Addresses are saved per network in ``<home>/deployments/<ecosystem>_<network>.json``
  (``<home>`` is ``$VOICEMARKET_HOME`` or ``.voicemarket`` in the working directory; git
  ignores it), written atomically. :func:`save` after ``deploy``; :func:`load` in every other
  command, which checks that the saved contracts are on the connected chain.
- Constructor parameters come from ``deploy/<network>.yaml`` (``deploy/local.yaml`` for the
  local networks, see that file for every key). Amounts are wei or ``"0.1 ether"``; durations
  are seconds or ``"8 days"``.

Both take the connected Ape provider (or a ``network_key`` string such as ``ethereum_local``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from voicemarket.content.files import atomic_output
from voicemarket.errors import DeploymentError
from voicemarket.market.chain import Deployment
from voicemarket.protocol import DAY
from voicemarket.units import parse_amount, parse_duration

ROOT = Path(__file__).resolve().parents[2]
PARAMETERS_DIR = ROOT / "deploy"
FORMAT_VERSION = 1
LOCAL_NETWORKS = ("local",)

PARAMETER_KEYS = {
    "platform_fee_bps": "bps",
    "retirement_notice": "duration",
    "stablecoin": "stablecoin",
    "min_stake": "amount",
    "slash_amount": "amount",
    "unbonding_delay": "duration",
    "dispute_bond": "amount",
    "admin": "address",
    "arbiter": "address",
    "treasurer": "address",
    "pauser": "address",
    "fee_manager": "address",
}
"""The keys a ``deploy/<network>.yaml`` may hold, and how each is read."""


def home() -> Path:
    """The folder voicemarket keeps its local state in (``$VOICEMARKET_HOME`` or ``./.voicemarket``)."""
    return Path(os.environ.get("VOICEMARKET_HOME") or Path.cwd() / ".voicemarket")


def network_key(network: Any = None) -> str:
    """``<ecosystem>_<network>`` of a provider / network object, a choice string or the connected one."""
    if network is None:
        import ape

        network = ape.chain.provider
    if isinstance(network, str):
        parts = [p for p in network.split(":") if p]
        if len(parts) == 1 and "_" in parts[0]:
            return parts[0]
        if len(parts) < 2:
            raise DeploymentError(f"name a network as ecosystem:network (e.g. ethereum:local), got {network!r}")
        return f"{parts[0]}_{parts[1]}"
    net = getattr(network, "network", network)  # a provider has .network; a network has .ecosystem
    return f"{net.ecosystem.name}_{net.name}"


def choice_of(key: str) -> str:
    """``ethereum_local`` -> ``ethereum:local`` (for messages that suggest a ``--network``)."""
    return key.replace("_", ":", 1)


def is_local(key: str) -> bool:
    return key.split("_", 1)[-1] in LOCAL_NETWORKS


def path_for(network: Any = None) -> Path:
    return home() / "deployments" / f"{network_key(network)}.json"


@dataclass
class SavedDeployment(Deployment):
    """A :class:`~voicemarket.market.chain.Deployment` as saved for a network, with where and when."""

    network: str = ""
    chain_id: int = 0
    start_block: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save(
    network: Any,
    deployment: Deployment,
    *,
    start_block: int,
    parameters: dict[str, Any] | None = None,
    chain_id: int | None = None,
) -> Path:
    """Write the deployment's addresses for ``network`` (atomically); returns the file's path.

    ``start_block``: the block before the first contract was deployed (where event scans start).
    """
    import ape

    key = network_key(network)
    record = {
        "formatVersion": FORMAT_VERSION,
        "network": choice_of(key),
        "chainId": int(chain_id if chain_id is not None else ape.chain.chain_id),
        "startBlock": int(start_block),
        "deployedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "deployer": str(getattr(deployment.deployer, "address", deployment.deployer) or ""),
        "contracts": deployment.addresses,
        "roles": dict(deployment.roles),
        "parameters": _jsonable(parameters or {}),
    }
    path = path_for(key)
    with atomic_output(path) as out:
        out.write((json.dumps(record, indent=2) + "\n").encode())
    return path


def load(network: Any = None, *, project: Any = None, check_code: bool = True) -> SavedDeployment:
    """The deployment saved for ``network`` (default: the connected one), as Ape contract instances.

    Raises :class:`DeploymentError` saying which ``ape run deploy`` to run when none is saved,
    when it was made on another chain, or when its contracts are not on the connected chain
    (a local chain that was restarted).
    """
    import ape

    key = network_key(network)
    path = path_for(key)
    deploy_hint = f"run `ape run deploy --network {choice_of(key)}` first"
    if not path.is_file():
        raise DeploymentError(f"no voicemarket deployment on {choice_of(key)} (looked for {path}): {deploy_hint}")
    try:
        record = json.loads(path.read_text())
        contracts = record["contracts"]
        addresses = {name: contracts[name] for name in ("registry", "licenses", "router")}
    except (ValueError, KeyError, TypeError) as exc:
        raise DeploymentError(f"{path} is not a voicemarket deployment file ({exc!r}): {deploy_hint}") from None
    connected_chain = int(ape.chain.chain_id)
    if int(record.get("chainId", -1)) != connected_chain:
        raise DeploymentError(
            f"the deployment saved in {path} is for chain id {record.get('chainId')}, but the connected chain is "
            f"{connected_chain}: {deploy_hint}"
        )
    if check_code:
        for name, address in addresses.items():
            if not ape.chain.provider.get_code(address):
                raise DeploymentError(
                    f"no contract at the saved {name} address {address} on {choice_of(key)} "
                    f"(a local chain starts empty each time): {deploy_hint}"
                )
    project = project or ape.project
    token = contracts.get("stablecoin")
    key_delivery = contracts.get("keyDelivery")  # absent in files saved before local-use licences
    licenses = project.LicenseManager.at(addresses["licenses"])
    offers = str(licenses.offerBook())  # the licence manager's own book is the one it accepts offers from
    if contracts.get("offers") not in (None, offers):
        raise DeploymentError(
            f"{path} names the offer book {contracts['offers']}, but the saved licence manager's "
            f"is {offers}: the file is stale; {deploy_hint}"
        )
    return SavedDeployment(
        registry=project.VoiceModelRegistry.at(addresses["registry"]),
        licenses=licenses,
        router=project.SynthesisRouter.at(addresses["router"]),
        offers=project.OfferBook.at(offers),
        stablecoin=project.MockStablecoin.at(token) if token else None,
        key_delivery=project.KeyDelivery.at(key_delivery) if key_delivery else None,
        deployer=record.get("deployer"),
        roles=dict(record.get("roles", {})),
        network=record.get("network", choice_of(key)),
        chain_id=connected_chain,
        start_block=int(record.get("startBlock", 0)),
        parameters=dict(record.get("parameters", {})),
        path=path,
    )


# ---------------------------------------------------------------- constructor parameters

LOCAL_DEFAULTS: dict[str, Any] = {
    "platform_fee_bps": 2_000,
    "retirement_notice": 45 * DAY,
    "stablecoin": "mock",
    "min_stake": 10**17,
    "slash_amount": 10**16,
    "unbonding_delay": 8 * DAY,
    "dispute_bond": 0,
}
"""What ``deploy/local.yaml`` says; used when a local network has no parameters file."""


def parameters_path(network: Any = None) -> Path:
    key = network_key(network)
    return PARAMETERS_DIR / f"{key.split('_', 1)[1]}.yaml"


def load_parameters(network: Any = None, path: str | Path | None = None) -> dict[str, Any]:
    """The ``voicemarket.market.chain.deploy`` keyword arguments for ``network``.

    ``path`` overrides the lookup of ``deploy/<network>.yaml``. A local network without a file
    uses :data:`LOCAL_DEFAULTS`; any other network must have its file (no guessing of stakes and
    roles on a public chain).
    """
    import yaml

    key = network_key(network)
    chosen = Path(path) if path is not None else parameters_path(key)
    if not chosen.is_file():
        if path is None and is_local(key):
            return dict(LOCAL_DEFAULTS)
        raise DeploymentError(
            f"no deployment parameters for {choice_of(key)}: write {chosen} (copy deploy/local.yaml and set the "
            "roles, stake and stablecoin for that network)"
        )
    try:
        raw = yaml.safe_load(chosen.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DeploymentError(f"{chosen} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise DeploymentError(f"{chosen} must be a mapping of parameter: value")
    unknown = set(raw) - set(PARAMETER_KEYS)
    if unknown:
        raise DeploymentError(
            f"{chosen}: unknown parameter(s) {', '.join(sorted(unknown))}; known: {', '.join(PARAMETER_KEYS)}"
        )
    params = dict(LOCAL_DEFAULTS) if is_local(key) else {"stablecoin": None}
    for name, value in raw.items():
        kind = PARAMETER_KEYS[name]
        try:
            params[name] = _read_parameter(kind, value, name)
        except ValueError as exc:
            raise DeploymentError(f"{chosen}: {exc}") from None
    return params


def _read_parameter(kind: str, value: Any, name: str) -> Any:
    from eth_utils import is_address, to_checksum_address

    if value is None:
        return None
    if kind == "amount":
        return parse_amount(value, name)
    if kind == "duration":
        return parse_duration(value, name)
    if kind == "bps":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
            raise ValueError(f"{name} must be basis points (0..10000), got {value!r}")
        return value
    if kind == "address" or (kind == "stablecoin" and value != "mock"):
        if not isinstance(value, str) or not is_address(value):
            allowed = "'mock', an ERC-20 address or null" if kind == "stablecoin" else "an address"
            raise ValueError(f"{name} must be {allowed}, got {value!r}")
        return to_checksum_address(value)
    return value


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, str, bool, type(None))) else str(v)) for k, v in params.items()}
