"""The canary's flat apt repository (portalops.lab.aptrepo), built here with dpkg-deb: no host needed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from portalops.lab import aptrepo


def stanzas(repo: Path) -> list[dict[str, str]]:
    found = []
    for block in (repo / "Packages").read_text().strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(" "))
        found.append(fields)
    return found


def test_the_repository_offers_exactly_the_published_versions(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    aptrepo.publish(repo, ["1.0", "1.1"])
    offered = stanzas(repo)
    assert [(s["Package"], s["Version"]) for s in offered] == [(aptrepo.PACKAGE, "1.0"), (aptrepo.PACKAGE, "1.1")]
    for stanza in offered:
        deb = (repo / stanza["Filename"]).read_bytes()
        assert stanza["Filename"] == f"./{aptrepo.PACKAGE}_{stanza['Version']}_all.deb"
        assert (int(stanza["Size"]), stanza["SHA256"]) == (len(deb), hashlib.sha256(deb).hexdigest())
    packages = (repo / "Packages").read_bytes()
    assert f" {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages" in (repo / "Release").read_text()

    aptrepo.publish(repo, ["1.2"])
    assert [s["Version"] for s in stanzas(repo)] == ["1.2"]
    assert [p.name for p in repo.glob("*.deb")] == [f"{aptrepo.PACKAGE}_1.2_all.deb"]
