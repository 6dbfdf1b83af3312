"""The one policy for waiting on something Edge needs (NATS, the S3 store): try again at a
steady pace, for ever, saying each time what is awaited and why. A service started before
its dependencies, or while one restarts, waits instead of failing; stopping it (a
cancellation, which is no ``Exception``) ends the wait."""

import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from tenacity import RetryCallState, retry, retry_if_exception_type, wait_fixed

P = ParamSpec("P")
R = TypeVar("R")


def until_ready(
    what: str, log: logging.Logger, interval_s: float = 1.0
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wrap a function, blocking or a coroutine function, to retry it under the policy:
    ``until_ready("the buffer bucket", log)(store.ensure_bucket)()``."""

    def announce(state: RetryCallState) -> None:
        log.warning("waiting for %s: %s", what, state.outcome and state.outcome.exception())

    return retry(
        retry=retry_if_exception_type(Exception),
        wait=wait_fixed(interval_s),
        before_sleep=announce,
        reraise=True,
    )
