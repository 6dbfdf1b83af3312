"""Bearer tokens for the REST APIs (registry and monitor), from ``EDGE_API_TOKEN``.

The setting holds one token (``s3cr3t``, named ``staff``) or several named ones
(``alice:tok1,bob:tok2``) so that each change can be attributed to whoever made it.
:class:`BearerAuth` is the one place where the registry and the monitor check them.
"""

import hmac
import json
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any


def parse_tokens(setting: str) -> dict[str, str]:
    """``{name: token}`` from the setting's text; empty entries are ignored. Raises
    ValueError for an entry without a name or a token, or a name given twice (the token
    meant for it would silently not work)."""
    tokens: dict[str, str] = {}
    for item in setting.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, token = item.partition(":")
        if not sep:
            name, token = "staff", item
        name, token = name.strip(), token.strip()
        if not name or not token:
            raise ValueError("each API token is 'token' or 'name:token', neither part empty")
        if name in tokens:
            raise ValueError(f"API token name {name!r} is given twice")
        tokens[name] = token
    return tokens


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(authorization: str | None, tokens: dict[str, str]) -> str | None:
    """The name whose token the header carries, or None. Compares every configured token in
    constant time, so timing tells nothing about how much of a token was right."""
    presented = bearer_token(authorization)
    if presented is None:
        return None
    found = None
    for name, token in tokens.items():
        if hmac.compare_digest(presented.encode(), token.encode()):
            found = name
    return found


# A pure ASGI middleware (no web framework needed here): the token is checked from the
# headers alone, before the app runs, so an unauthenticated request is answered 401 before
# any of its body is read or parsed (a route's body is read before its dependencies run).
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_UNAUTHORIZED = json.dumps({"detail": "missing or wrong bearer token"}).encode()


class BearerAuth:
    """Requires a bearer token on every path under a guarded prefix.

    ``guards`` maps a path prefix to the tokens it accepts (``{name: token}``); the first
    matching prefix wins. ``open_paths`` under a prefix stay open (the API's docs page). The
    name of the token's owner is left in ``request.state.actor``.
    """

    def __init__(
        self,
        app: ASGIApp,
        guards: dict[str, dict[str, str]],
        open_paths: Collection[str] = (),
    ) -> None:
        self.app = app
        self.guards = guards
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.open_paths:
            path: str = scope["path"]
            tokens = next((t for p, t in self.guards.items() if path.startswith(p)), None)
            if tokens is not None:
                name = authenticate(_header(scope, b"authorization"), tokens)
                if name is None:
                    await _unauthorized(send)
                    return
                scope.setdefault("state", {})["actor"] = name
        await self.app(scope, receive, send)


def _header(scope: Scope, wanted: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


async def _unauthorized(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _UNAUTHORIZED})
