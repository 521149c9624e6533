"""`make test`'s lanes (scripts/test_lanes.py), with a stand-in for make that reports what it was asked."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.unit.hostscripts import load

lanes = load("test_lanes", "scripts/test_lanes.py")

# A stand-in for `make LAYER [VARIABLE=...]`: records the layer and whether SIGINT reached it ignored, fails "unit"
# (and the layer FAKE_FAIL names); its variables go to the calls file too, on a line of their own.
FAKE_MAKE = """
import os, sys, time
layer = sys.argv[2]
if sys.argv[3:]:
    with open(sys.argv[1] + ".vars", "a") as out:
        out.write(f"{layer} {' '.join(sys.argv[3:])} converged={os.environ.get('PORTALOPS_LAB_CONVERGED', '-')}\\n")
ignored = int(open("/proc/self/status").read().split("SigIgn:")[1].split()[0], 16) & 2
try:
    group = open("/proc/self/autogroup").read().split()[-1]
except OSError:
    group = "none"
with open(sys.argv[1], "a") as out:
    out.write(f"{layer} {'ignored' if ignored else 'default'} nice={os.nice(0)} autogroup={group}\\n")
if layer == "integration" and os.environ.get("PORTALOPS_SNAPSHOT_DONE"):  # as the converge fixture does
    with open(os.environ["PORTALOPS_SNAPSHOT_DONE"] + ".new", "w") as out:
        out.write(os.environ.get("FAKE_SNAPSHOT", "ok") + "\\n")
    os.replace(os.environ["PORTALOPS_SNAPSHOT_DONE"] + ".new", os.environ["PORTALOPS_SNAPSHOT_DONE"])
if layer == "integration" and os.environ.get("FAKE_CONVERGE_S"):  # as the conftest's converge fixture does
    # Converging until the side lane's unit layer ran (at most FAKE_CONVERGE_S): a side lane that
    # waited for the converge before lint or unit would show up after "converged", however slow it is.
    waited = time.monotonic() + float(os.environ["FAKE_CONVERGE_S"])
    while time.monotonic() < waited and "unit " not in open(sys.argv[1]).read():
        time.sleep(0.05)
    with open(sys.argv[1], "a") as out:
        out.write("converged done\\n")
    open(os.environ["PORTALOPS_CONVERGE_DONE"], "w").close()
    time.sleep(0.5)
print(f"output of {layer}")
sys.exit(3 if layer in ("unit", os.environ.get("FAKE_FAIL")) else 0)
"""


# A stand-in for the watcher of the containers' CPU time (portalops.lab.cpu): its report when terminated.
FAKE_WATCH = """
import json, signal, sys, time
def report(*_):
    containers = [{"name": "portalops-cms1", "store": None, "cpu_s": 600.0},
                  {"name": "portalops-cms1", "store": "/var/tmp/clone/.lab/storage", "cpu_s": 300.0}]
    containers += [{"name": f"instance{i}", "store": None, "cpu_s": 6.0} for i in range(13)]
    report = {"wall_s": 1.0, "containers_cpu_s": 996.0, "conmon_cpu_s": 6.0, "containers": containers}
    open(sys.argv[1], "w").write(json.dumps(report))
    sys.exit(0)
signal.signal(signal.SIGTERM, report)
while True:
    time.sleep(1)
