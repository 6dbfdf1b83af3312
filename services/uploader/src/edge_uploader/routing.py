"""Which destination an instance goes to: its datashare's, or the site-wide default."""

import threading

from edge_core.datashare_table import DatashareTable
from edge_core.datashares import Deidentification
from edge_core.destination_policy import DestinationPolicy
from edge_core.sitekey import PREFIX, SiteKey, SiteKeyError
from edge_uploader.config import UploaderSettings
from edge_uploader.deidentify import Pseudonyms
from edge_uploader.destinations import DeliveryError, Destination
from edge_uploader.destinations.dicomweb import open_dicomweb
from edge_uploader.destinations.dimse import open_dimse
from edge_uploader.destinations.s3 import open_s3

# A datashare missing from the table this many deliveries in a row is taken as deleted (the
# first misses may only be the table catching up with a datashare created a moment ago).
UNKNOWN_DATASHARE_ATTEMPTS = 3


def open_destination(
    url: str, credentials: dict[str, str], settings: UploaderSettings
) -> Destination:
    scheme = url.partition("://")[0].lower()
    if scheme == "s3":
        return open_s3(url, credentials, settings)
    if scheme in ("dicomweb+http", "dicomweb+https"):
        return open_dicomweb(url, credentials, settings.uploader_timeout_s)
    if scheme == "dicom":
        return open_dimse(url, settings.uploader_ae_title, settings.uploader_timeout_s)
    raise DeliveryError(f"unsupported destination URL {url!r}", permanent=True)


class Router:
    """Destinations by URL and credentials, opened once and reused (they hold connections)."""

    def __init__(self, table: DatashareTable, settings: UploaderSettings) -> None:
        self.table = table
        self.settings = settings
        self._open: dict[tuple[str, tuple[tuple[str, str], ...]], Destination] = {}
        self._lock = threading.Lock()
        self.policy = DestinationPolicy.of(settings)
        self._key: SiteKey | None = None

    def destination_for(self, datashare_id: str, attempt: int) -> Destination:
        """Raises :class:`DeliveryError` when the datashare is unknown or its URL invalid."""
        datashare = self.table.get(datashare_id)
        if datashare is None:
            raise DeliveryError(
                f"datashare {datashare_id!r} is not known (deleted?)",
                permanent=attempt >= UNKNOWN_DATASHARE_ATTEMPTS,
            )
        url = datashare.destination or self.settings.default_destination
        credentials = {
            k: self._decrypt(v.get_secret_value())
            for k, v in datashare.destination_credentials.items()
        }
        cache_key = (url, tuple(sorted(credentials.items())))
        with self._lock:
            if cache_key not in self._open:
                if datashare.destination is not None:
                    self._check(url, credentials)
                self._open[cache_key] = open_destination(url, credentials, self.settings)
            return self._open[cache_key]

    def deidentification(self, datashare_id: str) -> tuple[Deidentification, Pseudonyms] | None:
        """The datashare's de-identification in force now and its pseudonyms, or None
        (forwarded byte for byte). Raises :class:`DeliveryError` (retried) without a site key."""
        datashare = self.table.get(datashare_id)
        if datashare is None or datashare.deidentification is None:
            return None
        try:
            key = self._site_key()
        except SiteKeyError as exc:
            raise DeliveryError(f"de-identification needs the site key: {exc}") from None
        return datashare.deidentification, Pseudonyms(key.pseudonym_key(), datashare_id)

    def _site_key(self) -> SiteKey:
        # Read when first needed: the registry creates it at its first start.
        if self._key is None:
            self._key = SiteKey.of(self.settings)
        return self._key

    def _decrypt(self, value: str) -> str:
        """A credential as the registry encrypted it, decrypted with the site key (read
        when first needed: the registry creates it at its first start). A value from before
        encryption is used as it is."""
        if not value.startswith(PREFIX):
            return value
        try:
            return self._site_key().decrypt(value)
        except SiteKeyError as exc:
            raise DeliveryError(str(exc)) from None  # retried: fixing the key file cures it

    def _check(self, url: str, credentials: dict[str, str]) -> None:
        """The registry's limits on destinations, again: the datashares bucket could have
        been written by something else than the registry (or under a looser policy)."""
        try:
            self.policy.check(url, credentials)
        except ValueError as exc:
            raise DeliveryError(str(exc), permanent=True) from None

    def close(self) -> None:
        with self._lock:
            for destination in self._open.values():
                destination.close()
            self._open.clear()
