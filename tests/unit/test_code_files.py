"""portalops-code-files: which files in the code directories count as added, and the quarantine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.unit.hostscripts import load

cf = load("portalops_code_files", "roles/hardening/files/portalops_code_files.py")

THEMES = "/usr/share/wordpress/wp-content/themes"
CONFIG = cf.merge_config(
    [
        (
            "wordpress.json",
            {
                "roots": ["/usr/share/wordpress", "/etc/php/8.2/fpm"],
                "managed": ["/etc/php/8.2/fpm/conf.d/90-portalops.ini"],
                "declared": [f"{THEMES}/county/*"],
                "reload": {"/etc/php/8.2/fpm": "php8.2-fpm"},
            },
        )
    ]
)
OWNED = {
    f"{THEMES}/twentytwentythree/style.css",
    "/etc/php/8.2/mods-available/pdo.ini",
    "/etc/php/8.2/fpm/php.ini",
}


def test_a_file_no_package_role_or_declaration_accounts_for_is_added() -> None:
    entries = [
        cf.Entry(f"{THEMES}/twentytwentythree/style.css"),
        cf.Entry(f"{THEMES}/twentytwentythree/class-theme-cache.php"),
        cf.Entry("/etc/php/8.2/fpm/conf.d/90-portalops.ini"),
        cf.Entry("/etc/php/8.2/fpm/php.ini"),
    ]
    result = cf.classify(entries, OWNED, CONFIG)
    assert result["added"] == [f"{THEMES}/twentytwentythree/class-theme-cache.php"]
    assert result["owned"] == ["/etc/php/8.2/fpm/php.ini", f"{THEMES}/twentytwentythree/style.css"]
    assert result["managed"] == ["/etc/php/8.2/fpm/conf.d/90-portalops.ini"]


def test_a_declared_site_owned_file_is_not_added() -> None:
    entries = [cf.Entry(f"{THEMES}/county/style.css"), cf.Entry(f"{THEMES}/county/inc/menu.php")]
    result = cf.classify(entries, OWNED, CONFIG)
    assert result["declared"] == [f"{THEMES}/county/inc/menu.php", f"{THEMES}/county/style.css"]
    assert result["added"] == []
    # The pattern is anchored: a look-alike beside the declared theme is still added.
    assert cf.classify([cf.Entry(f"{THEMES}/county-old/x.php")], OWNED, CONFIG)["added"] == [
        f"{THEMES}/county-old/x.php"
    ]


def test_a_link_to_a_packaged_file_adds_nothing_but_a_link_to_anything_else_does() -> None:
    enabled = cf.Entry("/etc/php/8.2/fpm/conf.d/10-pdo.ini", ("/etc/php/8.2/mods-available/pdo.ini",) * 2)
    shell = cf.Entry(f"{THEMES}/twentytwentythree/x.php", ("/var/lib/wordpress/sites/portal/wp-content/uploads/x.php",))
    result = cf.classify([enabled, shell], OWNED, CONFIG)
    assert result["linked"] == [enabled.path] and result["added"] == [shell.path]


def test_the_roles_fragments_are_merged_and_bad_ones_named() -> None:
    merged = cf.merge_config(
        [
            ("a.json", {"roots": ["/etc/nginx"], "managed": ["/etc/nginx/tls/a.crt"]}),
            ("b.json", {"roots": ["/etc/nginx/", "/usr/share/wordpress"], "exclude": ["/srv/x/uploads"]}),
        ]
    )
    assert merged.roots == ("/etc/nginx", "/usr/share/wordpress")
    assert merged.managed == {"/etc/nginx/tls/a.crt"} and merged.exclude == {"/srv/x/uploads"}
    with pytest.raises(cf.ConfigError, match=r"b\.json: declared"):
        cf.merge_config([("b.json", {"declared": ["themes/county/*"]})])
    with pytest.raises(cf.ConfigError, match=r"c\.json: not a JSON object"):
        cf.merge_config([("c.json", [])])


def test_dpkg_and_ucf_records_parse() -> None:
    assert list(cf.parse_dpkg_list("/.\n/etc\n/etc/nginx/nginx.conf\n")) == ["/etc", "/etc/nginx/nginx.conf"]
    diversions = "/etc/logrotate.d/nginx\n/etc/logrotate.d/nginx.dpkg-dist\n:\n/a\n/a.real\npkg\n"
    assert list(cf.parse_diversions(diversions)) == ["/etc/logrotate.d/nginx.dpkg-dist", "/a.real"]
    assert list(cf.parse_ucf_registry("php8.2-fpm\t/etc/php/8.2/fpm/php.ini\nbroken\n")) == ["/etc/php/8.2/fpm/php.ini"]


def test_only_the_daemons_whose_configuration_lost_a_file_are_reloaded() -> None:
    reload = {"/etc/nginx": "nginx", "/etc/php/8.2/fpm": "php8.2-fpm"}
    assert cf.units_to_reload([f"{THEMES}/x.php"], reload) == []
    assert cf.units_to_reload(["/etc/nginx/conf.d/x.conf", "/etc/nginxx/y"], reload) == ["nginx"]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A code tree with a packaged file, a planted shell, a declared theme and site data, and its dpkg list."""
    code, uploads = tmp_path / "wordpress", tmp_path / "sites/portal/wp-content/uploads"
    for path, text in {
        code / "themes/tt3/style.css": "/* theme */",
        code / "themes/tt3/x.php": "<?php @eval($_POST[0]);",
        code / "themes/county/index.php": "<?php // ours",
        uploads / "2024/photo.png": "png",
    }.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (code / "themes/tt3/link.css").symlink_to("style.css")
    info = tmp_path / "dpkg"
    info.mkdir()
    (info / "wordpress.list").write_text(f"/.\n{code}\n{code / 'themes/tt3/style.css'}\n")
    conf = tmp_path / "code-files.d"
    conf.mkdir()
    fragment = {
        "roots": [str(code), str(tmp_path / "sites")],
        "exclude": [str(uploads)],
        "declared": [f"{code}/themes/county/*"],
    }
    (conf / "wordpress.json").write_text(json.dumps(fragment))
    monkeypatch.setattr(cf, "DPKG_INFO", info)
    monkeypatch.setattr(cf, "DPKG_DIVERSIONS", tmp_path / "none")
    monkeypatch.setattr(cf, "UCF_REGISTRY", tmp_path / "none")
    monkeypatch.setattr(cf, "DPKG_LOCKS", ())
    return tmp_path


