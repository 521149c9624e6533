"""What mariadb leaves on a host, observed from inside it."""

import pytest
from testinfra.host import Host

# Talk to the container directly: one podman exec per check, not one Ansible run.
testinfra_hosts = ["podman://mariadb"]

SITES = [("wp_portal", "wp_portal"), ("wp_news", "wp_news")]
# The stand-in CMS host's address (molecule.yml).
CLIENT = "127.0.0.1"


def sql(host: Host, query: str, database: str = "") -> list[list[str]]:
    """Run a query as root through the socket; rows as lists of columns."""
    out = host.check_output(f'mariadb -N -B -e "{query}" {database}')
    return [line.split("\t") for line in out.splitlines()]


def variable(host: Host, name: str) -> str:
    return sql(host, f"SELECT @@GLOBAL.{name}")[0][0]


def test_mariadb_runs_and_is_enabled(host: Host) -> None:
    assert host.service("mariadb").is_running
    assert host.service("mariadb").is_enabled


def test_listens_on_the_bind_address_only(host: Host) -> None:
    assert host.socket("tcp://127.0.0.1:3306").is_listening
    assert not host.socket("tcp://0.0.0.0:3306").is_listening
    assert not host.socket("tcp://:::3306").is_listening
    assert variable(host, "bind_address") == "127.0.0.1"


def test_no_anonymous_users_and_root_on_the_socket_only(host: Host) -> None:
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE User = ''") == [["0"]]
    assert sql(host, "SELECT Host FROM mysql.user WHERE User = 'root'") == [["localhost"]]
    plugin = sql(host, "SELECT JSON_VALUE(Priv, '$.plugin') FROM mysql.global_priv WHERE User = 'root'")
    assert plugin == [["unix_socket"]]
    # No password fallback: root over TCP is refused.
    assert host.run("mariadb -h 127.0.0.1 -u root -e 'SELECT 1' </dev/null").rc != 0


def test_no_test_database(host: Host) -> None:
    assert sql(host, "SHOW DATABASES LIKE 'test'") == []
    assert sql(host, "SELECT COUNT(*) FROM mysql.db WHERE Db LIKE 'test%'") == [["0"]]


@pytest.mark.parametrize("db,user", SITES)
def test_site_database_and_user(host: Host, db: str, user: str) -> None:
    assert sql(host, "SELECT @@character_set_database", database=db) == [["utf8mb4"]]
    assert [h for u, h in sql(host, "SELECT User, Host FROM mysql.user") if u == user] == [CLIENT]
    grants = [row[0] for row in sql(host, f"SHOW GRANTS FOR '{user}'@'{CLIENT}'")]
    assert len(grants) == 2, grants
    assert grants[0].startswith(f"GRANT USAGE ON *.* TO `{user}`@`{CLIENT}`")
    escaped = db.replace("_", "\\\\_")
    assert grants[1] == (
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, "
        f"LOCK TABLES ON `{escaped}`.* TO `{user}`@`{CLIENT}`"
    )


# TLS verifying the server against the role's CA and the address the client dialled.
TLS = "--ssl --ssl-ca=/etc/mysql/tls/db-ca.crt --ssl-verify-server-cert"


def test_site_user_logs_in_over_tls_and_sees_only_its_database(host: Host) -> None:
    cmd = host.run(f"mariadb {TLS} -N -B -h 127.0.0.1 -u wp_portal -pmolecule-portal-pw -e 'SHOW DATABASES'")
    assert cmd.rc == 0, cmd.stderr
    assert set(cmd.stdout.split()) == {"information_schema", "wp_portal"}
    cipher = host.check_output(
        f"mariadb {TLS} -N -B -h 127.0.0.1 -u wp_portal -pmolecule-portal-pw -e \"SHOW STATUS LIKE 'Ssl_cipher'\""
    )
    assert cipher.split("\t")[1].strip(), cipher


def test_plaintext_tcp_is_refused(host: Host) -> None:
    cmd = host.run("mariadb --skip-ssl -h 127.0.0.1 -u wp_portal -pmolecule-portal-pw -e 'SELECT 1'")
    assert cmd.rc != 0
    assert variable(host, "require_secure_transport") == "1"
    assert sql(host, "SELECT DISTINCT ssl_type FROM mysql.user WHERE User LIKE 'wp\\_%'") == [["ANY"]]


def test_tls_key_is_private_and_old_protocols_are_off(host: Host) -> None:
    assert host.file("/etc/mysql/tls/server.key").mode == 0o640
    assert host.file("/etc/mysql/tls/server.key").group == "mysql"
    assert host.file("/etc/mysql/tls/ca/db-ca.key").mode == 0o600
    assert host.file("/etc/mysql/tls/ca").mode == 0o700
    assert variable(host, "tls_version") == "TLSv1.2,TLSv1.3"


def test_security_settings(host: Host) -> None:
    assert variable(host, "local_infile") == "0"
    assert sql(host, "SHOW GLOBAL VARIABLES LIKE 'have_symlink'") == [["have_symlink", "DISABLED"]]
    assert variable(host, "skip_name_resolve") == "1"


def test_slow_query_log_and_binlog(host: Host) -> None:
    assert variable(host, "slow_query_log") == "1"
    assert variable(host, "slow_query_log_file") == "/var/log/mysql/mariadb-slow.log"
    assert variable(host, "log_bin") == "1"
    assert variable(host, "binlog_format") == "ROW"
    assert host.file("/var/log/mysql/mariadb-bin.index").exists
