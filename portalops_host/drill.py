"""portalops-drill: restore the newest (or a chosen) backup on the drill host and verify it.

    portalops-drill restore [--snapshot HOST:JOB=ID ...] --result FILE
        physical database restore into this host's MariaDB, logical dump into a scratch
        server, files into a work directory; each checked against its snapshot's manifest
    portalops-drill verify-site --result FILE
        the site served here returns the newest published titles the manifest recorded
    portalops-drill install
        put restored directories (uploads) in place for the drill's own site
    portalops-drill clean
        stop the scratch server, remove restored data (the drill host holds no production data)

Reads /etc/portalops/drill.json; shares portalops_host's restic and manifest modules with
portalops-backup, so a manifest is computed by the same code at backup time and at restore time.
Exit codes: 0 every check passed, 1 a check failed, 2 bad input, 3 environment.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from portalops_host.database import (
    MANIFEST_MARK,
    database_manifest,
    mariadb,
    newest_titles_count,
    quote_ident,
)
from portalops_host.errors import JobError
from portalops_host.files import compare_files
from portalops_host.health import manifest_problems
from portalops_host.physical import move_back
from portalops_host.restic import explain, restic_argv, restic_env, run_restic
from portalops_host.snapshots import pick_snapshot
from portalops_host.streams import CHUNK, Deadline, stream_timeout

CONFIG = Path("/etc/portalops/drill.json")
SCRATCH_SOCKET = "/run/portalops-drill/scratch.sock"


class DrillError(Exception):
    """A step of the drill could not run; the message says which and why."""


def repo_config(config: dict[str, Any], host: str) -> dict[str, Any]:
    source = config["sources"].get(host)
    if source is None:
        raise DrillError(f"no repository configured for {host}")
    # Each client's repository has its own password (a client holds only its own); the drill reads them all.
    password_file = config.get("password_files", {}).get(host, config.get("password_file", ""))
    if not password_file:
        raise DrillError(f"no repository password configured for {host}")
    return {**config, "repository": source, "host": host, "password_file": password_file}


def restic(config: dict[str, Any], host: str, *args: str, timeout: float = 6 * 3600) -> str:
    # --no-lock: the drill account reads the repositories and writes nothing.
    return run_restic(repo_config(config, host), "--no-lock", *args, timeout=timeout).stdout


def choose_snapshot(config: dict[str, Any], host: str, job: str, wanted: str | None) -> dict[str, Any]:
    listed = json.loads(restic(config, host, "snapshots", "--json", "--tag", f"job:{job}", "--host", host) or "[]")
    try:
        return pick_snapshot(listed, job, wanted, config["sources"][host])
    except JobError as exc:
        raise DrillError(f"{host}: {exc}") from None


def systemctl(*args: str) -> None:
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0:
        raise DrillError(f"systemctl {' '.join(args)} failed: {result.stderr.strip()}")


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


class Drill:
    def __init__(self, config: dict[str, Any], chosen: dict[str, str]) -> None:
        self.config = config
        self.chosen = chosen
        self.work = Path(config.get("work_dir", "/var/lib/portalops-drill"))
        self.checks: list[dict[str, Any]] = []
        self.phases: dict[str, float] = {}
        self.snapshots: dict[str, Any] = {}
        self.bytes: dict[str, int] = {}
        self.scratch_server: subprocess.Popen[bytes] | None = None

    def check(self, name: str, problems: list[str], detail: str = "") -> None:
        self.checks.append({"name": name, "ok": not problems, "problems": problems[:50], "detail": detail})
        print(
            f"{'ok  ' if not problems else 'FAIL'} {name}{': ' + detail if detail and not problems else ''}", flush=True
        )
        for problem in problems[:10]:
            print(f"     {problem}", flush=True)

    def snapshot(self, host: str, job: str) -> dict[str, Any]:
        found = choose_snapshot(self.config, host, job, self.chosen.get(f"{host}:{job}"))
        self.snapshots[f"{host}:{job}"] = {"id": found["id"], "time": found["time"], "host": host, "job": job}
        return found

    def timed(self, phase: str, begin: float) -> None:
        self.phases[phase] = round(time.monotonic() - begin, 3)

    def physical(self) -> None:
        db = self.config["database"]
        begin = time.monotonic()
        snap = self.snapshot(db["host"], db["physical_job"])
        target = self.work / "physical"
        shutil.rmtree(target, ignore_errors=True)
        print(f"restore {db['host']}:{db['physical_job']} snapshot {snap['short_id']} (physical)", flush=True)
        restic(self.config, db["host"], "restore", snap["id"], "--target", str(target))
        prepared = target / snap["paths"][0].lstrip("/")
        self.bytes["physical"] = tree_bytes(prepared)
        manifest = json.loads((prepared / "portalops-manifest.json").read_text())
        datadir = Path(self.config.get("datadir", "/var/lib/mysql"))
        systemctl("stop", "mariadb")
        shutil.rmtree(datadir, ignore_errors=True)
        move_back(prepared, datadir)
        systemctl("start", "mariadb")
        self.timed("physical_restore", begin)
        self.manifest_check("database (physical backup)", manifest, socket=None)
        # The drill's site is served from this (physical) restore: its titles are the ones to expect.
        self.titles = {db: entry.get("newest_titles", []) for db, entry in manifest["databases"].items()}
        self.grant_local_users()

    def grant_local_users(self) -> None:
        """The restored grants name the CMS hosts; the drill's own WordPress connects locally."""
        for user in self.config.get("local_users", []):
            password = Path(user["password_file"]).read_text().strip().replace("\\", "\\\\").replace("'", "\\'")
            mariadb(
                f"CREATE OR REPLACE USER '{user['name']}'@'localhost' IDENTIFIED BY '{password}'; "
                f"GRANT ALL ON {quote_ident(user['database'])}.* TO '{user['name']}'@'localhost'"
            )

    def manifest_check(self, name: str, manifest: dict[str, Any], socket: str | None) -> None:
        databases = list(manifest["databases"])
        restored = database_manifest(databases, newest_titles_count(manifest), socket=socket)
        problems = manifest_problems(manifest, restored)
        tables = sum(len(d["tables"]) for d in manifest["databases"].values())
        rows = sum(t["rows"] for d in manifest["databases"].values() for t in d["tables"].values())
        if manifest.get("consistent", True):
            said = f"{tables} tables, {rows} rows match the manifest"
        else:
            said = f"{tables} tables there, none emptied (the site wrote during the backup: not held to a count)"
        self.check(name, problems, said)

    def logical(self) -> None:
        db = self.config["database"]
        begin = time.monotonic()
        snap = self.snapshot(db["host"], db["logical_job"])
        scratch = self.work / "scratch"
        stop_scratch(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        (scratch / "data").mkdir(parents=True)
        (scratch / "tmp").mkdir()
        # Not root's TMPDIR (pam_tmpdir makes it /tmp/user/0, which mysql cannot write).
        env = {**os.environ, "TMPDIR": str(scratch / "tmp")}
        Path(SCRATCH_SOCKET).parent.mkdir(parents=True, exist_ok=True)
        shutil.chown(Path(SCRATCH_SOCKET).parent, "mysql", "mysql")
        subprocess.run(["chown", "-R", "mysql:mysql", str(scratch)], check=True, timeout=600)
        install = subprocess.run(
            [
                "mariadb-install-db",
                "--user=mysql",
                f"--datadir={scratch / 'data'}",
                "--auth-root-authentication-method=socket",
            ],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=900,
        )
        if install.returncode != 0:
            raise DrillError(f"mariadb-install-db for the scratch server failed: {install.stderr.strip()[-300:]}")
        self.scratch_server = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                "--user=mysql",
                f"--datadir={scratch / 'data'}",
                f"--socket={SCRATCH_SOCKET}",
                f"--pid-file={scratch / 'mariadbd.pid'}",
                "--skip-networking",
                "--innodb-buffer-pool-size=256M",
                f"--log-error={scratch / 'error.log'}",
                f"--tmpdir={scratch / 'tmp'}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        for _ in range(120):
            if Path(SCRATCH_SOCKET).exists():
                break
            if self.scratch_server.poll() is not None:
                raise DrillError(f"scratch MariaDB did not start: see {scratch / 'error.log'}")
            time.sleep(0.5)
        print(
            f"restore {db['host']}:{db['logical_job']} snapshot {snap['short_id']} (logical, into a scratch server)",
            flush=True,
        )
        dump_name = snap["paths"][0].lstrip("/")
        tail, size = self.load_dump(db["host"], snap["id"], dump_name)
        self.bytes["logical"] = size
        self.timed("logical_restore", begin)
        marker = tail.rfind(MANIFEST_MARK.encode())
        if marker < 0:
            self.check("database (logical dump)", ["the dump carries no manifest line"])
            return
        manifest = json.loads(tail[marker + len(MANIFEST_MARK) :].decode())
        self.manifest_check("database (logical dump)", manifest, socket=SCRATCH_SOCKET)

    def load_dump(self, host: str, snapshot_id: str, dump_name: str) -> tuple[bytes, int]:
        """restic dump streamed into the scratch server; its last 4 MiB and size. Both ends' stderr go
        to files (a full pipe would stall them) and a deadline ends both, so a frozen SFTP session or
        a stuck load fails the drill instead of hanging it."""
        repo = repo_config(self.config, host)
        with (
            tempfile.TemporaryFile() as dump_err,
            tempfile.TemporaryFile() as load_err,
            Deadline(stream_timeout(self.config)) as deadline,
        ):
            dump = deadline.watch(
                subprocess.Popen(
                    restic_argv(repo, "--no-lock", "dump", snapshot_id, dump_name),
                    stdout=subprocess.PIPE,
                    stderr=dump_err,
                    env=restic_env(repo),
                )
            )
            load = deadline.watch(
                subprocess.Popen(
                    ["mariadb", f"--socket={SCRATCH_SOCKET}", "--default-character-set=utf8mb4"],
                    stdin=subprocess.PIPE,
                    stderr=load_err,
                )
            )
            if dump.stdout is None or load.stdin is None:
                raise DrillError("could not connect restic dump to mariadb")
            tail = b""
            size = 0
            broken = False
            try:
                for block in iter(lambda: dump.stdout.read(CHUNK), b""):  # type: ignore[union-attr]
                    load.stdin.write(block)
                    tail = (tail + block)[-(4 << 20) :]
                    size += len(block)
                load.stdin.close()
            except BrokenPipeError:
                broken = True  # mariadb stopped reading: its stderr says why
                dump.kill()
            dump_code, load_code = dump.wait(), load.wait()
            if deadline.expired:
                raise DrillError(f"restoring the dump did not finish within {deadline.seconds:.0f} s (timed out)")
            if dump_code != 0 and not broken:
                dump_err.seek(0)
                raise DrillError(explain(dump_err.read().decode(errors="replace"), repo["repository"]))
            if load_code != 0:
                load_err.seek(0)
                raise DrillError(f"loading the dump failed: {load_err.read().decode(errors='replace').strip()[-300:]}")
        return tail, size

    def files(self) -> None:
        for item in self.config.get("files", []):
            begin = time.monotonic()
            snap = self.snapshot(item["host"], item["job"])
            target = self.work / "files" / item["host"] / item["job"]
            shutil.rmtree(target, ignore_errors=True)
            print(f"restore {item['host']}:{item['job']} snapshot {snap['short_id']} (files)", flush=True)
            restic(self.config, item["host"], "restore", snap["id"], "--target", str(target))
            self.timed(f"files_restore:{item['host']}:{item['job']}", begin)
            self.bytes[f"files:{item['host']}:{item['job']}"] = tree_bytes(target)
            manifests = Path(self.config.get("manifest_dir", "/var/lib/portalops/backup/manifests"))
            manifest_path = target / manifests.relative_to("/") / f"{item['job']}.json"
            if not manifest_path.exists():
                self.check(
                    f"files {item['host']}:{item['job']}", [f"no manifest in the snapshot ({manifest_path.name})"]
                )
                continue
            manifest = json.loads(manifest_path.read_text())
            problems = compare_files(manifest, target)
            self.check(
                f"files {item['host']}:{item['job']}",
                problems,
                f"{manifest['count']} files, {manifest['bytes']} bytes match their sha256",
            )


def stop_scratch(scratch: Path) -> None:
    """Stop a scratch server an earlier, interrupted drill left running."""
    pid_file = scratch / "mariadbd.pid"
    if pid_file.exists():
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, 15)
            for _ in range(120):
                os.kill(pid, 0)
                time.sleep(0.5)
            os.kill(pid, 9)  # still there after a minute
        except (ValueError, ProcessLookupError):
            pass


