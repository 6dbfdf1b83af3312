"""Where the site lets a datashare send: the registry checks it when a destination is set.

A datashare's destination is chosen by whoever holds an API token, and the uploader sends
there from inside the hospital's network, with the datashare's credentials. Refused:
- an S3 destination that is the buffer bucket itself (the uploader would deliver into, and
  then delete from, the bucket it reads);
- unless ``EDGE_ALLOW_PRIVATE_DESTINATIONS``: hosts on loopback, link-local (cloud metadata
  at 169.254.169.254), private or otherwise non-public addresses: the uploader must not be
  a way into the site's own services;
- unless ``EDGE_ALLOW_INSECURE_DESTINATIONS``: credentials sent over plain HTTP
  (``dicomweb+http://`` with a token or password).
"""

import ipaddress
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from edge_core.settings import EdgeSettings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], list[Address]]


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to now; none if it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    # getaddrinfo gives IPv6 scoped addresses as "fe80::1%eth0".
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _non_public(address: Address) -> str | None:
    """What kind of non-public address this is, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "a loopback"
    if address.is_link_local:
        return "a link-local"
    if address.is_multicast:
        return "a multicast"
    if not address.is_global:
        return "a private or reserved"
    return None


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class DestinationPolicy:
    buffer_bucket: str = EdgeSettings.model_fields["buffer_bucket"].default
    buffer_endpoint: str = EdgeSettings.model_fields["s3_endpoint"].default
    # Where s3:// destinations are (EDGE_DESTINATION_S3_ENDPOINT); None: the buffer's store.
    s3_endpoint: str | None = None
    allow_private: bool = False
    allow_insecure: bool = False

    @classmethod
    def of(cls, settings: EdgeSettings) -> "DestinationPolicy":
        return cls(
            buffer_bucket=settings.buffer_bucket,
            buffer_endpoint=settings.s3_endpoint,
            s3_endpoint=settings.destination_s3_endpoint,
            allow_private=settings.allow_private_destinations,
            allow_insecure=settings.allow_insecure_destinations,
        )

    def check(
        self, url: str, credential_names: Collection[str], resolve: Resolve = resolve
    ) -> None:
        """Raise ``ValueError`` saying why the site does not send to ``url`` (a destination
        URL already validated for its form), with these credentials."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "s3":
            # The S3 endpoint is the site's setting, not the datashare's: only the bucket
            # is checked here.
            endpoint = (self.s3_endpoint or self.buffer_endpoint).strip().lower()
            if parts.netloc == self.buffer_bucket and endpoint == self.buffer_endpoint.lower():
                raise ValueError(
                    f"destination {url!r} is the buffer bucket {self.buffer_bucket!r} of this "
                    "site: instances would be delivered into the bucket they are read from"
                )
            return
        if scheme == "dicomweb+http" and credential_names and not self.allow_insecure:
            raise ValueError(
                f"destination {url!r} would receive credentials over plain HTTP: use "
                "dicomweb+https, or set EDGE_ALLOW_INSECURE_DESTINATIONS=true on a network "
                "where that is acceptable"
            )
        if self.allow_private:
            return
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "dicomweb+https" else 80)
        # Names are resolved now, when staff set the destination. That does not cover a name
        # that resolves elsewhere later (DNS rebinding, a record changed after the check), nor
        # one that does not resolve yet (accepted: nothing to judge): the uploader connects
        # to whatever the name resolves to when it delivers.
        for address in resolve(host, port):
            kind = _non_public(address)
            if kind:
                shown = host if is_ip(host) else f"{host} ({address})"
                raise ValueError(
                    f"destination {url!r}: {shown} is {kind} address; destinations inside "
                    "the site's own networks need EDGE_ALLOW_PRIVATE_DESTINATIONS=true"
                )
