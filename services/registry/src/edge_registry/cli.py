"""``edgectl``: the registry's REST API from a terminal, for consortium staff.

Reads the API's address from ``EDGE_REGISTRY_URL`` (default http://127.0.0.1:8000) and the
token from ``EDGE_API_TOKEN``. Exit status: 0 done, 1 refused or unreachable, 2 bad usage.
"""

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, get_args

import httpx

from edge_core.datashares import DeidentificationOption
from edge_core.logs import escape_controls

DEFAULT_URL = "http://127.0.0.1:8000"
LIST_COLUMNS = ("id", "ae_title", "match", "enabled", "destination", "revision", "description")


class CliError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    url = os.environ.get("EDGE_REGISTRY_URL", DEFAULT_URL).rstrip("/")
    token = os.environ.get("EDGE_API_TOKEN", "")
    try:
        with httpx.Client(
            base_url=f"{url}/api/v1",
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=30,
        ) as client:
            args.run(client, args)
    except CliError as exc:
        print(f"edgectl: {exc}", file=sys.stderr)
        return 1
    except httpx.TransportError as exc:
        print(
            f"edgectl: cannot reach the registry at {url} ({exc or type(exc).__name__}); "
            "is it running? (set EDGE_REGISTRY_URL)",
            file=sys.stderr,
        )
        return 1
    return 0


# --- commands -----------------------------------------------------------------------------


def _list(client: httpx.Client, args: argparse.Namespace) -> None:
    params = {} if args.enabled is None else {"enabled": str(args.enabled).lower()}
    rows = _call(client, "GET", "/datashares", params=params)
    if args.json:
        _print_json(rows)
    elif not rows:
        print("no datashares")
    else:
        print(table(LIST_COLUMNS, [[_cell(r[c]) for c in LIST_COLUMNS] for r in rows]))


def _show(client: httpx.Client, args: argparse.Namespace) -> None:
    _print_datashare(_call(client, "GET", f"/datashares/{args.id}"), args.json)


def _create(client: httpx.Client, args: argparse.Namespace) -> None:
    body = {"id": args.id, **_body(args)}
    _print_datashare(_call(client, "POST", "/datashares", json=body), args.json)


def _update(client: httpx.Client, args: argparse.Namespace) -> None:
    body = _body(args)
    if not body:
        raise CliError(
            "nothing to change: give at least one option (see edgectl datashares update -h)"
        )
    _print_datashare(_call(client, "PATCH", f"/datashares/{args.id}", json=body), args.json)


def _delete(client: httpx.Client, args: argparse.Namespace) -> None:
    _call(client, "DELETE", f"/datashares/{args.id}")
    print(f"deleted datashare {args.id}")


def _history(client: httpx.Client, args: argparse.Namespace) -> None:
    entries = _call(client, "GET", f"/datashares/{args.id}/history")
    if args.json:
        _print_json(entries)
        return
    rows = [
        [str(e["revision"]), _when(e["time"]), _cell(e["actor"]), e["action"], describe_changes(e)]
        for e in entries
    ]
    print(table(("revision", "time", "actor", "action", "changes"), rows))


# --- helpers ------------------------------------------------------------------------------


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    response = client.request(method, path, **kwargs)
    if response.status_code < 400:
        return response.json() if response.content else None
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    # The server's words may quote what was sent: escaped, one line each.
    if isinstance(detail, list):  # validation errors: one line per field
        detail = "invalid values:\n" + "\n".join(
            f"  {_cell('.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body')}: "
            f"{_cell(e.get('msg'))}"
            for e in detail
        )
    else:
        detail = _cell(detail)
    hint = " (check EDGE_API_TOKEN)" if response.status_code == 401 else ""
    raise CliError(f"{response.status_code} {response.reason_phrase}: {detail}{hint}")


def _body(args: argparse.Namespace) -> dict[str, Any]:
    """The API fields the options give; ``None`` options were not given."""
    body: dict[str, Any] = {}
    for field in ("description", "ae_title", "match", "destination", "enabled"):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    for field, option in (
        ("allowed_calling_aets", "calling_aets"),
        ("allowed_networks", "networks"),
    ):
        if getattr(args, option) is not None:
            body[field] = getattr(args, option)
    if args.credentials is not None:
        body["destination_credentials"] = dict(args.credentials)
    if args.deidentify or args.deid_options or args.deid_keep or args.deid_remove:
        # The datashare's de-identification as a whole, replacing the one it had.
        body["deidentification"] = {
            "profile": args.deidentify or "basic",
            "options": args.deid_options or [],
            "keep": args.deid_keep or [],
            "remove": args.deid_remove or [],
        }
    for flag, field, value in (
        ("default_ae_title", "ae_title", None),
        ("default_destination", "destination", None),
        ("any_calling_aet", "allowed_calling_aets", []),
        ("any_network", "allowed_networks", []),
        ("clear_credentials", "destination_credentials", {}),
        ("no_deidentification", "deidentification", None),
    ):
        if getattr(args, flag, False):
            body[field] = value
    return body