def command_restore(config: dict[str, Any], chosen: dict[str, str], result_path: Path) -> int:
    drill = Drill(config, chosen)
    # Never leave an earlier drill's result where this one's is expected.
    result_path.unlink(missing_ok=True)
    # MariaDB (the scratch server) runs as mysql and must traverse the work directory.
    drill.work.mkdir(parents=True, exist_ok=True)
    drill.work.chmod(0o711)
    begin = time.time()
    error = ""
    try:
        drill.physical()
        drill.logical()
        drill.files()
    except Exception as exc:  # any failure, expected or not, is a failed drill with its reason recorded
        error = str(exc) if isinstance(exc, DrillError | JobError | OSError) else f"{type(exc).__name__}: {exc}"
        drill.check("restore", [error])
    finally:
        if drill.scratch_server is not None:
            drill.scratch_server.terminate()
            try:
                drill.scratch_server.wait(timeout=300)
            except subprocess.TimeoutExpired:
                drill.scratch_server.kill()
                drill.scratch_server.wait(timeout=60)
        stop_scratch(drill.work / "scratch")
    result = {
        "started_ts": begin,
        "finished_ts": time.time(),
        "snapshots": drill.snapshots,
        "checks": drill.checks,
        "phases_s": drill.phases,
        "bytes": drill.bytes,
        "titles": getattr(drill, "titles", {}),
        "error": error,
    }
    result_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0 if all(c["ok"] for c in drill.checks) else 1


