"""`switchboard keys` (management keys) and `switchboard sub-accounts` (customers with their own
key, cap and limits)."""

import argparse

from msgspec import UNSET

from libs.contracts.http.accounts import (
    Deleted,
    KeyCreate,
    KeyView,
    SubAccountCreate,
    SubAccountUpdate,
    SubAccountView,
)
from libs.contracts.http.lists import KeyList, SubAccountList
from tools.cli.context import Context
from tools.cli.exit_codes import OK, USAGE, CliError
from tools.cli.gateway import parse, segment
from tools.cli.output import print_raw_json, table, when

_NULLABLE = ("external_ref", "rate_limit_rpm", "rate_limit_tpm", "default_tag", "metadata")


def _show_key(ctx: Context, key: KeyView) -> None:
    ctx.out.print(table(("id", "name", "scopes", "disabled", "expires", "created"),
                        [(key.id, key.name, ", ".join(key.scopes), key.disabled, when(key.expires_at),
                          when(key.created))]))
    if key.key:
        ctx.note("The key is shown once; store it now:", style="yellow")
        ctx.out.print(key.key, markup=False)


def _show_sub_accounts(ctx: Context, subs: list[SubAccountView]) -> None:
    rows = [(s.id, s.name, f"{s.spend_cap_cents:,}", f"{s.spent_cents_this_month:,.4f}", s.rate_limit_rpm,
             s.rate_limit_tpm, s.default_tag, s.key_id, when(s.created)) for s in subs]
    ctx.out.print(table(("id", "name", "cap ¢", "spent ¢ (month)", "rpm", "tpm", "default tag", "key id", "created"),
                        rows, numeric=("cap ¢", "spent ¢ (month)", "rpm", "tpm")))
    for sub in subs:
        if sub.key:
            ctx.note(f"The key of {sub.id} is shown once; store it now:", style="yellow")
            ctx.out.print(sub.key, markup=False)


def _answer(ctx: Context, raw: bytes, show: "type[SubAccountView] | type[KeyView] | type[Deleted]") -> int:
    if ctx.json:
        print_raw_json(raw)
    elif show is Deleted:
        ctx.out.print(f"deleted {parse(raw, Deleted).id}", markup=False)
    elif show is KeyView:
        _show_key(ctx, parse(raw, KeyView))
    else:
        _show_sub_accounts(ctx, [parse(raw, SubAccountView)])
    return OK


def run_keys(ctx: Context) -> int:
    args, gateway = ctx.args, ctx.gateway()
    if args.action == "list":
        raw = gateway.request("GET", "/management/keys")
        if ctx.json:
            print_raw_json(raw)
            return OK
        keys = parse(raw, KeyList).data
        ctx.out.print(table(("id", "name", "scopes", "sub-account", "disabled", "expires", "created"),
                            [(k.id, k.name, ", ".join(k.scopes), k.sub_account_id, k.disabled, when(k.expires_at),
                              when(k.created)) for k in keys]))
        return OK
    if args.action == "create":
        body = KeyCreate(name=args.name, scopes=args.scope or ["inference"], expires_at=args.expires_at)
        return _answer(ctx, gateway.request("POST", "/management/keys", body=body), KeyView)
    return _answer(ctx, gateway.request("DELETE", f"/management/keys/{segment(args.id)}"), Deleted)


def _update(args: argparse.Namespace) -> SubAccountUpdate:
    update = SubAccountUpdate()
    for name in ("name", "spend_cap_cents", "external_ref", "rate_limit_rpm", "rate_limit_tpm", "default_tag"):
        value = getattr(args, name)
        if value is not None:
            setattr(update, name, value)
    for name in args.clear or []:
        setattr(update, name, None)  # the contract: null clears, left out is unchanged
    if args.snapshots is not None:
        update.snapshots = args.snapshots
    if all(getattr(update, field) is UNSET for field in update.__struct_fields__):
        raise CliError(USAGE, "nothing to update: pass at least one field (see --help)")
    return update