def test_check_lists_the_added_file_and_quarantine_moves_it_with_its_record(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell = tree / "wordpress/themes/tt3/x.php"
    os.utime(shell, (1_600_000_000, 1_600_000_000))
    conf = ["--config-dir", str(tree / "code-files.d")]
    assert cf.main([*conf, "check"]) == cf.EXIT_ADDED
    out, err = capsys.readouterr()
    assert json.loads(out)["added"] == [str(shell)] and f"ADDED: {shell}" in err

    evidence = tree / "evidence"
    assert cf.main([*conf, "quarantine", "--evidence", str(evidence)]) == cf.EXIT_OK
    summary = json.loads(capsys.readouterr()[0].strip().splitlines()[-1])
    assert summary == {"ok": True, "evidence": str(evidence), "quarantined": [str(shell)], "problems": []}
    assert not shell.exists()
    kept = evidence / "quarantine" / str(shell).lstrip("/")
    assert kept.read_text() == "<?php @eval($_POST[0]);"
    (record,) = json.loads((evidence / "quarantine.json").read_text())["files"]
    assert record["path"] == str(shell) and record["size"] == 23 and record["first_bytes"].startswith("<?php")
    assert record["mtime"] == "2020-09-13T12:26:40Z" and record["quarantined_to"] == str(kept)
    assert record["sha256"] == cf.sha256_file(str(kept)) and record["owner"]
    assert oct((evidence / "quarantine.json").stat().st_mode & 0o777) == "0o600"
    # The declared theme, the packaged file, the link to it and the site's uploads stay where they are.
    assert (tree / "wordpress/themes/county/index.php").exists() and (tree / "wordpress/themes/tt3/link.css").exists()
    assert (tree / "sites/portal/wp-content/uploads/2024/photo.png").exists()
    assert cf.main([*conf, "check"]) == cf.EXIT_OK


def test_no_configuration_is_bad_configuration_and_a_busy_dpkg_is_unknown(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cf.main(["--config-dir", str(tree / "nowhere"), "check"]) == cf.EXIT_CONFIG

    def busy(*_: object) -> None:
        raise cf.Busy("dpkg is busy")

    monkeypatch.setattr(cf.DpkgLock, "__enter__", busy)
    assert cf.main(["--config-dir", str(tree / "code-files.d"), "check"]) == 75
