"""The datashare table every receiver and uploader keeps in memory, folded from the
registry's last-value bucket in JetStream: no call to the registry on the hot path, and it
keeps serving while the registry (or NATS, with the last known table) is down."""

import asyncio
import logging

from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE
from pydantic import ValidationError

from edge_core.datashares import Datashare
from edge_core.retrying import until_ready
from edge_core.topology import DATASHARES_BUCKET

log = logging.getLogger(__name__)


class WatchEnded(Exception):
    """The bucket's watch stopped without an error (e.g. NATS restarted): start it again."""


class DatashareTable:
    def __init__(self) -> None:
        self._by_id: dict[str, Datashare] = {}
        # Ids seen deleted (and not created again): only these are known to be gone; one that
        # is merely missing may be newer than the table.
        self.deleted: set[str] = set()
        self.loaded = asyncio.Event()  # set once the initial contents have been read

    def get(self, datashare_id: str) -> Datashare | None:
        return self._by_id.get(datashare_id)

    def all(self) -> list[Datashare]:
        return list(self._by_id.values())

    def apply(self, key: str, value: bytes | None, deleted: bool) -> None:
        """Fold one entry of the bucket into the table (a pure function of the entries). The
        latest entry wins, whatever its revision: the registry writes the bucket in commit
        order, and repairs an entry rewritten by anyone else with its own, which may carry a
        lower revision than the forgery it replaces."""
        if deleted or not value:
            self._by_id.pop(key, None)
            self.deleted.add(key)
            return
        try:
            datashare = Datashare.model_validate_json(value)
        except ValidationError as exc:
            log.error("ignoring invalid datashare entry %r: %s", key, exc)
            return
        self._by_id[key] = datashare
        self.deleted.discard(key)

    async def follow(self, js: JetStreamContext) -> None:
        """Read the bucket, then apply every change as it comes, for ever (restarting the
        watch if it stops, e.g. across a NATS restart)."""
        await until_ready("the datashares bucket's watch", log)(self._watch)(js)

    async def _watch(self, js: JetStreamContext) -> None:
        kv = await js.key_value(DATASHARES_BUCKET)
        watcher = await kv.watchall()
        async for entry in watcher:
            if entry is None:  # end of the initial values
                self.loaded.set()
                continue
            self.apply(entry.key, entry.value, entry.operation in (KV_DEL, KV_PURGE))
        raise WatchEnded("the watch stopped")
