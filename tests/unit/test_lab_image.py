from __future__ import annotations

from portalops.lab.image import PACKAGES, Mirrors, discover_mirrors, recipe_hash

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