"""


@pytest.fixture
def fake_make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "make.py"
    script.write_text(FAKE_MAKE)
    calls = tmp_path / "calls"
    monkeypatch.setattr(lanes, "MAKE", [sys.executable, str(script), str(calls)])
    (tmp_path / "watch.py").write_text(FAKE_WATCH)
    monkeypatch.setattr(lanes, "CPU_WATCH", [sys.executable, str(tmp_path / "watch.py")])
    monkeypatch.setattr(lanes, "LOGS", tmp_path / "logs")
    monkeypatch.setattr(lanes, "POLL_S", 0.05)  # the stand-in's converge and snapshot take no time
    monkeypatch.setattr(sys, "argv", ["test_lanes.py"])
    # `make test` runs these tests beside its lab lanes: the stand-in must never touch that run's files
    (tmp_path / "outside").mkdir()
    for name in ("PORTALOPS_CONVERGE_DONE", "PORTALOPS_SNAPSHOT_DONE", "PORTALOPS_TEST_CPU_LOG"):
        monkeypatch.setenv(name, str(tmp_path / "outside" / name))
    return calls


def test_every_layer_runs_and_one_failure_fails_the_whole(
    fake_make: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lanes.main() == 1
    layers = [line.split()[0] for line in fake_make.read_text().splitlines()]
    assert layers[:2] == ["setup", "lab-image"]
    # molecule after unit failed; the lab tests in four sessions, two on the lab, one on each clone
    assert sorted(layers[2:]) == [
        "integration",
        "integration-clone",
        "integration-clone",
        "lab-snapshot-remove",
        "lint",
        "molecule",
        "unit",
    ]
    out = capsys.readouterr().out
    assert "unit FAILED (3)" in " ".join(out.split())
    assert "molecule ok" in " ".join(out.split())
    assert "integration: clone ok" in " ".join(out.split())
    assert "integration: clone2 ok" in " ".join(out.split())
    # the side lanes' output is in their logs and printed at the end
    assert "output of unit" in (tmp_path / "logs" / "test-side.log").read_text()
    assert "output of molecule" in (tmp_path / "logs" / "test-molecule.log").read_text()
    assert "output of molecule" in out and "output of unit" in out


def test_molecule_waits_for_the_labs_converge_and_lint_and_unit_do_not(
    fake_make: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CONVERGE_S", "30")
    assert lanes.main() == 1
    layers = [line.split()[0] for line in fake_make.read_text().splitlines()]
    assert layers.index("lint") < layers.index("converged") < layers.index("molecule"), layers
    assert layers.index("unit") < layers.index("converged"), layers


def test_the_side_lane_yields_the_cpu_to_the_lab_lane_also_across_sessions(fake_make: Path) -> None:
    lanes.main()
    seen = {line.split()[0]: line.split()[2:] for line in fake_make.read_text().splitlines() if "nice=" in line}
    for layer in ("lint", "unit", "molecule"):
        assert seen[layer][0] == "nice=19", seen
    assert seen["integration"][0] == f"nice={os.nice(0)}", seen  # as this test runs (in make test: the side lane's)
    if seen["integration"][1] != "autogroup=none":  # the kernel shares the CPU between sessions first
        for layer in ("lint", "unit", "molecule"):
            assert seen[layer][1] == "autogroup=10", seen
        assert seen["integration"][1] == "autogroup=0", seen


def test_a_failed_setup_runs_nothing_else(fake_make: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lanes, "FIRST", ("unit",))  # the stand-in fails "unit"
    assert lanes.main() == 1
    assert [line.split()[:2] for line in fake_make.read_text().splitlines()] == [["unit", "default"]]


def test_the_lanes_get_sigint_at_its_default_even_when_started_with_it_ignored(fake_make: Path, tmp_path: Path) -> None:
    # As a shell without job control starts a background job: SIGINT ignored from the start.
    runner = tmp_path / "run.py"
    runner.write_text(
        "import pathlib, sys\n"
        "from tests.unit.hostscripts import load\n"
        "lanes = load('test_lanes', 'scripts/test_lanes.py')\n"
        f"lanes.MAKE = {lanes.MAKE!r}\n"
        f"lanes.LOGS = pathlib.Path({str(tmp_path / 'logs')!r})\n"
        "lanes.POLL_S = 0.05\n"
        "sys.argv = ['test_lanes.py']\n"
        "sys.exit(lanes.main())\n"
    )
    result = subprocess.run(
        [sys.executable, str(runner)],
        cwd=lanes.REPO,
        env={**os.environ, "PYTHONPATH": str(lanes.REPO)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        capture_output=True,
        text=True,
        check=False,
    )
    assert fake_make.exists(), result.stderr[-2000:]
    states = {line.split()[0]: line.split()[1] for line in fake_make.read_text().splitlines()}
    assert set(states) == {
        "lab-snapshot-remove",
        "setup",
        "lab-image",
        "lint",
        "unit",
        "molecule",
        "integration",
        "integration-clone",
    }
    assert set(states.values()) == {"default"}


def test_cpu_busy_is_the_share_of_non_idle_jiffies_between_two_readings(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice, as /proc/stat's first line has them
    stat.write_text("cpu  100 0 50 800 50 0 0 0 7 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n")
    before = lanes.cpu_jiffies(stat)
    assert before == (150, 1000)  # idle and iowait are not busy; guest is inside user already
    stat.write_text("cpu  400 0 150 1250 100 0 0 0 7 0\n")
    assert lanes.busy_between(before, lanes.cpu_jiffies(stat)) == 400 / 900
    assert lanes.cpu_jiffies(tmp_path / "none") is None
    assert lanes.busy_between(None, before) is None
    assert lanes.busy_between(before, before) is None  # no time passed: no share


def test_the_lab_tests_are_summed_per_module_slowest_first(tmp_path: Path) -> None:
    junit = tmp_path / "integration.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.integration.test_site" name="test_second_run" time="600.5"/>'
        '<testcase classname="tests.integration.test_site" name="test_check" time="130"/>'
        '<testcase classname="tests.integration.test_site_patch.TestRollout" name="test_rollout" time="900"/>'
        '<testcase classname="tests.integration.test_lab" name="test_up" time="1.5"/>'
        "</testsuite></testsuites>"
    )
    assert lanes.by_module(junit) == [
        ("tests.integration.test_site_patch", 900.0, 1),
        ("tests.integration.test_site", 730.5, 2),
        ("tests.integration.test_lab", 1.5, 1),
    ]
    shown = lanes.module_table(junit).splitlines()
    assert shown[1].split() == ["test_site_patch", "1", "15.0m", "?", "?", "?"]  # no CPU log: unknown
    assert "no time per lab test module" in lanes.module_table(tmp_path / "missing.xml")


def test_each_lab_test_module_says_how_busy_the_cpus_were_while_its_tests_ran(tmp_path: Path) -> None:
    junit = tmp_path / "integration.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.integration.test_site_responder" name="test_drill" time="600"/>'
        '<testcase classname="tests.integration.test_site" name="test_second_run" time="300"/>'
        "</testsuite></testsuites>"
    )
    log = tmp_path / "integration-cpu.jsonl"
    responder = {"module": "tests.integration.test_site_responder", "ours_cpu_s": 12.0}
    records = [
        {**responder, "busy": 30, "total": 200, "hosts_cpu_s": {"web1": 30.0, "mon1": 6.0}},
        {**responder, "busy": 20, "total": 200, "hosts_cpu_s": {"web1": 18.0}},
        # a line of a run before hosts were counted: the share counts, the CPU time is unknown
        {"module": "tests.integration.test_site", "busy": 190, "total": 200},
    ]
    # the last line of a run killed while writing it counts for nothing
    log.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"module": "tests.integ')
    used = lanes.cpu_by_module(log)
    assert {module: m.share for module, m in used.items()} == {
        "tests.integration.test_site_responder": 50 / 400,
        "tests.integration.test_site": 190 / 200,
    }
    assert (used["tests.integration.test_site_responder"].hosts_s, used["tests.integration.test_site"].hosts_s) == (
        54.0,
        None,
    )
    shown = lanes.module_table(junit, log).splitlines()
    assert shown[0].split()[-6:] == ["cpu", "busy", "host", "CPU", "our", "CPU"]
    assert shown[1].split() == ["test_site_responder", "1", "10.0m", "12%", "0.9m", "0.4m"]
    assert shown[2].split() == ["test_site", "1", "5.0m", "95%", "?", "?"]
    assert lanes.cpu_by_module(tmp_path / "none.jsonl") == {}


def test_the_table_says_how_busy_the_cpus_were(
    fake_make: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lanes.cpu_jiffies() is not None  # this machine has a /proc/stat
    # A stand-in layer can end within one jiffy, and no time passed is no share ("?"; CI saw it once): the
    # readings here advance at every look, a quarter of the time busy
    looks = itertools.count(1)

    def ticking() -> tuple[int, int]:
        n = next(looks)
        return n, 4 * n

    monkeypatch.setattr(lanes, "cpu_jiffies", ticking)
    lanes.main()
    rows = capsys.readouterr().out.splitlines()
    header = next(i for i, row in enumerate(rows) if row.startswith("layer "))
    assert header and rows[header].split()[-2:] == ["cpu", "busy"]
    # every layer and the whole have a share of busy CPU
    whole = next(i for i, row in enumerate(rows) if row.startswith("make test"))
    assert whole - header == 9, rows[header:]  # eight layers
    assert all(row.split()[-1].endswith("%") for row in rows[header + 1 : whole + 1]), rows[header:]


def test_a_layer_counts_the_cpu_time_of_what_its_make_waited_for() -> None:
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    # a shell's child computes for 0.3 s (the shell, not us, waits for it): its CPU time is the layer's
    layer = subprocess.Popen(["sh", "-c", f"{sys.executable} -c '{burn}'; exit 4"])
    code, seconds = lanes.wait_counting(layer)
    assert (code, layer.returncode) == (4, 4)
    assert seconds is not None and seconds >= 0.3
    waited = subprocess.Popen(["true"])
    waited.wait()  # someone else waited for it (a stopped lane): its time is unknown, its status is not
    assert lanes.wait_counting(waited) == (0, None)


def test_the_cpu_time_is_counted_where_it_went_each_layers_processes_the_containers_and_the_rest(
    fake_make: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lanes.main()
    rows = capsys.readouterr().out.splitlines()
    top = next(i for i, row in enumerate(rows) if row.startswith("where the CPU time went"))
    table = {row[: lanes.WIDTH].strip(): row[lanes.WIDTH :].split() for row in rows[top + 1 :]}
    layers = ["setup", "lab-image", "lint", "unit", "molecule", "integration: lab", "integration: clone"]
    assert [row.removesuffix(": its processes") for row in list(table)[: len(layers)]] == layers
    assert table["containers (the labs' hosts, molecule's instances)"][0] == "16.6"
    # the most costly by name, the clone's with its store; the rest summed
    assert table["portalops-cms1"] == ["10.0"]
    assert table["portalops-cms1 in /var/tmp/clone/.lab/storage"] == ["5.0"]
    assert table["conmon (podman's monitors of containers and exec sessions)"] == ["0.1"]
    assert table["3 more, and time after a removed one's last look"] == ["0.5"]  # 3 of 6 s, and 12 s unseen
    assert len([row for row in table if row.startswith("instance")]) == 10
    assert "the rest (processes no layer waited for)" in table and "the machine's CPUs busy" in table


def test_the_cpu_table_says_what_it_does_not_know() -> None:
    layers = [lanes.Layer("lint", cpu_s=60.0), lanes.Layer("unit")]  # unit's waited for by a stopped lane
    shown = lanes.cpu_table(layers, 600.0, None).splitlines()
    assert shown[1].split()[-2:] == ["1.0", "10%"]
    assert shown[2].split()[-1] == "?"
    assert [row.split()[-1] for row in shown[3:5]] == ["?", "?"]  # the containers, and so the rest
    assert shown[5].split()[-2:] == ["10.0", "100%"]
    assert shown[-1].startswith("(no container CPU time:")


def test_the_lab_tests_that_wait_run_right_after_the_converge_beside_molecule() -> None:
    """The lab lane's order as pytest collects it (no lab needed): the converge's modules first, then the
    modules marked `waits` (drills, runbooks: CPUs idle, so molecule's CPU work fits beside them), then the
    modules that compute; each group in file order, each module's tests together."""
    repo = Path(__file__).resolve().parents[2]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/integration"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    ids = [line.split("::")[0].removeprefix("tests/integration/") for line in collected.splitlines() if "::" in line]
    modules = list(dict.fromkeys(ids))
    assert len(modules) == len([m for i, m in enumerate(ids) if i == 0 or ids[i - 1] != m]), "a module was split"
    assert modules[:3] == ["test_lab.py", "test_lab_faults.py", "test_site.py"], modules
    waiting = [m for m in modules if "pytestmark = pytest.mark.waits" in (repo / "tests/integration" / m).read_text()]
    assert {"test_site_responder.py", "test_site_runbooks_db.py"} <= set(waiting), waiting
    assert modules[3 : 3 + len(waiting)] == sorted(waiting), modules
    assert modules[3 + len(waiting) :] == sorted(modules[3 + len(waiting) :]), modules
    assert modules.index("test_site_responder.py") < modules.index("test_site_audit.py")


def test_the_lab_tests_run_in_three_shares_the_clones_after_the_snapshot_every_module_once(fake_make: Path) -> None:
    assert lanes.main() == 1  # the stand-in's unit layer fails
    calls = [line.split()[0] for line in fake_make.read_text().splitlines()]
    assert calls.index("integration") < calls.index("integration-clone") < calls.index("lab-snapshot-remove"), calls
    assert calls[-1] == "lab-snapshot-remove", calls  # after every lane: no clone runs from it any more
    shares: dict[str, tuple[set[str], str]] = {}
    for line in Path(f"{fake_make}.vars").read_text().splitlines():
        words = line.split()
        where = next((w.split("=", 1)[1] for w in words if w.startswith("CLONE_DIR=")), "the lab")
        assert where not in shares, f"two sessions on {where}"
        shares[where] = ({Path(w).stem for w in words if w.endswith(".py")}, words[-1])
    assert set(shares) == {"the lab", *(share.dir for share in lanes.CLONES)} and len(lanes.CLONES) == 2
    # the lab converges (and its session tests that converge); each clone starts from the lab's snapshot
    assert {"test_lab", "test_site"} <= shares["the lab"][0] and shares["the lab"][1] == "converged=-"
    for share in lanes.CLONES:
        assert shares[share.dir] == (set(share.modules), "converged=1")
    every = [m for modules, _ in shares.values() for m in modules]
    assert sorted(every) == lanes.lab_modules(), "each lab test module runs once, on one lab"
    # what needs the lab: its converge and life, the machine's package cache's lab side, the patch repository
    # (in the lab's namespace only), the backups the patch test's pre-check finds fresh
    kept = {"test_site_patch", "test_site_aptcache", "test_site", "test_lab", "test_site_backup"}
    assert not kept & set(lanes.CLONE_MODULES)


@pytest.mark.parametrize("snapshot", ["not taken: the converge failed", "failed (exit 1): no space left"])
def test_no_clone_without_a_snapshot_and_the_reason_is_said(
    fake_make: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], snapshot: str
) -> None:
    monkeypatch.setenv("FAKE_SNAPSHOT", snapshot)
    assert lanes.main() == 1
    calls = [line.split()[0] for line in fake_make.read_text().splitlines()]
    assert "integration-clone" not in calls and "integration" in calls
    out = " ".join(capsys.readouterr().out.split())
    assert f"the lab's snapshot: {snapshot}" in out
    assert "integration: clone not run" in out


