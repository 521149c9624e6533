#!/usr/bin/env python3
"""`make bench-inspect`: `portalops inspect` on the lab's portal site against a plain LinkChecker run.

In one run on the converged lab, twice: on the seeded portal, and with 1,000 generated pages more (WordPress
pages, linked from one new post on the home page, each holding the seed's paragraphs; created on cms1
through WordPress' own functions and deleted afterwards, whatever happened). Each time both tools read
the same site from the controller, through the public edge (127.0.0.1:8443), to the same depth:

- ours: `portalops inspect --site portal --depth 2`, with request and time budgets that never stop it
  here (the rendered inventory, the REST reads of every post and page for the content checks, the
  7-day figure from Prometheus, the crawl around the edge cache);
- LinkChecker (Debian's `linkchecker`, 10 threads), `-r 2` from the home page, internal links only (its
  default), with the paths ours never requests ignored (login, admin, xmlrpc, cron); the site's domain
  reaches the edge through a CONNECT proxy in this script (the lab has no DNS for it), TLS verified
  against the lab CA.

Requests are counted where both arrive, in web1's access log (by user agent). Printed: seconds and
requests of each, their ratios (ours / LinkChecker alone), and the same for the 1,000 pages (the
difference of the two runs). No pass/fail on time: the numbers go to the README.
"""

from __future__ import annotations

import json
import os
import select
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from portalops.inventory import load_inventory
from portalops.lab.config import lab_config
from portalops.lab.podman import Podman
from portalops.lab.wordpress import run_php
from portalops.probe import PROBE_VARS, targets_from_vars
from portalops.resolve import resolve_vars
from portalops.vault import LAB_INVENTORY, ansible_env

REPO = Path(__file__).resolve().parent.parent
ENV = {
    **ansible_env(LAB_INVENTORY),
    "CONTAINERS_CONF": str(REPO / "lab" / "containers.conf"),
    "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
}
LAB = lab_config(load_inventory())
SITE = "portal"
PAGES = 1000
ACCESS_LOG = "/var/log/nginx/access.log"  # web1's edge (nginx_portal_access_log)
OURS_AGENT = "portalops-inspect"
LINKCHECKER_AGENT = "LinkChecker"
IGNORED = r"/(wp-admin/|wp-login\.php|xmlrpc\.php|wp-cron\.php)"  # portalops.inspect.site.SKIP_PATHS
# Generated content, marked by a post meta key; run in WordPress as the site's user (portalops.lab.wordpress).
PHP = r"""
[$command, $count] = $args;
$meta = '_portalops_bench_inspect';
if ($command === 'delete') {
    $ids = get_posts(['post_type' => ['post', 'page'], 'post_status' => 'any', 'meta_key' => $meta,
                      'numberposts' => -1, 'fields' => 'ids']);
    foreach ($ids as $id) { wp_delete_post($id, true); }
    echo json_encode(['deleted' => count($ids)]), "\n";
    exit(0);
}
$admin = (int) get_users(['role' => 'administrator', 'number' => 1, 'fields' => 'ID'])[0];
$text = '<p>' . str_repeat('各单位要结合实际认真梳理本地区本部门工作情况并按时报送县人民政府办公室。', 8) . '</p>';
$links = [];
for ($i = 1; $i <= (int) $count; $i++) {
    $id = wp_insert_post(['post_type' => 'page', 'post_status' => 'publish', 'post_author' => $admin,
                          'post_title' => "portalops bench page $i", 'post_content' => $text,
                          'meta_input' => [$meta => '1']], true);
    if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message() . "\n"); exit(2); }
    $links[] = '<li><a href="' . esc_url(get_permalink($id)) . '">page ' . $i . '</a></li>';
}
$index = wp_insert_post(['post_type' => 'post', 'post_status' => 'publish', 'post_author' => $admin,
                         'post_title' => "portalops bench: $count pages", 'meta_input' => [$meta => '1'],
                         'post_content' => '<ul>' . implode('', $links) . '</ul>'], true);
if (is_wp_error($index)) { fwrite(STDERR, $index->get_error_message() . "\n"); exit(2); }
echo json_encode(['pages' => count($links), 'index' => $index]), "\n";
"""


def wordpress(command: str, domain: str, count: int = 0) -> dict[str, int]:
    found: dict[str, int] = run_php(LAB.container(LAB.host("cms1")), SITE, domain, PHP, command, str(count))
    return found


def requests_at_edge(agent: str) -> int:
    """Lines of web1's access log from this user agent (set-up and counting, not timed)."""
    line = f"grep -cF -- '{agent}' {ACCESS_LOG} || true"
    return int(Podman().exec(LAB.container(LAB.host("web1")), "/bin/sh", "-c", line).stdout.strip() or 0)


