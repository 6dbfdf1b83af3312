"""Which datashare an association request belongs to, or why it is rejected.

A pure function of the datashare table and the request, so that every receiver process
decides the same way without sharing anything but the table.
"""

import ipaddress
import logging
from dataclasses import dataclass

from edge_core.ae_titles import ae_title_key
from edge_core.datashares import Datashare

log = logging.getLogger(__name__)

# A-ASSOCIATE-RJ diagnostics (result rejected-permanent, source service-user).
NO_REASON = 1
CALLING_AE_NOT_RECOGNISED = 3
CALLED_AE_NOT_RECOGNISED = 7

REASON_TEXT = {
    NO_REASON: "no reason given",
    CALLING_AE_NOT_RECOGNISED: "calling AE title not recognised",
    CALLED_AE_NOT_RECOGNISED: "called AE title not recognised",
}


@dataclass(frozen=True)
class Rejection:
    reason: int
    detail: str

    @property
    def text(self) -> str:
        return f"{REASON_TEXT[self.reason]}: {self.detail}"


def _network_allows(datashare: Datashare, peer_host: str) -> bool:
    if not datashare.allowed_networks:
        return True
    try:
        address = ipaddress.ip_address(peer_host)
    except ValueError:
        return False
    for cidr in datashare.allowed_networks:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            log.error("datashare %s has an invalid network %r", datashare.id, cidr)
            continue
        # An IPv4 peer may arrive as an IPv4-mapped IPv6 address on a dual-stack socket.
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if address.version == network.version and address in network:
            return True
    return False


def _check_restrictions(
    datashare: Datashare, calling_ae: str, peer_host: str
) -> Datashare | Rejection:
    if not datashare.enabled:
        reason = (
            CALLING_AE_NOT_RECOGNISED if datashare.match == "calling" else CALLED_AE_NOT_RECOGNISED
        )
        return Rejection(reason, f"datashare {datashare.id} is disabled")
    if datashare.allowed_calling_aets and ae_title_key(calling_ae) not in {
        ae_title_key(aet) for aet in datashare.allowed_calling_aets
    }:
        return Rejection(
            CALLING_AE_NOT_RECOGNISED,
            f"calling AE title {calling_ae!r} may not send to datashare {datashare.id}",
        )
    if not _network_allows(datashare, peer_host):
        return Rejection(NO_REASON, f"address {peer_host} may not send to datashare {datashare.id}")
    return datashare


def resolve(
    datashares: list[Datashare],
    calling_ae: str,
    called_ae: str,
    peer_host: str,
    receiver_ae_title: str,
) -> Datashare | Rejection:
    """The datashare for this request, or the rejection to send.

    Called mode first (the called AE title is the datashare's AE title), then calling mode
    (the calling AE title is), comparing AE titles as the registry does (``ae_title_key``:
    ignoring case and surrounding spaces). Enabled datashares win over disabled ones with
    the same AE title. With no match, the reason is "calling AE title not recognised" (3)
    when the request can only have meant calling mode — it called the receiver's own AE
    title, or no datashare uses called mode — and "called AE title not recognised" (7)
    otherwise.
    """
    for mode, ae_title in (("called", called_ae), ("calling", calling_ae)):
        key = ae_title_key(ae_title)
        candidates = [d for d in datashares if d.match == mode and ae_title_key(d.ae_title) == key]
        candidates.sort(key=lambda d: not d.enabled)
        if candidates:
            return _check_restrictions(candidates[0], calling_ae, peer_host)
    only_calling_mode = bool(datashares) and all(d.match == "calling" for d in datashares)
    if ae_title_key(called_ae) == ae_title_key(receiver_ae_title) or only_calling_mode:
        return Rejection(
            CALLING_AE_NOT_RECOGNISED, f"no datashare for calling AE title {calling_ae!r}"
        )
    return Rejection(CALLED_AE_NOT_RECOGNISED, f"no datashare for called AE title {called_ae!r}")
