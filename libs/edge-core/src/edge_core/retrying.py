"""The one policy for waiting on something Edge needs (NATS, the S3 store): try again at a
steady pace, for ever, saying each time what is awaited and why. A service started before
its dependencies, or while one restarts, waits instead of failing; stopping it (a
cancellation, which is no ``Exception``) ends the wait."""

import logging
from collections.abc import Callable

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception_type, wait_fixed


def _announce(what: str, log: logging.Logger) -> Callable[[RetryCallState], None]:
    def announce(state: RetryCallState) -> None:
        log.warning("waiting for %s: %s", what, state.outcome and state.outcome.exception())

    return announce


def until_ready(what: str, log: logging.Logger, interval_s: float = 1.0) -> Retrying:
    """Call a blocking function with it: ``until_ready("the bucket", log)(store.ensure_bucket)``."""
    return Retrying(
        retry=retry_if_exception_type(Exception),
        wait=wait_fixed(interval_s),
        before_sleep=_announce(what, log),
        reraise=True,
    )


def until_ready_async(what: str, log: logging.Logger, interval_s: float = 1.0) -> AsyncRetrying:
    """Await a coroutine function with it: ``await until_ready_async("NATS", log)(connect)``."""
    return AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        wait=wait_fixed(interval_s),
        before_sleep=_announce(what, log),
        reraise=True,
    )
