"""What every ``ape run`` command shares: output (rich tables, progress bars), accounts, and
turning anything a user can cause into one clear ``Error:`` line that says what to do.

Commands wrap their body in :func:`user_errors`; it turns voicemarket's own errors and the
contracts' custom errors (:data:`REVERT_ADVICE`) into :class:`click.ClickException`, so a
mistake never ends in a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from voicemarket.deployments import DeploymentError, load, parse_amount
from voicemarket.errors import PackageError
from voicemarket.minting import ETH_ASSET, AssetInfo, MintError, asset_info, format_amount

__all__ = ["console", "user_errors", "explain_revert", "deployment", "resolve_account", "asset_info",
           "format_amount", "format_time", "format_duration", "progress", "table", "parse_id", "amount_in", "asset_of",
           "assets_of",
           "AssetInfo", "ETH_ASSET"]


def console():  # noqa: ANN201 - a rich Console
    """A rich console on the current stdout (created per call: click's test runner swaps stdout)."""
    from rich.console import Console

    width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else None
    return Console(width=width or 120, soft_wrap=False, highlight=False)


def table(title: str | None = None, *columns: str, header: bool = True):  # noqa: ANN201 - a rich Table
    """A table with ``columns`` (amount-like columns right-aligned); ``header=False`` for key/value lists."""
    from rich.table import Table

    grid = Table(title=title, title_justify="left", title_style="bold", header_style="bold", show_header=header)
    for name in columns or ("", ""):
        grid.add_column(name, justify="right" if name.endswith(("price", "amount", "paid", "#")) else "left",
                        overflow="fold")
    return grid


@contextmanager
def progress(description: str, total: int, *, unit: str = "bytes") -> Iterator[Any]:
    """A progress bar; yields ``update(done, total)``. Shown on stderr, only when it is a terminal."""
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    counter = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    bar = Progress(TextColumn("{task.description}"), BarColumn(), counter, TimeRemainingColumn(),
                   console=Console(file=sys.stderr), transient=False, disable=not sys.stderr.isatty())
    with bar:
        task = bar.add_task(description, total=total)

        def update(done: int, new_total: int | None = None) -> None:
            bar.update(task, completed=done, total=new_total or total)

        yield update


def format_time(timestamp: int) -> str:
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_duration(seconds: int) -> str:
    seconds = int(seconds)
    for unit, size in (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} s"


# ---------------------------------------------------------------- accounts and the deployment


def resolve_account(alias: str) -> Any:
    """An Ape account by alias (``ape accounts list``) or ``TEST::<n>`` (local test accounts)."""
    import ape

    if alias.upper().startswith("TEST::"):
        index = alias.split("::", 1)[1]
        if not index.isdigit() or int(index) >= len(ape.accounts.test_accounts):
            last = len(ape.accounts.test_accounts) - 1
            raise click.BadParameter(f"{alias}: test accounts are TEST::0 .. TEST::{last}")
        return ape.accounts.test_accounts[int(index)]
    try:
        return ape.accounts.load(alias)
    except Exception:  # noqa: BLE001 - Ape raises several kinds for an unknown alias
        raise click.BadParameter(f"no account {alias!r}: `ape accounts list` shows yours; "
                                 "`ape accounts import <alias>` adds one; TEST::<n> on a local chain") from None


def deployment() -> Any:
    """The deployment saved for the connected network (:func:`voicemarket.deployments.load`)."""
    return load()


def parse_id(value: str, what: str) -> int:
    """A decimal or 0x-hex id."""
    text = str(value).strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise click.BadParameter(f"{what} must be a number (decimal or 0x...), got {value!r}") from None


# ---------------------------------------------------------------- errors

REVERT_ADVICE: dict[str, str] = {
    "Licensing_UnknownOffer": "there is no offer {offerId}: `ape run offers <model>` lists a model's offers",
    "Licensing_OfferInactive": "offer {offerId} was retired by the model's owner and sells nothing: "
                               "`ape run offers <model>` shows the ones still on sale",
    "Licensing_OfferExpired": "offer {offerId} expired ({validUntil}): it sells and renews nothing",
    "Licensing_SoldOut": "offer {offerId} sold all of its {maxLicenses} licences",
    "Licensing_ModelFrozen": "model {modelId} is frozen by the arbiter: nothing is sold or renewed while it is",
    "Licensing_ModelRetired": "the model was retired by its owner: nothing more is sold or renewed",
    "Licensing_ServiceEnded": "the model was retired and its notice period is over",
    "Licensing_PriceAboveMax": "it costs {cost}, more than your --max-price {maxPrice}: raise --max-price if you "
                               "accept",
    "Licensing_WrongPayment": "the payment must be exactly {expected}, {sent} was sent",
    "Licensing_BadQuantity": "this tier sells a quantity of 1 (buyouts, pay-per-use without packs) or at least 1",
    "Licensing_TooManyUses": "{uses} uses exceed the offer's limit of {maxUses}: buy fewer packs",
    "Licensing_NotSubscription": "licence {licenseId} is not a subscription",
    "Licensing_UnknownLicense": "there is no licence {licenseId}",
    "Licensing_NotLicenseHolder": "licence {licenseId} is not held by {account}: use the holder's --account",
    "Licensing_SubscriptionCancelled": "licence {licenseId} was cancelled by its holder; only the holder renews it now",
    "Licensing_RenewalNotDue": "only the holder may renew before it is due ({dueAt}); use the holder's --account",
    "Licensing_BadDuration": "renewals run in whole periods of the offer",
    "Licensing_RenewalAllowanceTooLow": "the holder's allowance ({allowance}) is below the renewal cost ({cost}): "
                                        "the holder approves it (rerun with --approve as the holder)",
    "Licensing_RenewalBalanceTooLow": "the holder's balance ({balance}) is below the renewal cost ({cost})",
    "Licensing_PaymentFailed": "the token refused the payment: check your balance and allowance",
    "Licensing_AssetNotAllowed": "asset {asset} is not accepted by this deployment",
    "Licensing_NotModelOwner": "only the model's owner may do this",
    "ERC20InsufficientAllowance": "the allowance ({allowance}) is below {needed}: rerun with --approve",
    "ERC20InsufficientBalance": "your token balance ({balance}) is below {needed}",
    "EnforcedPause": "the market is paused by its operators: try again later",
    "Ledger_NothingToWithdraw": "nothing to withdraw in that asset",
    "Ledger_NothingToDistribute": "nothing to distribute",
    "Router_OperatorAlreadyRegistered": "{operator} is already registered: `ape run operator status` shows it",
    "Router_OperatorNotRegistered": "{operator} is not a registered operator: `ape run operator register` first",
    "Router_StakeTooLow": "the stake must be at least the minimum ({minStake} wei); {sent} wei was sent",
    "Router_StakeLocked": "the stake is locked until {unbondingEndsAt}: withdraw it after that",
    "Router_OperatorNotUnbonding": "start unbonding first: `ape run operator unbond`",
    "Router_OperatorUnbonding": "{operator} is unbonding (until {unbondingEndsAt}) and cannot do this",
    "Router_OpenDisputes": "{openDisputes} dispute(s) on your deliveries are still open: wait for the arbiter",
    "Router_PublicKeyMismatch": "the public key is not this account's",
    "Router_ZeroAmount": "the amount must be more than zero",
    "Registry_ConsentExpired": "the voice owner's consent expired before registration: mint again",
    "Registry_InvalidConsent": "the consent signature is not the voice owner's ({voiceOwner})",
    "Registry_ModelExists": "this bundle is already registered as model {modelId}",
    "Registry_SplitTooLarge": "the voice owner's and co-creators' shares add up to {totalBps} bps, more than 10000",
    "Registry_SelfShare": "a voice owner who is the creator takes the creator's share: give no voice-owner share",
    "Registry_RoyaltyTooHigh": "the royalty {bps} bps is above the maximum {max}",
    "Registry_DisputeWindowTooLong": "the dispute window {window} s is above the maximum {max} s",
    "Registry_TooManyCoCreators": "{count} co-creators; at most {max}",
}


def explain_revert(exc: Exception) -> str:
    """A sentence for a contract revert: the custom error's advice with its arguments filled in."""
    name = getattr(exc, "name", None) or type(exc).__name__
    inputs = {k: _show(v) for k, v in (getattr(exc, "inputs", None) or {}).items()}
    advice = REVERT_ADVICE.get(name)
    if advice is not None:
        try:
            return advice.format(**inputs)
        except (KeyError, IndexError):
            return advice
    details = ", ".join(f"{k}={v}" for k, v in inputs.items())
    return f"the contract refused: {name}({details})" if name else f"the contract refused: {exc}"


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, int) and value > 10**30:
        return f"{value:#x}"
    return str(value)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn what a user can cause into ``Error: <what to do>`` (exit status 1), never a traceback."""
    from ape.exceptions import AccountsError, ApeException, ContractLogicError, OutOfGasError, SignatureError

    try:
        yield
    except click.ClickException:
        raise
    except (DeploymentError, MintError, PackageError) as exc:
        raise click.ClickException(str(exc)) from None
    except ContractLogicError as exc:
        raise click.ClickException(explain_revert(exc)) from None
    except (SignatureError, AccountsError) as exc:
        raise click.ClickException(f"the account did not sign: {exc}") from None
    except OutOfGasError as exc:
        raise click.ClickException(f"the transaction ran out of gas: {exc}") from None
    except ApeException as exc:
        message = str(exc)
        if "insufficient funds" in message.lower():
            message = "the account cannot pay for this transaction (value plus gas): fund it and try again"
        raise click.ClickException(message) from None


def amount_in(text: str, asset: AssetInfo, option: str) -> int:
    """An amount option in ``asset``: the smallest unit, or '<n> <unit>' (ether, gwei, or the token's symbol)."""
    try:
        return parse_amount(text, option, decimals=asset.decimals, symbol=None if asset.is_eth else asset.symbol)
    except ValueError as exc:
        raise click.BadParameter(f"{exc} (this asset is {asset.symbol})") from None


def asset_of(text: str, deployment_: Any) -> AssetInfo:
    """``ETH``, ``stablecoin`` or an ERC-20 address, as an :class:`AssetInfo` (MintError if unknown)."""
    return asset_info(text, deployment_)


def assets_of(deployment_: Any) -> list[AssetInfo]:
    """ETH and the deployment's stablecoin (the assets the commands look at by default)."""
    assets = [ETH_ASSET]
    if deployment_.stablecoin is not None:
        assets.append(asset_info(deployment_.stablecoin.address, deployment_))
    return assets


