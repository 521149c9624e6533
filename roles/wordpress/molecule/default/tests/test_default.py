"""What mariadb and wordpress leave on one host, observed from inside it."""

import pytest
from testinfra.backend.base import CommandResult
from testinfra.host import Host

# Talk to the container directly: one podman exec per check, not one Ansible run.
testinfra_hosts = ["podman://wordpress"]

# (site, its first domain, its database), as in molecule.yml.
SITES = [
    ("portal", "portal.lab.test", "wp_portal"),
    ("news", "news.lab.test", "wp_news"),
]
# The php-fpm service, and its processes' name.
FPM = "php8.2-fpm"
FPM_PROCESS = "php-fpm8.2"


def get(host: Host, domain: str, path: str = "/", options: str = "") -> CommandResult:
    """GET a page from the local nginx as the web tier would ask for it."""
    return host.run(f"curl -s {options} -H 'Host: {domain}' http://127.0.0.1:8080{path}")


def sql(host: Host, database: str, query: str) -> list[str]:
    """Run a query on a site's database as root through the socket; one string per row."""
    out: str = host.check_output(f'mariadb --default-character-set=utf8mb4 -N -B -e "{query}" {database}')
    return out.splitlines()


def blogname(host: Host, database: str) -> str:
    return sql(host, database, "SELECT option_value FROM wp_options WHERE option_name = 'blogname'")[0]


def test_services_run_and_are_enabled(host: Host) -> None:
    for name in ("mariadb", FPM, "nginx"):
        assert host.service(name).is_running, name
        assert host.service(name).is_enabled, name


def test_nginx_listens_on_the_cms_port_of_the_given_address_only(host: Host) -> None:
    assert host.socket("tcp://127.0.0.1:8080").is_listening
    assert host.socket("tcp://127.0.0.2:8080").is_listening
    assert not host.socket("tcp://0.0.0.0:8080").is_listening
    # Debian's default site is disabled.
    assert not host.socket("tcp://0.0.0.0:80").is_listening


@pytest.mark.parametrize("site,domain,db", SITES)
def test_site_pool_runs_as_its_own_user(host: Host, site: str, domain: str, db: str) -> None:
    assert host.file(f"/run/php/wordpress-{site}.sock").user == "www-data"
    assert host.file(f"/run/php/wordpress-{site}.sock").mode == 0o660
    # pm = ondemand: a request starts a worker.
    assert get(host, domain).rc == 0
    processes = [line.split() for line in host.check_output(f"ps -o user:20= -o args= -C {FPM_PROCESS}").splitlines()]
    users = {p[0] for p in processes if p[-2:] == ["pool", f"wordpress-{site}"]}
    assert users == {f"wp-{site}"}
    # Debian's www pool is gone.
    assert not host.file("/etc/php/8.2/fpm/pool.d/www.conf").exists


@pytest.mark.parametrize("site,domain,db", SITES)
def test_site_answers_with_its_seeded_posts(host: Host, site: str, domain: str, db: str) -> None:
    published = "FROM wp_posts WHERE post_type = 'post' AND post_status = 'publish'"
    assert sql(host, db, "SELECT COUNT(*) " + published) == ["36"]
    newest = sql(host, db, "SELECT post_title " + published + " ORDER BY post_date DESC LIMIT 2")
    page = get(host, domain, options="-w '\\n%{http_code}'")
    assert page.stdout.endswith("\n200"), page.stdout[-300:]
    assert blogname(host, db) in page.stdout
    for title in newest:
        assert title in page.stdout, title


@pytest.mark.parametrize("site,domain,db", SITES)
def test_seed_adds_a_blank_category_a_page_of_links_and_a_post_scheduled_ahead(
    host: Host, site: str, domain: str, db: str
) -> None:
    blank = "FROM wp_terms t JOIN wp_term_taxonomy tt USING (term_id) WHERE t.slug = 'special-topics'"
    assert sql(host, db, "SELECT tt.taxonomy, tt.count " + blank) == ["category\t0"]
    pages = "FROM wp_posts WHERE post_type = 'page' AND post_status = 'publish'"
    [content] = sql(host, db, "SELECT post_content " + pages)  # batch mode: one line, newlines escaped
    assert '<a href="/?page_id=999999999">' in content and '<a href="https://zwfw.county.invalid/">' in content
    ahead = "FROM wp_posts WHERE post_status = 'future' AND post_date_gmt > UTC_TIMESTAMP()"
    assert sql(host, db, "SELECT COUNT(*) " + ahead) == ["1"]


def test_first_site_answers_its_aliases_and_unknown_hosts_are_dropped(host: Host) -> None:
    portal = blogname(host, "wp_portal")
    assert portal in get(host, "www.portal.lab.test").stdout
    assert portal in get(host, "localhost").stdout
    # 444: nginx closes the connection, curl sees an empty reply.
    assert get(host, "unknown.test").rc == 52


@pytest.mark.parametrize("site,domain,db", SITES)
def test_seed_image_is_uploaded_by_the_site(host: Host, site: str, domain: str, db: str) -> None:
    images = host.check_output(f"find /var/lib/wordpress/sites/{site}/wp-content/uploads -name 'county-portal*.png'")
    assert images
    for image in images.split():
        assert host.file(image).user == f"wp-{site}"
    path = images.split()[0].split("/wp-content/", 1)[1]
    assert get(host, domain, f"/wp-content/{path}", "-o /dev/null -w '%{http_code}'").stdout == "200"


