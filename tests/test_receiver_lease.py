"""A receiver killed with -9 publishes no end for its associations: the monitor shows them
aborted once its heartbeats stop, and never those of another receiver that is alive."""

import os
import signal
from datetime import datetime, timedelta

from pynetdicom import AE
from pynetdicom.sop_class import Verification

from edge_testing.dcmtk import echoscu
from edge_testing.servers import wait_until
from edge_testing.stack import Stack, start_stack

DS = "LEASE"
HEARTBEAT_S = 0.5
LEASE = timedelta(seconds=3 * HEARTBEAT_S)


def status(stack: Stack) -> dict:
    code, body = stack.api("monitor", "GET", "/api/v1/status")
    assert code == 200, body
    return body


def datashare(stack: Stack) -> dict:
    """The datashare's status (empty until the monitor has folded its creation)."""
    return next((d for d in status(stack)["datashares"] if d["id"] == DS), {})


def held_association(port: int):
    ae = AE(ae_title="HELD")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=DS)
    assert assoc.is_established
    return assoc


def test_killed_receiver_associations_end_and_the_other_receivers_stay(tmp_path):
    stack = start_stack(
        tmp_path, EDGE_RECEIVER_PROCESSES="2", EDGE_RECEIVER_HEARTBEAT_S=str(HEARTBEAT_S)
    )
    held = []
    try:
        assert stack.api("registry", "POST", "/api/v1/datashares", {"id": DS})[0] == 201
        wait_until(lambda: echoscu(stack.receiver_port, DS), what="datashare live")

        # Associations held open until both receivers have some (the kernel spreads them).
        def by_receiver() -> dict[str, set[str]]:
            found: dict[str, set[str]] = {}
            for a in datashare(stack).get("associations", {}).get("active", []):
                if a["calling_ae"] == "HELD":  # not the echoes above
                    found.setdefault(a["receiver"], set()).add(a["association_id"])
            return found

        while len(held) < 24:
            held.append(held_association(stack.receiver_port))
            owners = wait_until(
                lambda: sum(map(len, (o := by_receiver()).values())) == len(held) and o,
                what="the monitor to show every association",
            )
            if len(owners) == 2:
                break
        assert len(owners) == 2, owners
        victim, survivor = sorted(owners, key=lambda r: len(owners[r]))
        os.kill(int(victim.split("-")[-2]), signal.SIGKILL)  # receiver-<host>-<pid>-<random>

        # Within the lease (and a little): the victim's associations aborted, with why.
        def ended() -> dict | None:
            ds = datashare(stack)
            ended = {a["association_id"] for a in ds["associations"]["recent"]}
            return owners[victim] <= ended and ds

        ds = wait_until(ended, timeout_s=10, what="the killed receiver's associations to end")
        assert ds["associations_active"] == len(owners[survivor]), [
            a for a in ds["associations"]["active"] if a["calling_ae"] != "HELD"
        ]
        for a in ds["associations"]["recent"]:
            if a["association_id"] in owners[victim]:
                assert a["state"] == "aborted" and a["reason"].startswith("receiver stopped"), a

        # The survivor's stay open two leases later: it kept beating. The launcher restarted
        # the killed one, under a new name.
        def receivers() -> dict[str, dict]:
            return {r["receiver"]: r for r in status(stack)["receivers"]}

        then = datetime.fromisoformat(receivers()[survivor]["last_seen"])
        wait_until(
            lambda: (
                (r := receivers())
                and datetime.fromisoformat(r[survivor]["last_seen"]) > then + 2 * LEASE
                and sum(x["alive"] for x in r.values()) == 2
            ),
            timeout_s=30,
            what="two leases of the survivor's heartbeats, and the restarted receiver",
        )
        assert not receivers()[victim]["alive"]
        ds = datashare(stack)
        assert {a["association_id"] for a in ds["associations"]["active"]} == owners[survivor]

        for assoc in held:
            assoc.release()
        wait_until(lambda: datashare(stack)["associations_active"] == 0, what="no association")
    finally:
        for assoc in held:
            assoc.abort()
        stack.stop()
