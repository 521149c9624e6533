"""Every role's interface is its argument spec: defaults and README follow it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from portalops.inventory import REPO_ROOT
from portalops.specdoc import render, roles

ROLES = roles()


def spec_of(role: Path) -> dict[str, Any]:
    options: dict[str, Any] = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"][
        "options"
    ]
    return options


def test_every_role_has_an_argument_spec_and_a_readme() -> None:
    for role in sorted(p for p in (REPO_ROOT / "roles").iterdir() if p.is_dir()):
        assert (role / "meta/argument_specs.yml").exists(), role.name
        assert (role / "README.md").exists(), role.name


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_readme_variables_are_generated_from_the_spec(role: Path) -> None:
    current, wanted = render(role)
    assert current == wanted, f"run `make docs`: {role.name}/README.md is stale"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_defaults_are_the_specs_defaults(role: Path) -> None:
    spec = spec_of(role)
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
    optional = {name for name, option in spec.items() if not option.get("required")}
    assert set(defaults) == optional, "defaults/main.yml and the spec's optional variables differ"
    for name, value in defaults.items():
        documented = spec[name].get("default")
        if isinstance(value, str) and "{{" in value:
            continue  # a template; the spec documents it as text
        assert documented == value, f"{name}: defaults/main.yml has {value!r}, the spec says {documented!r}"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_public_variables_carry_the_role_prefix(role: Path) -> None:
    prefix = role.name + "_"
    assert all(name.startswith(prefix) for name in spec_of(role)), "public variables are <role>_*"


def test_set_filters_in_rendered_variables_are_sorted() -> None:
    """Ansible's difference/union/intersect return sets, whose order changes with Python's hash seed from run
    to run; a variable rendered into a file (an allow list, a list of peers) must sort after them, or every
    run rewrites the file and restarts its service (on the lab: mon1's nftables and rsyslog on each re-run)."""
    files = [*REPO_ROOT.glob("roles/*/defaults/main.yml"), *REPO_ROOT.glob("roles/*/vars/main.yml")]
    files += [*REPO_ROOT.glob("inventory/*/group_vars/**/*.yml"), *REPO_ROOT.glob("roles/*/meta/argument_specs.yml")]
    unsorted = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name in ("difference(", "union(", "intersect("):
                at = line.find(f"| {name}")
                rest = line[at:]
                if at >= 0 and "| sort" not in rest and "| length" not in rest:
                    unsorted.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert unsorted == [], "\n".join(unsorted)
