"""Finding the cgroup v1 controllers, and what a command's cgroup is given, on a made-up
``/proc`` and cgroup tree (real cgroups are exercised in test_bubblewrap.py)."""

from __future__ import annotations

from pathlib import Path

from ember.sandbox import SandboxLimits
from ember.sandbox.cgroups import PREFIX, SANDBOX_OVERHEAD_PIDS, Cgroups, RunCgroup


def fake_machine(tmp_path: Path, *, with_cpu: bool = True) -> Path:
    """A ``/proc`` whose mountinfo puts memory, pids and cpu hierarchies under tmp_path,
    with this process in ``/job/1`` of memory and at the root of the others."""
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    lines = [
        "22 1 0:20 / / rw,relatime - ext4 /dev/sda1 rw",
        f"30 22 0:26 / {root / 'memory'} rw,relatime - cgroup cgroup rw,memory",
        f"31 22 0:27 / {root / 'pids'} rw,relatime - cgroup cgroup rw,pids",
        f"33 22 0:29 / {root / 'cpuacct'} rw,relatime - cgroup cgroup rw,cpuacct",
        f"34 22 0:30 / {root / 'unified'} rw,relatime - cgroup2 cgroup2 rw",
    ]
    if with_cpu:
        lines.append(f"32 22 0:28 / {root / 'cpu'} rw,relatime - cgroup cgroup rw,cpu")
    (proc / "self" / "mountinfo").write_text("\n".join(lines) + "\n")
    (proc / "self" / "cgroup").write_text("4:memory:/job/1\n8:pids:/\n1:cpu:/\n2:cpuacct:/\n0::/\n")
    for name in ("memory/job/1", "pids", "cpu", "cpuacct"):
        (root / name).mkdir(parents=True)
    return proc


def test_the_controllers_are_found_under_this_process_s_own_cgroups(tmp_path: Path) -> None:
    cgroups = Cgroups(proc=fake_machine(tmp_path))
    root = tmp_path / "cgroup"
    assert cgroups.parents == {
        "memory": root / "memory" / "job" / "1",
        "pids": root / "pids",
        "cpu": root / "cpu",
    }
    assert cgroups.notes == []
    assert not any(path.name.startswith(PREFIX) for path in root.rglob("*")), "probe left"


def test_a_missing_controller_is_noted(tmp_path: Path) -> None:
    cgroups = Cgroups(proc=fake_machine(tmp_path, with_cpu=False))
    assert cgroups.controllers == {"memory", "pids"}
    assert any("'cpu'" in note for note in cgroups.notes)


def test_an_unreadable_proc_means_rlimits_only(tmp_path: Path) -> None:
    cgroups = Cgroups(proc=tmp_path / "nothing")
    assert cgroups.controllers == frozenset() and "rlimits only" in cgroups.notes[0]


def test_a_command_s_cgroup_gets_its_limits(tmp_path: Path) -> None:
    cgroups = Cgroups(proc=fake_machine(tmp_path))
    limits = SandboxLimits(memory_bytes=64 << 20, processes=10, cpus=1.5)
    run = cgroups.create(limits)
    assert set(run.dirs) == {"memory", "pids", "cpu"}
    assert all(path.name.startswith(PREFIX) for path in run.dirs.values())
    assert (run.dirs["memory"] / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert not (run.dirs["memory"] / "memory.memsw.limit_in_bytes").exists()  # no swap here
    assert (run.dirs["pids"] / "pids.max").read_text() == str(10 + SANDBOX_OVERHEAD_PIDS)
    assert (run.dirs["cpu"] / "cpu.cfs_quota_us").read_text() == "150000"
    assert (run.dirs["cpu"] / "cpu.cfs_period_us").read_text() == "100000"
    assert run.procs_files == [str(path / "cgroup.procs") for path in run.dirs.values()]


def test_oom_kills_are_read_from_oom_control(tmp_path: Path) -> None:
    run = RunCgroup({"memory": tmp_path})
    assert run.oom_kills() == 0  # no file: nothing known
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert run.oom_kills() == 2
    assert RunCgroup({"pids": tmp_path}).oom_kills() == 0


def test_an_empty_cgroup_is_removed_and_removal_is_idempotent(tmp_path: Path) -> None:
    made = tmp_path / f"{PREFIX}x"
    made.mkdir()
    run = RunCgroup({"memory": made})
    assert run.pids() == set() and not run.kill() and run.empty_sync()
    run.remove()
    run.remove()
    assert not made.exists() and run.removed