def test_sites_reach_the_database_over_verified_tls(host: Host) -> None:
    config = host.file("/etc/wordpress/config-portal.lab.test.php").content_string
    assert "define('MYSQL_CLIENT_FLAGS', MYSQLI_CLIENT_SSL | MYSQLI_CLIENT_SSL_VERIFY_SERVER_CERT);" in config
    # The role's CA is in the system trust store; plaintext TCP is refused, so the pages above came over TLS.
    assert host.file("/etc/ssl/certs/portalops-db-ca.pem").is_symlink
    assert sql(host, "wp_portal", "SELECT @@require_secure_transport") == ["1"]


def test_wp_configs_are_readable_by_their_site_only(host: Host) -> None:
    configs = host.check_output("ls /etc/wordpress/config-*.php").split()
    assert len(configs) == 5  # portal's two domains and two aliases, news's one
    for config in configs:
        site = "news" if "news" in config else "portal"
        f = host.file(config)
        assert (f.user, f.group, f.mode) == ("root", f"wp-{site}", 0o640), config
    assert host.run("sudo -u wp-portal cat /etc/wordpress/config-news.lab.test.php").rc != 0
    assert host.run("sudo -u wp-news cat /etc/wordpress/config-portal.lab.test.php").rc != 0


@pytest.mark.parametrize("site,domain,db", SITES)
def test_code_is_read_only_and_uploads_writable_to_the_site(host: Host, site: str, domain: str, db: str) -> None:
    root = f"/var/lib/wordpress/sites/{site}"
    for path in (
        "/usr/share/wordpress",
        "/usr/share/wordpress/index.php",
        "/usr/share/wordpress/wp-includes",
        f"{root}/wp-content",
        f"{root}/wp-content/themes/",
        f"{root}/wp-content/plugins/",
    ):
        assert host.run(f"sudo -u wp-{site} test -w {path}").rc != 0, path
    for writable in ("wp-content/uploads", "tmp"):
        assert host.run(f"sudo -u wp-{site} test -w {root}/{writable}").rc == 0, writable


def test_php_does_not_expose_itself(host: Host) -> None:
    headers = get(host, "portal.lab.test", options="-D - -o /dev/null").stdout.lower()
    assert "200 ok" in headers
    assert "x-powered-by" not in headers
    assert "server: nginx\r\n" in headers
    ini = host.file("/etc/php/8.2/fpm/conf.d/90-portalops.ini")
    assert ini.contains("^expose_php = Off$")


def test_wp_config_and_readme_are_not_served(host: Host) -> None:
    code = "-o /dev/null -w '%{http_code}'"
    assert get(host, "portal.lab.test", "/wp-config.php", code).stdout == "403"
    assert get(host, "portal.lab.test", "/readme.html", code).stdout == "404"


@pytest.mark.parametrize("site,domain,db", SITES)
def test_cron_timer_is_active(host: Host, site: str, domain: str, db: str) -> None:
    timer = host.service(f"portalops-wp-cron-{site}.timer")
    assert timer.is_enabled
    assert timer.is_running


# The CMS's own CA, and the name the web tier verifies (molecule.yml's portal_cms_tls_name).
CMS_CA = "/etc/ssl/portalops-cms/ca/cms-ca.crt"
CMS_NAME = "cms.portal.internal"


@pytest.mark.parametrize("site,domain,db", SITES)
def test_the_private_address_serves_tls_verified_by_the_cms_ca(host: Host, site: str, domain: str, db: str) -> None:
    for name in (CMS_NAME, "127.0.0.2"):
        cmd = host.run(
            f"curl -sS --cacert {CMS_CA} --resolve {CMS_NAME}:8080:127.0.0.2 -H 'Host: {domain}' "
            f"-o /dev/null -w '%{{http_code}}' https://{name}:8080/"
        )
        assert cmd.stdout == "200", (name, cmd.stderr)


def test_plain_http_to_the_tls_address_gets_no_page(host: Host) -> None:
    cmd = host.run("curl -s -w '\\n%{http_code}' -H 'Host: portal.lab.test' http://127.0.0.2:8080/")
    body, _, status = cmd.stdout.rpartition("\n")
    assert status == "400"
    assert "plain HTTP request was sent to HTTPS port" in body


def test_a_foreign_ca_does_not_verify_the_cms(host: Host) -> None:
    cmd = host.run(
        f"curl -sS --cacert /etc/ssl/certs/ISRG_Root_X1.pem --resolve {CMS_NAME}:8080:127.0.0.2 "
        f"-H 'Host: portal.lab.test' https://{CMS_NAME}:8080/"
    )
    assert cmd.rc == 60, cmd.stderr


def test_the_tls_keys_are_root_only(host: Host) -> None:
    for key in ("/etc/ssl/portalops-cms/cms.key", "/etc/ssl/portalops-cms/ca/cms-ca.key"):
        assert host.file(key).mode == 0o600, key
        assert host.file(key).user == "root", key
