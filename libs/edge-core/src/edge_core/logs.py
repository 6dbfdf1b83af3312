"""Logging set-up: plain text for a person at a terminal, JSON lines for a log collector.

Log messages carry peer input (AE titles, UIDs, exception texts quoting them): in text
format every control character of a message is escaped, so that a newline in a UID cannot
forge a log line, nor an escape sequence drive the reader's terminal. JSON lines need
nothing more: the encoder escapes control characters and non-ASCII (``ensure_ascii``).
"""

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

# C0 and C1 controls, DEL, and the Unicode line separators and bidirectional controls
# (which can make a terminal show text in another order than it was logged).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape_controls(text: str) -> str:
    """``text`` with every control character written as a Python-style escape (``\\n``,
    ``\\x1b``, ``\\u202e``): safe to print on one line of a terminal or a log."""
    return _CONTROLS.sub(_escape, text)


class _EscapingFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        # The line without the traceback, which Python writes on lines of its own.
        return escape_controls(super().formatMessage(record))


def configure_logging(service: str, level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
            )
        )
    else:
        handler.setFormatter(
            _EscapingFormatter(f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pynetdicom logs every PDU at INFO; keep its chatter out of the service log.
    logging.getLogger("pynetdicom").setLevel(max(logging.WARNING, root.level))