def run_sub_accounts(ctx: Context) -> int:
    args, gateway = ctx.args, ctx.gateway()
    action = args.action
    if action == "list":
        raw = gateway.request("GET", "/sub-accounts")
        if ctx.json:
            print_raw_json(raw)
        else:
            _show_sub_accounts(ctx, parse(raw, SubAccountList).data)
        return OK
    if action == "create":
        body = SubAccountCreate(name=args.name, spend_cap_cents=args.spend_cap_cents, external_ref=args.external_ref,
                                rate_limit_rpm=args.rate_limit_rpm, rate_limit_tpm=args.rate_limit_tpm,
                                default_tag=args.default_tag, snapshots=args.snapshots is not False)
        return _answer(ctx, gateway.request("POST", "/sub-accounts", body=body), SubAccountView)
    path = f"/sub-accounts/{segment(args.id)}"
    if action == "get":
        return _answer(ctx, gateway.request("GET", path), SubAccountView)
    if action == "update":
        return _answer(ctx, gateway.request("PATCH", path, body=_update(args)), SubAccountView)
    if action == "rotate-key":
        return _answer(ctx, gateway.request("POST", f"{path}/rotate-key"), SubAccountView)
    return _answer(ctx, gateway.request("DELETE", path), Deleted)


def _sub_account_fields(parser: argparse.ArgumentParser, creating: bool) -> None:
    parser.add_argument("--name", required=creating)
    parser.add_argument("--spend-cap-cents", type=int, required=creating, metavar="CENTS",
                        help="monthly spend cap in cents (0: no spending)")
    parser.add_argument("--external-ref", help="your own id for this customer")
    parser.add_argument("--rate-limit-rpm", type=int, metavar="N", help="requests per minute")
    parser.add_argument("--rate-limit-tpm", type=int, metavar="N", help="tokens per minute")
    parser.add_argument("--default-tag", metavar="TAG", help="the tag of requests that send none")
    snapshots = parser.add_mutually_exclusive_group()
    snapshots.add_argument("--snapshots", dest="snapshots", action="store_true", default=None,
                           help="keep request snapshots for replays (the default)")
    snapshots.add_argument("--no-snapshots", dest="snapshots", action="store_false",
                           help="keep this customer's requests out of the replay store")


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
             common: argparse.ArgumentParser) -> None:
    keys = commands.add_parser("keys", help="list, create and delete management keys",
                               description="Management keys of your account (admin key needed).")
    keys.set_defaults(run=run_keys)
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[common], help="list the account's keys")
    create = actions.add_parser("create", parents=[common], help="mint a key (shown once)")
    create.add_argument("--name", default="")
    create.add_argument("--scope", action="append", choices=("inference", "read-usage", "admin"),
                        help="a scope of the key; repeat for several (default: inference)")
    create.add_argument("--expires-at", type=int, metavar="UNIX_S", help="when the key stops working")
    delete = actions.add_parser("delete", parents=[common], help="revoke a key")
    delete.add_argument("id", metavar="KEY_ID")

    subs = commands.add_parser("sub-accounts", help="manage sub-accounts (your customers)",
                               description="Sub-accounts: a customer's own key, spend cap and rate limits.")
    subs.set_defaults(run=run_sub_accounts)
    actions = subs.add_subparsers(dest="action", required=True, metavar="ACTION")
    _sub_account_fields(actions.add_parser("create", parents=[common], help="create one (its key is shown once)"),
                        creating=True)
    actions.add_parser("list", parents=[common], help="list them with this month's spend")
    for name, text in (("get", "show one"), ("delete", "delete one and revoke its key"),
                       ("rotate-key", "mint a new key for one; the old key stops working")):
        actions.add_parser(name, parents=[common], help=text).add_argument("id", metavar="SUB_ACCOUNT_ID")
    update = actions.add_parser("update", parents=[common], help="change some of its fields")
    update.add_argument("id", metavar="SUB_ACCOUNT_ID")
    _sub_account_fields(update, creating=False)
    update.add_argument("--clear", action="append", choices=_NULLABLE, metavar="FIELD",
                        help=f"unset a field ({', '.join(_NULLABLE)}); repeatable")