def test_the_clone_does_not_wait_for_a_lab_lane_that_ended_without_a_word(tmp_path: Path) -> None:
    ended = threading.Event()
    assert lanes.snapshot_taken(tmp_path / "snapshot.done", ended) is None  # not yet
    (tmp_path / "snapshot.done").touch()
    assert lanes.snapshot_taken(tmp_path / "snapshot.done", ended) is None  # created, its text not written yet
    ended.set()
    assert lanes.snapshot_taken(tmp_path / "snapshot.done", ended) is False
    (tmp_path / "snapshot.done").write_text("ok\n")
    assert lanes.snapshot_taken(tmp_path / "snapshot.done", ended) is True


def test_serial_runs_every_lab_test_in_one_session_on_the_lab(fake_make: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["test_lanes.py", "--serial"])
    lanes.main()
    calls = [line.split()[0] for line in fake_make.read_text().splitlines()]
    assert calls.count("integration") == 1 and "integration-clone" not in calls and "lab-snapshot-remove" not in calls
    # what `make test`'s own lanes were given is not this run's (its unit tests run beside its lab lanes)
    assert list((fake_make.parent / "outside").iterdir()) == []


def test_the_table_says_which_lanes_ran_last_alone_and_for_how_long() -> None:
    marks = {"lab": (100.0, (50, 100)), "clone": (160.0, (80, 200)), "clone2": (90.0, (40, 90))}
    marks |= {"side": (20.0, (10, 20)), "molecule": (130.0, (60, 150))}
    assert lanes.tail(marks, None) == ("the lab lanes alone, after the side lanes ended", 30.0, 20 / 50)
    marks["molecule"] = (400.0, (300, 700))
    assert lanes.tail(marks, None) == ("the side lanes alone, after the lab lanes ended", 240.0, 220 / 500)
    assert lanes.tail({"lab": (1.0, None)}, None) is None  # --serial: no lanes side by side
