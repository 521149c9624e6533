"""The drill reads each backed-up host's repository with that host's own password."""

from __future__ import annotations

from typing import Any

import pytest

from portalops_host import drill
from portalops_host.restic import restic_env

CONFIG: dict[str, Any] = {
    "sources": {"web1": "sftp:r:/web1/repo", "db1": "sftp:r:/db1/repo"},
    "repository": "",
    "password_files": {"web1": "/etc/portalops/drill-restic-web1.pass", "db1": "/etc/portalops/drill-restic-db1.pass"},
    "sftp_command": "ssh r -s sftp",
}


def test_each_source_is_read_with_its_own_password_file() -> None:
    for host in ("web1", "db1"):
        repo = drill.repo_config(CONFIG, host)
        env = restic_env(repo)
        assert env["RESTIC_REPOSITORY"] == f"sftp:r:/{host}/repo"
        assert env["RESTIC_PASSWORD_FILE"] == f"/etc/portalops/drill-restic-{host}.pass"


def test_a_source_without_a_password_is_refused() -> None:
    config = {**CONFIG, "sources": {**CONFIG["sources"], "cms1": "sftp:r:/cms1/repo"}}
    with pytest.raises(drill.DrillError, match="no repository password configured for cms1"):
        drill.repo_config(config, "cms1")


def test_an_older_configuration_with_one_password_file_still_reads() -> None:
    config = {key: value for key, value in CONFIG.items() if key != "password_files"} | {"password_file": "/one"}
    env = restic_env(drill.repo_config(config, "web1"))
    assert env["RESTIC_PASSWORD_FILE"].endswith("/one")