def site_titles(url: str, host_header: str, count: int) -> list[str]:
    if not url.startswith("http://127.0.0.1:"):
        raise DrillError(f"the drill checks its own site on loopback only, not {url}")
    request = urllib.request.Request(  # noqa: S310 - http on loopback, checked above
        # rest_route: works with plain permalinks too (pretty /wp-json/ URLs redirect without them).
        f"{url}/?rest_route=/wp/v2/posts&per_page={count}&orderby=date&order=desc&_fields=title",
        headers={"Host": host_header, "X-Forwarded-Proto": "https"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - http on loopback
        posts = json.loads(response.read().decode())
    return [html.unescape(p["title"]["rendered"]) for p in posts]


def command_verify_site(config: dict[str, Any], result_path: Path) -> int:
    result = json.loads(result_path.read_text())
    checks = []
    for site in config.get("sites", []):
        expected = [html.unescape(t) for t in result.get("titles", {}).get(site["database"], [])]
        name = f"site {site['domain']} serves the newest published titles"
        try:
            served = site_titles(config.get("site_url", "http://127.0.0.1:8080"), site["domain"], len(expected) or 10)
            problems = (
                []
                if expected and set(served) == set(expected)
                else [f"served {served[:3]}..., manifest {expected[:3]}... ({len(served)} vs {len(expected)} titles)"]
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems = [f"could not read the site's posts: {type(exc).__name__}: {exc}"]
        ok = not problems
        print(f"{'ok  ' if ok else 'FAIL'} {name}", flush=True)
        checks.append({"name": name, "ok": ok, "problems": problems, "detail": f"{len(expected)} titles"})
    result["checks"] += checks
    result["site_verified_ts"] = time.time()
    result_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0 if all(c["ok"] for c in result["checks"]) else 1


def command_install(config: dict[str, Any]) -> int:
    """Put restored directories in place for the drill's own site (after the wordpress role made its users)."""
    work = Path(config.get("work_dir", "/var/lib/portalops-drill"))
    for item in config.get("files", []):
        target = work / "files" / item["host"] / item["job"]
        for install in item.get("install", []):
            source = target / install["path"].lstrip("/")
            destination = Path(install["path"])
            if not source.is_dir():
                print(
                    f"portalops-drill: {install['path']} is not in the restored {item['host']}:{item['job']}",
                    file=sys.stderr,
                )
                return 1
            shutil.rmtree(destination, ignore_errors=True)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source, destination, symlinks=True)
            subprocess.run(
                ["chown", "-R", f"{install['owner']}:{install['group']}", str(destination)], check=True, timeout=600
            )
            print(f"installed {install['path']} from {item['host']}:{item['job']}", flush=True)
    return 0


def command_clean(config: dict[str, Any]) -> int:
    work = Path(config.get("work_dir", "/var/lib/portalops-drill"))
    stop_scratch(work / "scratch")
    shutil.rmtree(work, ignore_errors=True)
    for item in config.get("files", []):
        for install in item.get("install", []):
            shutil.rmtree(install["path"], ignore_errors=True)
    # The restored database is a copy of production's: it does not stay on the drill host.
    datadir = Path(config.get("datadir", "/var/lib/mysql"))
    systemctl("stop", "mariadb")
    shutil.rmtree(datadir, ignore_errors=True)
    print(f"cleaned {work}, the restored files and the restored database ({datadir})", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portalops-drill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(CONFIG))
    sub = parser.add_subparsers(dest="command", required=True)
    restore = sub.add_parser("restore")
    restore.add_argument("--snapshot", action="append", default=[], help="HOST:JOB=SNAPSHOT_ID (default: newest)")
    restore.add_argument("--result", required=True)
    verify = sub.add_parser("verify-site")
    verify.add_argument("--result", required=True)
    sub.add_parser("install")
    sub.add_parser("clean")
    args = parser.parse_args(argv)
    try:
        config = json.loads(Path(args.config).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"portalops-drill: cannot read {args.config}: {exc}", file=sys.stderr)
        return 2
    if args.command == "clean":
        return command_clean(config)
    if args.command == "install":
        return command_install(config)
    if args.command == "verify-site":
        return command_verify_site(config, Path(args.result))
    chosen = {}
    for item in args.snapshot:
        key, _, value = item.partition("=")
        if not value or ":" not in key:
            print(f"portalops-drill: --snapshot wants HOST:JOB=ID, got {item!r}", file=sys.stderr)
            return 2
        chosen[key] = value
    return command_restore(config, chosen, Path(args.result))
