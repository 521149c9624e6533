"""scripts/molecule_all.py: where each role's molecule time goes, from molecule's own stage lines."""

from __future__ import annotations

import configparser
from pathlib import Path

import yaml

from tests.unit.hostscripts import load

molecule_all = load("molecule_all", "scripts/molecule_all.py")

# Molecule's lines as recorded in .lab/logs/molecule-hardening.log (colours included: molecule may colour a pipe).
EXECUTING = "\x1b[36mINFO    \x1b[0m \x1b[32mdefault\x1b[0m ➜ \x1b[33m{stage}\x1b[0m: \x1b[36mExecuting\x1b[0m\n"
TESTINFRA = "INFO     default ➜ verify: Executing Testinfra tests found in /repo/roles/x/molecule/default/tests/...\n"


def test_each_stage_lasts_until_the_next_starts_and_a_repeated_stage_is_summed() -> None:
    marks = [
        (0.0, EXECUTING.format(stage="destroy")),
        (2.0, EXECUTING.format(stage="syntax")),
        (5.0, EXECUTING.format(stage="create")),
        (13.0, "INFO     default ➜ converge: Executing\n"),
        (117.0, EXECUTING.format(stage="idempotence")),
        (152.0, EXECUTING.format(stage="check")),
        (187.0, EXECUTING.format(stage="verify")),
        (187.5, TESTINFRA),
        (224.0, EXECUTING.format(stage="destroy")),
    ]
    seconds = molecule_all.stage_seconds(marks, end=230.0)
    assert seconds == {
        "destroy": 8.0,
        "syntax": 3.0,
        "create": 8.0,
        "converge": 104.0,
        "idempotence": 35.0,
        "check": 35.0,
        "verify": 37.0,
    }


def test_the_plain_format_molecule_uses_without_a_terminal_is_read_too() -> None:
    # As in .lab/logs/molecule-base.log of `make test` under CI (env -i: no TERM).
    testinfra = (
        "INFO     [default > verify] Executing Testinfra tests found in /repo/roles/x/molecule/default/tests/...\n"
    )
    marks = [
        (0.0, "INFO     [default > destroy] Executing\n"),
        (4.0, "INFO     [default > create] Executing\n"),
        (10.0, "INFO     [default > converge] Executing\n"),
        (70.0, "INFO     [default > verify] Executing\n"),
        (70.5, testinfra),
        (79.0, "INFO     [default > destroy] Executing\n"),
    ]
    seconds = molecule_all.stage_seconds(marks, end=83.0)
    assert seconds == {"destroy": 8.0, "create": 6.0, "converge": 60.0, "verify": 9.0}


def test_no_stage_line_gives_no_stages() -> None:
    assert molecule_all.stage_seconds([(1.0, "ERROR    Could not find a scenario\n")], end=2.0) == {}


def test_the_table_has_a_row_per_role_a_column_per_stage_and_the_totals() -> None:
    table = molecule_all.stage_table(
        [("base", {"converge": 60.0, "verify": 10.0}), ("hardening", {"converge": 104.0, "prepare": 4.0})]
    )
    head, base, hardening, total = table.splitlines()
    assert head.split() == ["seconds", *molecule_all.STAGES]
    assert base.split() == ["base", "0", "0", "0", "60", "0", "0", "0", "10"]
    assert hardening.split() == ["hardening", "0", "0", "4", "104", "0", "0", "0", "0"]
    assert total.split() == ["all", "roles", "0", "0", "4", "164", "0", "0", "0", "10"]


def test_a_stage_the_table_does_not_name_gets_a_column_of_its_own_and_is_not_lost() -> None:
    head, row, _ = molecule_all.stage_table([("base", {"converge": 60.0, "syntax": 3.0})]).splitlines()
    assert head.split() == ["seconds", *molecule_all.STAGES, "syntax"]
    assert row.split()[-1] == "3"


def test_molecule_names_the_instances_python_as_ansible_cfg_names_the_lab_hosts() -> None:
    """Molecule writes an ansible.cfg of its own: without the interpreter said, Mitogen looked for python3.13 and
    python3.12 (a failed `podman exec` each) before python3.11 on every task. The instances are lab-image hosts."""
    root = Path(__file__).resolve().parents[2]
    ours = configparser.ConfigParser(interpolation=None)
    ours.read(root / "ansible.cfg")
    molecule = yaml.safe_load((root / ".config" / "molecule" / "config.yml").read_text())
    said = molecule["provisioner"]["config_options"]["defaults"]["interpreter_python"]
    assert said == ours["defaults"]["interpreter_python"] == "/usr/bin/python3"


def test_the_longest_scenarios_start_first_and_a_new_role_last() -> None:
    roles = [Path("roles") / name for name in ("zeta_new", "patching", "monitoring", "alpha_new", "base")]
    assert [r.name for r in molecule_all.start_order(roles)] == [
        "monitoring",
        "base",
        "patching",
        "alpha_new",
        "zeta_new",
    ]
