"""Which transfer syntax the receiver accepts for each presentation context: the one that
keeps the data as sent, so that no sender converts it (a conversion to Implicit VR loses
the VR of private elements; one of compressed data may fail or lose quality).

pynetdicom accepts, for each proposed context, the first of the *acceptor's* syntaxes for
that abstract syntax that the proposer also lists. So the receiver has no fixed contexts:
each request gets its own, ordered the proposer's way (set in EVT_REQUESTED through the
acceptor's public ``supported_contexts``, writable until negotiation starts):

- the proposer's first choice, when the receiver supports it;
- otherwise the proposer's order, but Explicit VR Little Endian before Implicit.

pynetdicom keys the acceptor's contexts by abstract syntax, so when one abstract syntax is
proposed in several contexts, one order must serve them all: each syntax ranks by its best
place in any of them. Only contexts that list the same syntaxes in opposite orders (which
no sender has a reason to do) can then get a later choice.
"""

from collections.abc import Iterable, Sequence

from pydicom.uid import UID, AllTransferSyntaxes, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.presentation import (
    AllStoragePresentationContexts,
    PresentationContext,
    build_context,
)
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

# Every storage SOP class pynetdicom knows, and C-ECHO.
ABSTRACT_SYNTAXES: frozenset[str] = frozenset(
    [Verification, *(str(cx.abstract_syntax) for cx in AllStoragePresentationContexts)]
)
# Every transfer syntax pydicom knows: the receiver stores bytes as received and never
# decodes pixel data, so it can take any syntax whose dataset encoding pydicom can read.
TRANSFER_SYNTAXES: frozenset[str] = frozenset(AllTransferSyntaxes)


def preferred_syntaxes(proposed: Sequence[str]) -> list[str]:
    """The proposed syntaxes the receiver supports, best first."""
    supported = list(dict.fromkeys(ts for ts in proposed if ts in TRANSFER_SYNTAXES))
    if supported and supported[0] == proposed[0]:
        return supported
    return _explicit_before_implicit(supported)


def _explicit_before_implicit(syntaxes: list[str]) -> list[str]:
    """Implicit VR moved just behind Explicit VR Little Endian, if it was ahead of it."""
    if ImplicitVRLittleEndian not in syntaxes or ExplicitVRLittleEndian not in syntaxes:
        return syntaxes
    rest = [ts for ts in syntaxes if ts != ImplicitVRLittleEndian]
    at = rest.index(ExplicitVRLittleEndian) + 1
    return [*rest[:at], ImplicitVRLittleEndian, *rest[at:]]


def contexts_for_request(requested: Iterable[PresentationContext]) -> list[PresentationContext]:
    """The receiver's contexts for one request: per proposed abstract syntax it supports,
    the syntaxes it supports in the order it prefers them for this proposer."""
    ranks: dict[str, dict[str, int]] = {}
    for cx in requested:
        abstract = str(cx.abstract_syntax)
        if abstract not in ABSTRACT_SYNTAXES:
            continue
        best = ranks.setdefault(abstract, {})
        for rank, ts in enumerate(preferred_syntaxes([str(ts) for ts in cx.transfer_syntax])):
            best[ts] = min(rank, best.get(ts, rank))
    # With none of its syntaxes supported, a context is still listed (with one it did not
    # propose), so that it is refused as "transfer syntaxes not supported" rather than
    # "abstract syntax not supported".
    return [
        build_context(UID(abstract), sorted(best, key=best.__getitem__) or [ExplicitVRLittleEndian])
        for abstract, best in ranks.items()
    ]
