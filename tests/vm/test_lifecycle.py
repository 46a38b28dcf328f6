"""The VM lifecycle on SQLite and a real Postgres: the edge set itself, every edge moving a row,
every other pair refused without touching it, a stale mover losing, and the queries the
supervisors and the API read (``live``, ``recent``, ``owned``)."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import update

from ember.errors import InvalidTransition
from ember.jobs.records import NewJob
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import JobState
from ember.storage import Database
from ember.storage.tables import VMRow
from ember.vm.lifecycle import EDGES, TERMINAL, SqlVMRecords, VMRecord, VMState, allowed
from tests.support.clock import FakeClock

FORBIDDEN = [(a, b) for a in VMState for b in VMState if (a, b) not in EDGES]


@pytest.fixture
def vms(database: Database) -> SqlVMRecords:
    return SqlVMRecords(database)


@pytest.fixture
def jobs(database: Database, clock: FakeClock) -> SqlJobRepository:
    """Jobs on the fake clock's wall time (2026-12-01 12:00 UTC to start)."""
    return SqlJobRepository(database, clock.wall)


def path_to(target: VMState) -> list[VMState] | None:
    """The states a new VM passes through to reach ``target`` along :data:`EDGES` (``None``:
    unreachable from ``defining``)."""
    seen = {VMState.DEFINING: [VMState.DEFINING]}
    queue = deque([VMState.DEFINING])
    while queue:
        here = queue.popleft()
        for a, b in sorted(EDGES):
            if a is here and b not in seen:
                seen[b] = [*seen[here], b]
                queue.append(b)
    return seen.get(target)


def make(
    vms: SqlVMRecords,
    vm_id: str,
    *,
    node: str = "node-a",
    job_id: str | None = None,
    owner: str | None = None,
    state: VMState = VMState.DEFINING,
) -> None:
    """Record ``vm_id`` and walk it to ``state`` along allowed edges."""
    vms.create(
        vm_id,
        domain=f"ember-{vm_id}",
        node=node,
        accel="tcg",
        vcpus=1,
        memory_mib=256,
        disk_mib=64,
        job_id=job_id,
        owner=owner,
    )
    walk = path_to(state)
    assert walk is not None, f"{state} is unreachable"
    for a, b in pairwise(walk):
        vms.move(vm_id, a, b)
    assert vms.get(vm_id).state is state  # type: ignore[union-attr]


def stamp(database: Database, vm_id: str, created_at: datetime) -> None:
    """Set ``vm_id``'s creation time by hand."""
    database.run(
        lambda session: session.execute(
            update(VMRow).where(VMRow.id == vm_id).values(created_at=created_at)
        )
    )


def stored(vms: SqlVMRecords, vm_id: str) -> VMRecord:
    record = vms.get(vm_id)
    assert record is not None
    return record


# -- the edge set ---------------------------------------------------------------------------


def test_allowed_is_exactly_the_edge_set() -> None:
    for a in VMState:
        for b in VMState:
            assert allowed(a, b) is ((a, b) in EDGES)
    assert allowed(VMState.DEFINING, VMState.BOOTING)
    assert allowed(VMState.STOPPING, VMState.GONE)
    assert not allowed(VMState.BOOTING, VMState.DEFINING)
    assert not allowed(VMState.DEFINING, VMState.RUNNING)
    assert not allowed(VMState.RUNNING, VMState.GONE)
    assert not allowed(VMState.RUNNING, VMState.RUNNING)


def test_terminal_states_have_no_way_out() -> None:
    assert frozenset({VMState.GONE, VMState.FAILED}) == TERMINAL
    assert [(a, b) for a, b in EDGES if a in TERMINAL] == []
    for state in TERMINAL:
        assert not any(allowed(state, target) for target in VMState)


def test_every_live_state_can_fail_and_every_state_is_reachable() -> None:
    for state in VMState:
        if state not in TERMINAL:
            assert allowed(state, VMState.FAILED)
        assert path_to(state) is not None
    assert path_to(VMState.GONE) == [
        VMState.DEFINING,
        VMState.BOOTING,
        VMState.RUNNING,
        VMState.STOPPING,
        VMState.GONE,
    ]


# -- moves on the database ------------------------------------------------------------------


def test_create_records_a_defining_vm(vms: SqlVMRecords) -> None:
    vms.create(
        "v1", domain="ember-v1", node="n1", accel="kvm", vcpus=2, memory_mib=512, disk_mib=128
    )
    record = stored(vms, "v1")
    assert record.state is VMState.DEFINING
    assert (record.domain, record.node, record.accel) == ("ember-v1", "n1", "kvm")
    assert (record.vcpus, record.memory_mib, record.disk_mib) == (2, 512, 128)
    assert record.job_id is None and record.error_code is None
    assert record.created_at.tzinfo is not None
    assert vms.get("nope") is None