class Tunnel(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A CONNECT proxy sending the site's domains to the edge; anything else is refused (nothing leaves)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, edge: tuple[str, int], domains: set[str]) -> None:
        self.edge, self.domains = edge, domains
        super().__init__(("127.0.0.1", 0), TunnelHandler)


class TunnelHandler(socketserver.StreamRequestHandler):
    server: Tunnel

    def handle(self) -> None:
        request = self.rfile.readline(8192).decode("latin-1").split()
        while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
            pass
        host = request[1].rsplit(":", 1)[0].lower() if len(request) > 1 else ""
        if len(request) < 2 or request[0] != "CONNECT" or host not in self.server.domains:
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        with socket.create_connection(self.server.edge, timeout=30) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            ends = [self.connection, upstream]
            try:
                while True:
                    ready, _, _ = select.select(ends, [], [], 60)
                    if not ready:
                        return
                    for end in ready:
                        data = end.recv(65536)
                        if not data:
                            return
                        (upstream if end is self.connection else self.connection).sendall(data)
            except OSError:  # either side closed the connection: the tunnel is over
                return


def run_ours() -> tuple[float, dict[str, Any]]:
    argv = [sys.executable, "-m", "portalops.cli", "inspect", "--site", SITE, "--json", "--depth", "2"]
    argv += ["--max-requests", "100000", "--time-budget", "3600", "--out", tempfile.mkdtemp(prefix="bench-inspect-")]
    started = time.monotonic()
    result = subprocess.run(argv, env=ENV, cwd=REPO, capture_output=True, text=True, check=False, timeout=7200)
    seconds = time.monotonic() - started
    if not result.stdout.strip():
        sys.exit(
            f"bench-inspect: portalops inspect printed nothing (exit {result.returncode}): {result.stderr[-2000:]}"
        )
    [site] = json.loads(result.stdout)["sites"]
    stats: dict[str, Any] = site["stats"]
    return seconds, stats


def run_linkchecker(url: str, proxy: str, cafile: str, config: Path) -> tuple[float, str]:
    config.write_text(f"[checking]\nsslverify={cafile}\nthreads=10\n")
    argv = ["linkchecker", "-f", str(config), "-r", "2", "--no-status", "--no-warnings", "--ignore-url", IGNORED, url]
    env = {**ENV, "https_proxy": proxy, "http_proxy": proxy, "no_proxy": ""}
    started = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=7200)
    seconds = time.monotonic() - started
    if result.returncode not in (0, 1):  # 1: it found broken links, which is a result
        sys.exit(f"bench-inspect: linkchecker failed (exit {result.returncode}): {result.stderr[-2000:]}")
    summary = [line for line in result.stdout.splitlines() if "URLs checked" in line]
    return seconds, summary[-1].strip() if summary else "no summary"


def measure(url: str, proxy: str, cafile: str, config: Path) -> dict[str, float]:
    before = requests_at_edge(OURS_AGENT)
    ours_s, stats = run_ours()
    ours_requests = requests_at_edge(OURS_AGENT) - before
    before = requests_at_edge(LINKCHECKER_AGENT)
    lc_s, said = run_linkchecker(url, proxy, cafile, config)
    lc_requests = requests_at_edge(LINKCHECKER_AGENT) - before
    print(
        f"  ours {ours_s:.1f} s, {ours_requests} requests at the edge ({stats['posts']} posts, {stats['pages']} pages"
        f" read, {stats['pages_crawled']} crawled, {stats['links_checked']} links checked);"
        f" linkchecker {lc_s:.1f} s, {lc_requests} requests ({said})",
        flush=True,
    )
    return {"ours_s": ours_s, "ours_requests": ours_requests, "lc_s": lc_s, "lc_requests": lc_requests}


def row(name: str, m: dict[str, float]) -> str:
    return (
        f"{name:<28} {m['ours_s']:>8.1f} {m['lc_s']:>8.1f} {m['ours_s'] / m['lc_s']:>6.2f}"
        f" {m['ours_requests']:>9.0f} {m['lc_requests']:>9.0f} {m['ours_requests'] / max(m['lc_requests'], 1):>6.2f}"
    )


def main() -> int:
    hostvars = resolve_vars(LAB_INVENTORY, ["all"], PROBE_VARS, exact=False)
    public, targets, _, cafiles = targets_from_vars(hostvars)
    site = next(t for t in targets if t.site == SITE)
    domains = {
        str(d).lower()
        for v in hostvars.values()
        for s in v.get("sites") or []
        if s["name"] == SITE
        for d in s["domains"]
    }
    edge = public.split("://", 1)[1].rstrip("/").rsplit(":", 1)
    tunnel = Tunnel((edge[0], int(edge[1]) if len(edge) > 1 else 443), domains)
    threading.Thread(target=tunnel.serve_forever, daemon=True).start()
    proxy = f"http://127.0.0.1:{tunnel.server_address[1]}"
    url = f"https://{site.domain}/"
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp).chmod(0o755)  # linkchecker run as root drops to nobody, who reads its configuration and CA here
        cafile = Path(tmp) / "ca.pem"
        cafile.write_text("".join(Path(c).read_text() for c in cafiles))
        config = Path(tmp) / "linkcheckerrc"
        wordpress("delete", site.domain)  # whatever an earlier run left
        print(f"bench-inspect: the seeded portal ({url})", flush=True)
        seeded = measure(url, proxy, str(cafile), config)
        try:
            made = wordpress("create", site.domain, PAGES)
            print(f"bench-inspect: {made['pages']} pages generated, linked from post {made['index']}", flush=True)
            more = measure(url, proxy, str(cafile), config)
        finally:
            print(f"bench-inspect: {wordpress('delete', site.domain)['deleted']} generated posts and pages deleted")
            tunnel.shutdown()
    per = {k: more[k] - seeded[k] for k in seeded}
    header = f"{'ours s':>8} {'lc s':>8} {'ratio':>6} {'ours req':>9} {'lc req':>9} {'ratio':>6}"
    print(f"\n{'site ' + site.domain:<28} {header}")
    print(row("seeded portal", seeded))
    print(row(f"seeded + {PAGES} pages", more))
    print(row(f"per {PAGES} pages", per))
    print(
        "\nours: portalops inspect --depth 2 (REST reads of every post and page + content checks, Prometheus,"
        " the crawl around the edge cache, one connection);\nlinkchecker: linkchecker -r 2, 10 threads, internal"
        " links, through the edge cache; requests counted in web1's access log.\nratio: ours / linkchecker alone,"
        " measured in the same run."
    )
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
