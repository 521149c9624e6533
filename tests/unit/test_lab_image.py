from __future__ import annotations

from pathlib import Path

import pytest

from portalops.errors import EnvironmentProblem
from portalops.inventory import REPO_ROOT
from portalops.lab.image import (
    BAKE_PLAYBOOK,
    PACKAGES,
    Mirrors,
    bake_inputs,
    discover_mirrors,
    hosts_image_tag,
    recipe_hash,
)

DEB822 = """Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
"""

ONE_LINE = """deb [signed-by=/usr/share/keyrings/x.gpg] http://other.invalid/debian/ bookworm main
deb http://other.invalid/debian-security bookworm-security main
"""


def test_deb822_sources() -> None:
    assert discover_mirrors([DEB822]) == Mirrors(
        "http://mirror.invalid/debian", "http://mirror.invalid/debian-security"
    )


def test_one_line_sources_with_options_and_trailing_slash() -> None:
    assert discover_mirrors([ONE_LINE]) == Mirrors(
        "http://other.invalid/debian", "http://other.invalid/debian-security"
    )


def test_security_mirror_defaults_next_to_main() -> None:
    found = discover_mirrors(["deb http://m.invalid/debian bookworm main\n"])
    assert found == Mirrors("http://m.invalid/debian", "http://m.invalid/debian-security")


def test_no_debian_mirror() -> None:
    assert discover_mirrors(["deb https://deb.nodesource.invalid/node_20.x nodistro main\n"]) is None


def test_sources_list_has_updates_and_security() -> None:
    text = Mirrors("http://m.invalid/debian", "http://m.invalid/debian-security").sources_list()
    assert "bookworm-updates main" in text
    assert "http://m.invalid/debian-security bookworm-security main" in text


def test_recipe_hash_follows_the_customise_script() -> None:
    assert recipe_hash("a") == recipe_hash("a")
    assert recipe_hash("a") != recipe_hash("b")
    assert len(recipe_hash("a")) == 12
    assert "openssh-server" in PACKAGES


def test_the_bake_reads_the_roles_own_package_lists() -> None:
    names = [path.relative_to(REPO_ROOT).as_posix() for path in bake_inputs()]
    assert names[0] == "lab/image/bake.yml"
    assert "roles/hardening/vars/main.yml" in names
    assert "roles/base/defaults/main.yml" in names
    assert "playbooks/vars/audit.yml" in names  # Lynis, which `portalops audit` installs
    assert BAKE_PLAYBOOK.is_file()


def test_the_bake_refuses_a_vars_file_that_is_not_there(tmp_path: Path) -> None:
    play = tmp_path / "bake.yml"
    play.write_text("- hosts: all\n  vars_files: [missing.yml]\n  tasks: []\n")
    with pytest.raises(EnvironmentProblem, match=r"vars_files names missing.yml, which does not exist"):
        bake_inputs(play)


def test_the_hosts_image_follows_the_bare_image_and_every_input(tmp_path: Path) -> None:
    one, two = tmp_path / "one.yml", tmp_path / "two.yml"
    one.write_text("a: 1\n")
    two.write_text("b: 2\n")
    tag = hosts_image_tag("localhost/portalops-lab:1", [one, two])
    assert tag.startswith("localhost/portalops-lab-hosts:")
    assert tag == hosts_image_tag("localhost/portalops-lab:1", [one, two])
    assert tag != hosts_image_tag("localhost/portalops-lab:2", [one, two])
    two.write_text("b: 3\n")
    assert tag != hosts_image_tag("localhost/portalops-lab:1", [one, two])