@pytest.mark.parametrize(("current", "target"), sorted(EDGES))
def test_every_edge_moves_a_vm(vms: SqlVMRecords, current: VMState, target: VMState) -> None:
    make(vms, "v1", state=current)
    before = stored(vms, "v1")
    code = "vm_timeout" if target is VMState.FAILED else None
    vms.move("v1", current, target, error_code=code)
    after = stored(vms, "v1")
    assert after.state is target
    assert after.error_code == code
    assert after.updated_at >= before.updated_at
    assert (after.id, after.domain, after.node, after.created_at) == (
        before.id,
        before.domain,
        before.node,
        before.created_at,
    )


@pytest.mark.parametrize(("current", "target"), FORBIDDEN)
def test_every_forbidden_pair_is_refused(
    vms: SqlVMRecords, current: VMState, target: VMState
) -> None:
    vms.create("v1", domain="d", node="n", accel="tcg", vcpus=1, memory_mib=256, disk_mib=64)
    walk = path_to(current)
    if walk is not None:
        for a, b in pairwise(walk):
            vms.move("v1", a, b)
        assert stored(vms, "v1").state is current
    before = stored(vms, "v1")
    with pytest.raises(InvalidTransition, match=f"{current.value} → {target.value}"):
        vms.move("v1", current, target, error_code="x")
    assert stored(vms, "v1") == before


def test_forbidden_pairs_cover_self_loops_and_terminal_exits() -> None:
    assert len(FORBIDDEN) == len(VMState) ** 2 - len(EDGES)
    for state in VMState:
        assert (state, state) in FORBIDDEN
    for state in TERMINAL:
        assert all((state, target) in FORBIDDEN for target in VMState)


def test_a_stale_mover_loses_and_leaves_the_row(vms: SqlVMRecords) -> None:
    make(vms, "v1", state=VMState.BOOTING)
    vms.move("v1", VMState.BOOTING, VMState.RUNNING)
    first = stored(vms, "v1")
    # The second owner still believes the VM is booting.
    with pytest.raises(InvalidTransition, match="running"):
        vms.move("v1", VMState.BOOTING, VMState.FAILED, error_code="vm_failed")
    assert stored(vms, "v1") == first
    assert first.state is VMState.RUNNING and first.error_code is None


def test_only_one_of_two_racing_movers_wins(vms: SqlVMRecords) -> None:
    make(vms, "v1", state=VMState.RUNNING)
    vms.move("v1", VMState.RUNNING, VMState.FAILED, error_code="vm_timeout")
    won = stored(vms, "v1")
    with pytest.raises(InvalidTransition, match="failed"):
        vms.move("v1", VMState.RUNNING, VMState.STOPPING)
    assert stored(vms, "v1") == won
    assert won.state is VMState.FAILED and won.error_code == "vm_timeout"


def test_moving_an_unknown_vm_is_refused(vms: SqlVMRecords) -> None:
    with pytest.raises(InvalidTransition, match="unknown"):
        vms.move("missing", VMState.DEFINING, VMState.BOOTING)
    assert vms.get("missing") is None


def test_a_move_clears_the_error_code_it_is_not_given(vms: SqlVMRecords) -> None:
    make(vms, "v1")
    vms.move("v1", VMState.DEFINING, VMState.BOOTING, error_code="note")
    assert stored(vms, "v1").error_code == "note"
    vms.move("v1", VMState.BOOTING, VMState.RUNNING)
    assert stored(vms, "v1").error_code is None


# -- queries ---------------------------------------------------------------------------------


def test_live_lists_non_terminal_vms_of_a_node_oldest_first(
    vms: SqlVMRecords, database: Database, clock: FakeClock
) -> None:
    t0 = clock.wall()
    layout = [
        ("a-new", "node-a", VMState.RUNNING, 30),
        ("a-old", "node-a", VMState.DEFINING, 10),
        ("a-mid", "node-a", VMState.STOPPING, 20),
        ("a-gone", "node-a", VMState.GONE, 5),
        ("a-failed", "node-a", VMState.FAILED, 1),
        ("b-live", "node-b", VMState.BOOTING, 0),
        ("b-gone", "node-b", VMState.GONE, 2),
    ]
    for vm_id, node, state, seconds in layout:
        make(vms, vm_id, node=node, state=state)
        stamp(database, vm_id, t0 + timedelta(seconds=seconds))
    assert [r.id for r in vms.live("node-a")] == ["a-old", "a-mid", "a-new"]
    assert [r.id for r in vms.live("node-b")] == ["b-live"]
    assert vms.live("node-c") == []
    assert [r.id for r in vms.live()] == ["b-live", "a-old", "a-mid", "a-new"]
    assert all(r.state not in TERMINAL for r in vms.live())


def test_recent_is_newest_first_and_limited(
    vms: SqlVMRecords, database: Database, clock: FakeClock
) -> None:
    t0 = clock.wall()
    for vm_id, seconds in [("v2", 2), ("v4", 4), ("v1", 1), ("v3", 3)]:
        make(vms, vm_id, state=VMState.GONE if vm_id == "v4" else VMState.DEFINING)
        stamp(database, vm_id, t0 + timedelta(seconds=seconds))
    assert [r.id for r in vms.recent()] == ["v4", "v3", "v2", "v1"]
    assert [r.id for r in vms.recent(2)] == ["v4", "v3"]
    assert [r.id for r in vms.recent(limit=1)] == ["v4"]