def _credential(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        # Never echo it: without '=' the whole text may be the secret.
        raise argparse.ArgumentTypeError("expected NAME=VALUE, e.g. secret_key=...")
    return name, value


def _print_datashare(ds: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(ds)
        return
    width = max(len(k) for k in ds)
    for key, value in ds.items():
        print(f"{key:<{width}}  {_cell(value)}".rstrip())


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _when(iso_time: str) -> str:
    """``2026-11-28T08:38:29.120618Z`` as ``2026-11-28 08:38:29Z``."""
    return iso_time[:19].replace("T", " ") + "Z"


def _cell(value: Any) -> str:
    """A value as text on one line, its control characters escaped: descriptions and other
    fields are whatever some token holder wrote, and must not drive the staff's terminal."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_cell(k)}={_cell(v)}" for k, v in value.items()) + "}"
    return escape_controls(str(value))


def describe_changes(entry: dict[str, Any]) -> str:
    changes = entry["changes"]
    if entry["action"] != "updated":
        return ", ".join(f"{k}={_cell(v)}" for k, v in changes.items())
    return ", ".join(f"{k}: {_cell(c['old'])} -> {_cell(c['new'])}" for k, c in changes.items())


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with a header line, columns as wide as their widest cell."""
    titles = [h.upper().replace("_", " ") for h in headers]
    widths = [max(len(c) for c in col) for col in zip(titles, *rows, strict=False)]
    lines = [titles, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgectl",
        description="Manage Edge datashares through the registry's API. Reads EDGE_REGISTRY_URL "
        f"(default {DEFAULT_URL}) and EDGE_API_TOKEN from the environment.",
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="GROUP")
    datashares = groups.add_parser("datashares", help="create, change and inspect datashares")
    commands = datashares.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        run: Callable[[httpx.Client, argparse.Namespace], None],
        help: str,
        with_id: bool = True,
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        if with_id:
            sub.add_argument("id", help="the Datashare ID")
        sub.set_defaults(run=run)
        return sub

    listing = command("list", _list, "list every datashare", with_id=False)
    state = listing.add_mutually_exclusive_group()
    state.add_argument("--enabled", action="store_const", const=True, help="only enabled ones")
    state.add_argument(
        "--disabled", dest="enabled", action="store_const", const=False, help="only disabled ones"
    )
    create = command("create", _create, "create a datashare")
    update = command("update", _update, "change some fields of a datashare (others are kept)")
    for sub in (create, update):
        _datashare_options(sub, sub is update)
    show = command("show", _show, "show one datashare")
    history = command("history", _history, "who changed a datashare, when and how")
    command("delete", _delete, "delete a datashare (its history is kept)")
    for sub in (listing, show, create, update, history):
        sub.add_argument("--json", action="store_true", help="print the API's JSON")
    return parser


def _datashare_options(sub: argparse.ArgumentParser, update: bool) -> None:
    sub.add_argument("--description")
    sub.add_argument("--ae-title", help="substitute AE title (default: the id)")
    sub.add_argument("--match", choices=("called", "calling"), help="AE title to match on")
    sub.add_argument(
        "--allow-calling-aet", dest="calling_aets", action="append", metavar="AET",
        help="allow this calling AE title (repeat for more; default: any)",
    )  # fmt: skip
    sub.add_argument(
        "--allow-network", dest="networks", action="append", metavar="CIDR",
        help="allow senders from this network (repeat for more; default: any)",
    )  # fmt: skip
    sub.add_argument(
        "--destination", metavar="URL",
        help="s3://bucket/prefix, dicomweb+https://host/path or dicom://AET@host:port",
    )  # fmt: skip
    sub.add_argument(
        "--credential", dest="credentials", action="append", type=_credential,
        metavar="NAME=VALUE",
        help="destination credential, e.g. access_key=... secret_key=... or token=...",
    )  # fmt: skip
    deid = sub.add_argument_group(
        "de-identification (given together, they replace the datashare's de-identification)"
    )
    deid.add_argument(
        "--deidentify", choices=("basic",),
        help="de-identify before forwarding with the PS3.15 Basic Profile (default: byte for byte)",
    )  # fmt: skip
    deid.add_argument(
        "--deid-option", dest="deid_options", action="append", metavar="OPTION",
        choices=get_args(DeidentificationOption),
        help="a profile option (repeat for more): " + ", ".join(get_args(DeidentificationOption)),
    )  # fmt: skip
    deid.add_argument(
        "--deid-keep", action="append", metavar="ATTRIBUTE",
        help="keep this attribute (keyword or (gggg,eeee)) whatever the profile says",
    )  # fmt: skip
    deid.add_argument(
        "--deid-remove", action="append", metavar="ATTRIBUTE",
        help="remove this attribute whatever the profile says",
    )  # fmt: skip
    state = sub.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True)
    state.add_argument("--disable", dest="enabled", action="store_const", const=False)
    if update:
        sub.add_argument("--default-ae-title", action="store_true", help="use the id as AE title")
        sub.add_argument("--default-destination", action="store_true", help="use the site default")
        sub.add_argument("--any-calling-aet", action="store_true", help="allow any calling AE")
        sub.add_argument("--any-network", action="store_true", help="allow any network")
        sub.add_argument("--clear-credentials", action="store_true", help="remove credentials")
        sub.add_argument(
            "--no-deidentification", action="store_true", help="forward byte for byte again"
        )


if __name__ == "__main__":
    sys.exit(main())
