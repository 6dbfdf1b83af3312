"""HTTP for the tests: one JSON call with a bearer token, and a check that an ordinary client
cannot make (a body that never ends)."""

import json
import select
import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit


def call_api(url: str, method: str, token: str, body: Any = None) -> tuple[int, Any]:
    """(status, decoded JSON or None) of one API call; an error status is returned, not raised."""
    req = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None


def stream_until_answered(
    url: str, path: str, token: str, chunk_bytes: int = 64 * 1024, give_up_bytes: int = 64 << 20
) -> tuple[int, int]:
    """POST an endless chunked body to a real server, one chunk at a time, until the server
    answers (or ``give_up_bytes`` were sent); returns (status, bytes sent). A server that
    reads the whole body before answering takes all ``give_up_bytes``, then the end."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = f"{chunk_bytes:x}\r\n".encode() + b" " * chunk_bytes + b"\r\n"
        while sent < give_up_bytes:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except OSError:  # the server answered and closed while this was sending
                break
            sent += chunk_bytes
        else:
            sock.sendall(b"0\r\n\r\n")
        status_line = sock.makefile("rb").readline()
    return int(status_line.split()[1]), sent
