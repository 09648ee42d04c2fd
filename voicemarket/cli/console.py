"""What every ``ape run`` command shares: output (rich tables, progress bars), accounts, and
turning anything a user can cause into one clear ``Error:`` line that says what to do.

Commands wrap their body in :func:`user_errors`; it turns voicemarket's own errors and the
contracts' custom errors (:data:`REVERT_ADVICE`) into :class:`click.ClickException`, so a
mistake never ends in a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from voicemarket.errors import VoicemarketError
from voicemarket.market.assets import asset_info
from voicemarket.market.deployments import load
from voicemarket.units import ETH_ASSET, AssetInfo, format_time, parse_amount, parse_duration

__all__ = [
    "console",
    "user_errors",
    "explain_revert",
    "deployment",
    "resolve_account",
    "progress",
    "table",
    "parse_id",
    "share_in",
    "co_creator_in",
    "duration_in",
    "mint_progress",
    "preview_options",
    "announce_preview",
    "amount_in",
    "assets_of",
]


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
        grid.add_column(
            name, justify="right" if name.endswith(("price", "amount", "paid", "#")) else "left", overflow="fold"
        )
    return grid


@contextmanager
def progress(description: str, total: int, *, unit: str = "bytes") -> Iterator[Any]:
    """A progress bar; yields ``update(done, total)``. Shown on stderr, only when it is a terminal."""
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    counter = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        counter,
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
        transient=False,
        disable=not sys.stderr.isatty(),
    )
    with bar:
        task = bar.add_task(description, total=total)

        def update(done: int, new_total: int | None = None) -> None:
            bar.update(task, completed=done, total=new_total or total)

        yield update


@contextmanager
def mint_progress(size: int) -> Iterator[Callable[[str, int, int], None]]:
    """The bars of a mint (sealing ``size`` bytes, then its transactions); yields the
    ``on_progress(step, done, total)`` that minting calls with ``step`` "seal" or "chain"."""
    with progress("sealing", size) as sealing, progress("transactions", 1, unit="tx") as sending:
        bars = {"seal": sealing, "chain": sending}
        yield lambda step, done, total: bars[step](done, total)


def preview_options(command: Callable) -> Callable:
    """``--hubert`` and ``--bert``: the shared folders a model needs to speak its public preview (mint, version)."""
    command = click.option(
        "--bert",
        "bert_dir",
        type=click.Path(file_okay=False),
        help="GPT-SoVITS's chinese-roberta-wwm-ext-large folder (a Chinese preview)",
    )(command)
    return click.option(
        "--hubert",
        "hubert_dir",
        type=click.Path(file_okay=False),
        help="GPT-SoVITS's chinese-hubert-base folder, for the model to speak its preview",
    )(command)


def publishing_options(offers_help: str) -> Callable[[Callable], Callable]:
    """``--offers`` (the YAML of the tiers to publish) and ``--operator`` (repeatable: the operators
    to seal for and allow), which every command that mints a model takes (mint, version)."""

    def decorate(command: Callable) -> Callable:
        command = click.option(
            "--operator",
            "operators",
            multiple=True,
            required=True,
            help="address of a registered operator to seal for and allow (repeatable)",
        )(command)
        return click.option(
            "--offers",
            "offers_path",
            required=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help=offers_help,
        )(command)

    return decorate


def announce_preview(model: Any) -> None:
    """Say what the model says as its public preview (minting has it spoken once the cheap checks passed,
    or reuses the clip an earlier mint kept)."""
    from voicemarket.market.minting import PreviewText

    if isinstance(model.preview, PreviewText):
        console().print(f"Public preview: the model says {model.preview.text!r} ({model.preview.language})")


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
        raise click.BadParameter(
            f"no account {alias!r}: `ape accounts list` shows yours; "
            "`ape accounts import <alias>` adds one; TEST::<n> on a local chain"
        ) from None


def deployment() -> Any:
    """The deployment saved for the connected network (:func:`voicemarket.market.deployments.load`)."""
    return load()


def parse_id(value: str, what: str) -> int:
    """A decimal or 0x-hex id."""
    text = str(value).strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise click.BadParameter(f"{what} must be a number (decimal or 0x...), got {value!r}") from None


def share_in(text: str) -> int:
    """A share option: '10%' or '1000' (basis points) -> basis points."""
    text = text.strip()
    try:
        return round(float(text[:-1]) * 100) if text.endswith("%") else int(text)
    except ValueError:
        raise click.BadParameter(f"a share is basis points (1000) or a percentage (10%), got {text!r}") from None


def co_creator_in(text: str) -> tuple[str, int]:
    """A ``--co-creator ADDRESS:SHARE`` option -> (address, basis points)."""
    address, _, share = text.partition(":")
    if not share:
        raise click.BadParameter(f"--co-creator takes ADDRESS:SHARE (e.g. 0xabc...:5%), got {text!r}")
    return address, share_in(share)


def duration_in(text: str, option: str) -> int:
    """A duration option ('1 day', seconds) -> seconds."""
    try:
        return parse_duration(text, option)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


# ---------------------------------------------------------------- errors

REVERT_ADVICE: dict[str, str] = {
    # licences and offers
    "Licensing_UnknownOffer": "there is no offer {offerId}: `ape run offers <model>` lists a model's offers",
    "Licensing_OfferInactive": "offer {offerId} was withdrawn by the model's owner: it sells and renews nothing; "
    "`ape run offers <model>` shows the ones still on sale",
    "Licensing_OfferExpired": "offer {offerId} ended ({validUntil}): it sells and renews nothing, and its licences "
    "stopped working",
    "Licensing_SoldOut": "offer {offerId} sold all of its {maxLicenses} licences",
    "Licensing_ModelFrozen": "model {modelId} is frozen by the arbiter: nothing is sold or renewed while it is",
    "Licensing_ModelRetired": "model {modelId} was retired by its owner: nothing more is sold or renewed (its "
    "licences work until {serviceEndsAt})",
    "Licensing_ServiceEnded": "model {modelId} was retired and its notice period ended ({serviceEndsAt}): its "
    "licences no longer work",
    "Licensing_UnknownModel": "there is no model {modelId} on this deployment",
    "Licensing_PriceAboveMax": "it costs {cost}, more than your --max-price {maxPrice}: raise --max-price if you "
    "accept",
    "Licensing_WrongPayment": "the payment must be exactly {expected}, {sent} was sent",
    "Licensing_BadQuantity": "this tier sells a quantity of 1 (buyouts, pay-per-use without packs) or at least 1",
    "Licensing_TooManyUses": "{uses} uses exceed the offer's limit of {maxUses}: buy fewer packs",
    "Licensing_NotSubscription": "licence {licenseId} is not a subscription",
    "Licensing_NotTransferable": "licence {licenseId}'s offer does not allow transfers",
    "Licensing_UnknownLicense": "there is no licence {licenseId}",
    "Licensing_NotLicenseHolder": "licence {licenseId} is not held by {account}: use the holder's --account",
    "Licensing_WrongModel": "licence {licenseId} is not a licence for model {modelId}",
    "Licensing_ActionNotPermitted": "licence {licenseId} does not permit these actions ({actions})",
    "Licensing_LicenseExpired": "licence {licenseId} expired at {expiresAt}: its holder renews it with "
    "`ape run renew {licenseId}`",
    "Licensing_UsesExhausted": "licence {licenseId} used all of its {limit} uses: buy more, or wait for the next "
    "period of a subscription",
    "Licensing_SubscriptionCancelled": "licence {licenseId} was cancelled by its holder; only the holder renews it now",
    "Licensing_AutoRenewOff": "licence {licenseId}'s holder has not turned auto-renewal on: only the holder renews it "
    "(as its --account), or lets keepers renew it with `ape run autorenew {licenseId} on` "
    "(`ape run buy --auto-renew` turns it on when buying)",
    "Licensing_SubscriptionLapsed": "licence {licenseId} lapsed at {expiresAt}: keepers never revive a lapsed "
    "subscription; its holder renews it (it restarts then)",
    "Licensing_RenewalNotDue": "a keeper renews only once it is due ({dueAt}); the holder may renew earlier (use the "
    "holder's --account)",
    "Licensing_BadDuration": "renewals run in whole periods of the offer ({period} s; keepers exactly one): "
    "{duration} s is not",
    "Licensing_BeyondValidUntil": "that would pay the subscription until {end}, past the offer's end ({validUntil}): "
    "buy or renew fewer periods",
    "Licensing_BeyondNotice": "that would pay the subscription until {end}, further ahead than the retirement notice "
    "allows ({latest}): buy or renew fewer periods now, and renew again later",
    "Licensing_RenewalAllowanceTooLow": "the holder's allowance ({allowance}) is below the renewal cost ({cost}): "
    "the holder approves it (rerun with --approve as the holder)",
    "Licensing_RenewalBalanceTooLow": "the holder's balance ({balance}) is below the renewal cost ({cost})",
    "Licensing_PaymentFailed": "the token refused the payment: check your balance and allowance",
    "Licensing_AssetNotAllowed": "asset {asset} is not accepted for payments on this deployment: use ETH or the "
    "deployment's stablecoin",
    "Licensing_NotModelOwner": "only the owner of model {modelId} may do this ({caller} is not): use the owner's "
    "--account",
    "Licensing_PlatformFeeTooHigh": "the platform fee {bps} bps is above the maximum {max} bps",
    "Licensing_NotRouter": "only the licence manager's synthesis router may do this ({caller} is not)",
    "Licensing_RouterNotContract": "the router must be a deployed contract; {router} has no code",
    "Licensing_RouterNotYet": "the replacement router {router} was announced and takes effect from {at}: call "
    "setRouter with it again after that",
    "Licensing_NotOfferBook": "offers are published and withdrawn through the offer book, not the licence manager "
    "({caller} is not the book)",
    # offer terms (the offer book)
    "Licensing_BadPeriod": "a subscription needs a period (> 0); the other tiers none",
    "Licensing_BadPackSize": "only pay-per-use offers sell packs (pack_size)",
    "Licensing_UnknownBits": "the offer names actions or purposes the contract does not know",
    "Licensing_PermissionOverlap": "an action is both permitted and prohibited: remove it from one list",
    "Licensing_ValidUntilPassed": "the offer's valid_until ({validUntil}) is already past: choose a later date",
    "Licensing_EmptyPolicyHash": "the offer needs its ODRL policy hash",
    "Licensing_BadTerritories": "territory {index} is not an ISO-3166-1 alpha-2 code (two capital letters)",
    "Licensing_PeriodAboveNotice": "a subscription period of {period} s (plus its renewal lead) does not fit in the "
    "retirement notice of {notice} s: choose a shorter period",
    # tokens, pausing, ledgers
    "ERC20InsufficientAllowance": "the allowance ({allowance}) is below {needed}: rerun with --approve",
    "ERC20InsufficientBalance": "your token balance ({balance}) is below {needed}",
    "EnforcedPause": "the market is paused by its operators: try again later",
    "Ledger_NothingToWithdraw": "nothing to withdraw in that asset",
    "Ledger_NothingToDistribute": "nothing to distribute",
    # the router
    "Router_OperatorAlreadyRegistered": "{operator} is already registered: `ape run operator status` shows it",
    "Router_OperatorNotRegistered": "{operator} is not a registered operator: `ape run operator register` first",
    "Router_StakeTooLow": "the stake must be at least the minimum ({minStake} wei); {sent} wei was sent",
    "Router_StakeLocked": "the stake is locked until {unbondingEndsAt}: withdraw it after that",
    "Router_OperatorNotUnbonding": "start unbonding first: `ape run operator unbond`",
    "Router_OperatorUnbonding": "{operator} is unbonding (until {unbondingEndsAt}) and cannot do this",
    "Router_OpenDisputes": "{openDisputes} dispute(s) on your deliveries are still open: wait for the arbiter",
    "Router_PublicKeyMismatch": "the public key is not this account's",
    "Router_ZeroAmount": "the amount must be more than zero",
    "Router_OperatorNotAllowed": "operator {operator} may not serve model {modelId} (not allowed by its owner, or "
    "no longer for a deadline that late): pick another --operator or a shorter --ttl",
    "Router_DisputeWindowTooShort": "the model's dispute window ({window} s) is now shorter than the {minWindow} s "
    "you asked for: its owner shortened it; ask again with a lower "
    "--min-dispute-window if you accept",
    "Router_ServiceEnded": "model {modelId} was retired and its service ended ({serviceEndsAt}): nothing more is "
    "delivered; the operator fails the request, or the buyer cancels it after its deadline "
    "(full refund)",
    "Router_ModelFrozen": "model {modelId} is frozen by the arbiter: no speech is made or delivered while it is",
    "Router_WrongPayment": "the payment must be exactly {expected} wei, {sent} was sent",
    "Router_SlashTooHigh": "a slash may take at most the minimum stake: {slashAmount} wei is above {minStake} wei; "
    "lower the slash (or raise the minimum stake first)",
    "Router_MinStakeTooHigh": "the minimum stake {minStake} wei is above the cap of {max} wei",
    "Router_DisputeBondTooHigh": "the dispute bond {bond} wei is above the cap of {max} wei",
    "Router_DisputeWindowClosed": "the dispute window of request {requestId} closed at {settleAfter}",
    "Router_DisputeWindowOpen": "request {requestId} is still in its dispute window (until {settleAfter})",
    "Router_NotExpired": "request {requestId} is not past its deadline ({deadline}) yet",
    "Router_RequestExpired": "request {requestId} passed its deadline ({deadline})",
    "Router_WrongStatus": "request {requestId} is {status}, which does not allow this",
    "Router_NotModelOwner": "only the owner of model {modelId} chooses its operators ({caller} is not): use the "
    "owner's --account",
    "Router_NotRequester": "only the buyer who made request {requestId} may do this ({caller} did not)",
    "Router_FeeAboveMax": "the operator charges {fee}, above your maximum {maxFee}: raise --max-fee or pick another "
    "--operator",
    "Router_LanguageNotSupported": "model {modelId} does not speak the language asked for ({language})",
    # the registry
    "Registry_ConsentExpired": "the voice owner's consent expired ({deadline}) before registration: mint again",
    "Registry_InvalidConsent": "the consent signature is not the voice owner's ({voiceOwner}) under their current "
    "consent nonce (revoked, or signed for other terms): the voice owner signs again",
    "Registry_ModelExists": "this creator already registered this bundle as model {modelId}",
    "Registry_SplitTooLarge": "the voice owner's and co-creators' shares add up to {totalBps} bps, more than 10000",
    "Registry_SelfShare": "a voice owner who is the creator takes the creator's share: give no voice-owner share",
    "Registry_RoyaltyTooHigh": "the royalty {bps} bps is above the maximum {max}",
    "Registry_DisputeWindowTooLong": "the dispute window {window} s is above the maximum {max} s",
    "Registry_TooManyCoCreators": "{count} co-creators; at most {max}",
    "Registry_ParentFrozen": "model {parentId} is frozen by the arbiter: no new version can be registered under it "
    "until it is unfrozen",
    "Registry_VoiceOwnerChanged": "a new version keeps its parent's voice owner ({parentVoiceOwner}), not "
    "{voiceOwner}: register it with that voice owner (who consents to it again)",
    "Registry_NoticeTooShort": "a retirement notice of {notice} s is below the minimum of {min} s",
    "Registry_NoticeTooLong": "a retirement notice of {notice} s is above the maximum of {max} s",
    "Registry_NotModelOwner": "only the owner of model {modelId} may do this ({caller} is not): use the owner's "
    "--account",
    "Registry_UnknownModel": "there is no model {modelId} on this deployment",
    "Registry_AlreadyRetired": "model {modelId} is already retired (its service ends {serviceEndsAt})",
    "Registry_AlreadyFrozen": "model {modelId} is already frozen",
    "Registry_NotFrozen": "model {modelId} is not frozen",
}

TIME_ARGUMENTS = {
    "validUntil",
    "serviceEndsAt",
    "expiresAt",
    "dueAt",
    "end",
    "latest",
    "at",
    "unbondingEndsAt",
    "deadline",
    "settleAfter",
    "decideBy",
}
"""Custom-error arguments that are unix times: shown as dates."""


def explain_revert(exc: Exception) -> str:
    """A sentence for a contract revert: the custom error's advice with its arguments filled in."""
    name = getattr(exc, "name", None) or type(exc).__name__
    inputs = {k: _show(v, k) for k, v in (getattr(exc, "inputs", None) or {}).items()}
    advice = REVERT_ADVICE.get(name)
    if advice is not None:
        try:
            return advice.format(**inputs)
        except (KeyError, IndexError):
            return advice
    details = ", ".join(f"{k}={v}" for k, v in inputs.items())
    return f"the contract refused: {name}({details})" if name else f"the contract refused: {exc}"


def _show(value: Any, name: str = "") -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if name in TIME_ARGUMENTS and isinstance(value, int) and 0 < value < 1 << 40:
        return format_time(value)
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
    except VoicemarketError as exc:
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


def assets_of(deployment_: Any) -> list[AssetInfo]:
    """ETH and the deployment's stablecoin (the assets the commands look at by default)."""
    assets = [ETH_ASSET]
    if deployment_.stablecoin is not None:
        assets.append(asset_info(deployment_.stablecoin.address, deployment_))
    return assets