def test_recent_of_a_workspace_holds_only_its_jobs_vms(
    vms: SqlVMRecords, jobs: SqlJobRepository, database: Database, clock: FakeClock
) -> None:
    red, _ = jobs.create(NewJob("vm", {"argv": ["a"]}, "alice", workspace="red"))
    red2, _ = jobs.create(NewJob("vm", {"argv": ["b"]}, "alice", workspace="red"))
    blue, _ = jobs.create(NewJob("vm", {"argv": ["c"]}, "bob", workspace="blue"))
    t0 = clock.wall()
    for vm_id, job_id, seconds in [
        ("r1", red.id, 1),
        ("r2", red2.id, 3),
        ("b1", blue.id, 2),
        ("alone", None, 4),
        ("lost", "0" * 32, 5),
    ]:
        make(vms, vm_id, job_id=job_id)
        stamp(database, vm_id, t0 + timedelta(seconds=seconds))
    assert [r.id for r in vms.recent(workspace="red")] == ["r2", "r1"]
    assert [r.id for r in vms.recent(workspace="blue")] == ["b1"]
    assert [r.id for r in vms.recent(1, workspace="red")] == ["r2"]
    assert vms.recent(workspace="green") == []
    assert [r.id for r in vms.recent()] == ["lost", "alone", "r2", "b1", "r1"]
    assert {r.job_id for r in vms.recent(workspace="red")} == {red.id, red2.id}


def test_owned_follows_the_job_lease(
    vms: SqlVMRecords, jobs: SqlJobRepository, clock: FakeClock
) -> None:
    def submit(n: int) -> str:
        job, _ = jobs.create(NewJob("vm", {"argv": [str(n)]}, "alice"))
        return job.id

    running = submit(1)
    jobs.claim("vm", "sup-1", ttl_s=60)
    cancelling = submit(2)
    jobs.claim("vm", "sup-1", ttl_s=60)
    jobs.request_cancel(cancelling)
    finished = submit(3)
    jobs.claim("vm", "sup-1", ttl_s=60)
    jobs.finish(finished, "sup-1", JobState.SUCCEEDED, result={})
    queued = submit(4)
    assert jobs.get(running).state is JobState.RUNNING
    assert jobs.get(cancelling).state is JobState.CANCELLING
    assert jobs.get(queued).state is JobState.QUEUED

    make(vms, "of-running", job_id=running, owner="sup-1", state=VMState.RUNNING)
    make(vms, "of-cancelling", job_id=cancelling, owner="sup-1", state=VMState.STOPPING)
    make(vms, "of-finished", job_id=finished, owner="sup-1", state=VMState.RUNNING)
    make(vms, "of-queued", job_id=queued, owner="sup-1", state=VMState.BOOTING)
    make(vms, "of-missing-job", job_id="f" * 32, owner="sup-1", state=VMState.RUNNING)
    make(vms, "done-of-running", job_id=running, owner="sup-1", state=VMState.GONE)
    make(vms, "failed-of-running", job_id=running, owner="sup-1", state=VMState.FAILED)
    # An earlier attempt of the running job, under another lease owner: an orphan.
    make(vms, "earlier-attempt", job_id=running, owner="sup-0", state=VMState.RUNNING)
    make(vms, "no-owner", job_id=running, state=VMState.RUNNING)

    now = clock.wall()
    owned = vms.owned(now, grace_s=3600)
    assert owned == {"of-running", "of-cancelling"}
    # The leases were taken at ``now`` for 60 s: just before they end the VMs are still owned,
    # at their end (and after) they are orphans.
    assert vms.owned(now + timedelta(seconds=59), grace_s=3600) == owned
    assert vms.owned(now + timedelta(seconds=60), grace_s=3600) == frozenset()
    assert vms.owned(now + timedelta(seconds=61), grace_s=3600) == frozenset()
    # A renewed lease owns them again.
    clock.advance(61)
    assert jobs.renew(running, "sup-1", 60) is JobState.RUNNING
    assert vms.owned(clock.wall(), grace_s=3600) == {"of-running"}


def test_owned_keeps_jobless_vms_only_while_young_and_live(
    vms: SqlVMRecords, database: Database, clock: FakeClock
) -> None:
    now = clock.wall()
    layout = [
        ("young", VMState.BOOTING, 10),
        ("young-defining", VMState.DEFINING, 0),
        ("young-gone", VMState.GONE, 10),
        ("young-failed", VMState.FAILED, 10),
        ("at-grace", VMState.RUNNING, 60),
        ("old", VMState.RUNNING, 61),
    ]
    for vm_id, state, age in layout:
        make(vms, vm_id, state=state)
        stamp(database, vm_id, now - timedelta(seconds=age))
    assert vms.owned(now, grace_s=60) == {"young", "young-defining"}
    assert vms.owned(now, grace_s=120) == {"young", "young-defining", "at-grace", "old"}
    assert vms.owned(now, grace_s=5) == {"young-defining"}
    assert vms.owned(now + timedelta(seconds=3600), grace_s=60) == frozenset()
