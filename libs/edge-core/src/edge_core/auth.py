"""Bearer tokens for the REST APIs (registry and monitor), from ``EDGE_API_TOKEN``.

The setting holds one token (``s3cr3t``, named ``staff``) or several named ones
(``alice:tok1,bob:tok2``) so that each change can be attributed to whoever made it.
"""

import hmac


def parse_tokens(setting: str) -> dict[str, str]:
    """``{name: token}`` from the setting's text; empty entries are ignored."""
    tokens: dict[str, str] = {}
    for item in setting.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, token = item.partition(":")
        if not sep:
            name, token = "staff", item
        if token:
            tokens[name.strip()] = token.strip()
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
