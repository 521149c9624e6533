#!/usr/bin/env python3
"""`make bench-backup`: the shipped backup wrapper (portalops-backup, portalops_host) on a portal-sized
dataset, and the restores a drill does, measured in one run against baselines of the same run.

Self-contained: one throwaway systemd container from the lab image (not the lab, which may be
in use) gets restic, MariaDB and a local repository, about 1 GiB of uploads and a 200,000-row
wp_posts table. Measured there: the full, no-change and 1 %-change backups of the uploads
against `tar | zstd` and `cp -a`; the file restore against `cp -a`; the physical database
restore (restic restore, mariadb-backup --move-back, start) against the logical one (restic
dump | mariadb), each read with `--no-lock` as the restore drill reads (its account cannot
lock). Every copy, archive and restore is written to the same disk-backed directory
and flushed (`sync -f`) inside its timing, since the container's /tmp is a tmpfs.

Each measure is clocked inside the container (the ~0.13 s of `podman exec` is the harness, not
the work) and reports the CPU seconds (user + system) of the commands it ran beside the wall
time, which shows when a measure is bound by the machine's CPUs. The restores and their
baselines run REPEATS times each (the state reset between runs, off the clock) and the median
counts; the backups change the repository, so each runs once. The container is removed at the
end, also on failure or Ctrl-C. A missed target is printed, not an error; a step that fails
ends the run with one line on stderr.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from portalops_host.files import compare_files

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "lab" / "containers.conf")}
IMAGE = "localhost/portalops-lab:bookworm"
NAME = "portalops-bench-backup"
LABEL = "portalops.bench=1"
WRAPPER = REPO / "roles" / "restic_backup" / "files" / "portalops_backup.py"
PACKAGE = REPO / "portalops_host"
PACKAGES = ["restic", "mariadb-server", "mariadb-backup", "zstd"]
UPLOADS = "/srv/uploads"
OUT = "/srv/bench"  # on the container's overlay (disk), unlike /tmp
STATUS = "/var/lib/portalops/backup"
HOST = "bench"
DATABASE = "wordpress"
ROWS = 200_000
RESTIC = "RESTIC_REPOSITORY=/srv/repo RESTIC_PASSWORD_FILE=/etc/portalops/restic.pass restic"
# Restores read as the restore drill reads: without a lock (its account cannot write one).
READ = f"{RESTIC} --no-lock"
MIB = 1 << 20
REPEATS = 3  # runs of each restore and baseline; the median counts
# Wraps a measured script: the wall clock read inside the container, then bash's `times`
# (its second line: the user and system CPU time of the commands the script waited for).
CLOCK = 'started=$(date +%s%N)\n{{\n{script}\n}}\nended=$(date +%s%N)\necho "{marker} $started $ended"; times\n'
MARKER = "portalops-bench-clock"

CONFIG = {
    "host": HOST,
    "repository": "/srv/repo",
    "password_file": "/etc/portalops/restic.pass",
    "cache_dir": "/var/cache/portalops-restic",
    "status_dir": STATUS,
    "metrics_dir": "/var/lib/prometheus/node-exporter",
    "log_file": "/var/log/portalops/backup.log",
    "staging_dir": "/var/backups/portalops",
    "check_subsets": 4,
    "keep": {"daily": 7, "weekly": 5, "monthly": 12},
    "jobs": [
        {"name": "uploads", "type": "files", "paths": [UPLOADS], "newest_titles": 10},
        {"name": "db-dump", "type": "mariadb-dump", "databases": [DATABASE], "newest_titles": 10},
        {"name": "db-physical", "type": "mariadb-backup", "databases": [DATABASE], "newest_titles": 10},
    ],
}

# The uploads, written on the controller in a staging directory and copied into the container with tar:
# `create` writes them, `change` rewrites and adds about 1 % of their bytes. Seeded, so every run measures
# the same data (the same bytes as when the container's python3 generated them).
WORDS = (
    "county", "board", "meeting", "agenda", "minutes", "permit", "road", "closure", "notice", "budget", "hearing",
    "zoning", "library", "hours", "election", "polling", "place", "recycling", "schedule", "park", "district",
    "sheriff", "office", "public", "works", "water", "main", "repair", "tax", "assessment", "property", "records",
    "court", "calendar",
)  # fmt: skip
KIB = 1 << 10


class Uploads:
    """The uploads' generator over the staging directory ``root`` (the container's :data:`UPLOADS`)."""

    def __init__(self, root: Path, mode: str) -> None:
        self.root = root
        self.rng = random.Random(20240601 if mode == "create" else 20250101)  # noqa: S311 - data, not secrets
        # Each word drawn by a fresh Random(7), so the corpus is one word repeated, as the benchmark's
        # data has always been (its text files compress as they did).
        self.corpus = " ".join(random.Random(7).choice(WORDS) for _ in range(600000)).encode()  # noqa: S311
        self.written: list[str] = []  # paths relative to root, in the order written

    def body(self, size: int, text: bool) -> bytes:
        if not text:
            return self.rng.randbytes(size)
        start = self.rng.randrange(len(self.corpus) - size) if size < len(self.corpus) else 0
        return (self.corpus * (1 + size // len(self.corpus)))[start : start + size]

    def write(self, path: str, size: int, text: bool) -> int:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(self.body(size, text))
        self.written.append(os.path.relpath(path, self.root))
        return size

    def month(self, i: int) -> str:
        return f"{self.root}/{2019 + i % 6}/{1 + (i // 6) % 12:02d}"

    def create(self) -> str:
        total = 0
        for i in range(4000):
            text = i % 4 == 0
            name = f"{self.month(i)}/{'notice' if text else 'photo'}-{i:05d}.{'html' if text else 'jpg'}"
            total += self.write(name, self.rng.randint(10 * KIB, 100 * KIB), text)
        for i in range(100):
            text = i % 3 == 0
            name = f"{self.month(i)}/{'records' if text else 'document'}-{i:03d}.{'csv' if text else 'pdf'}"
            total += self.write(name, self.rng.randint(1 * MIB, 5 * MIB), text)
        for i in range(10):
            total += self.write(f"{self.month(i)}/video-{i:02d}.mp4", 50 * MIB, False)
        return f"{total} bytes in 4110 files"

    def change(self) -> str:
        files = sorted(os.path.join(d, f) for d, _, names in os.walk(self.root) for f in names)
        budget = sum(os.path.getsize(f) for f in files) // 100
        small = [f for f in files if os.path.getsize(f) < MIB]
        changed = added = 0
        for path in self.rng.sample(small, len(small)):
            if changed >= budget // 2:
                break
            changed += self.write(path, os.path.getsize(path), path.endswith(".html"))
        i = 0
        while changed + added < budget:
            added += self.write(f"{self.root}/2025/01/new-{i:04d}.jpg", self.rng.randint(10 * KIB, 100 * KIB), False)
            i += 1
        return f"{changed + added} bytes: {changed} rewritten, {added} in {i} new files"


# A WordPress-shaped wp_posts (the wrapper's manifest reads post_title, post_type, post_status,
# post_date of any *_posts table), filled from the Sequence engine in one statement.
CREATE_DATABASE = """
CREATE DATABASE wordpress CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE wordpress;
CREATE TABLE wp_posts (
  ID bigint unsigned NOT NULL AUTO_INCREMENT,
  post_author bigint unsigned NOT NULL DEFAULT 0,
  post_date datetime NOT NULL,
  post_date_gmt datetime NOT NULL,
  post_content longtext NOT NULL,
  post_title text NOT NULL,
  post_excerpt text NOT NULL,
  post_status varchar(20) NOT NULL DEFAULT 'publish',
  comment_status varchar(20) NOT NULL DEFAULT 'open',
  post_name varchar(200) NOT NULL DEFAULT '',
  post_modified datetime NOT NULL,
  post_modified_gmt datetime NOT NULL,
  post_parent bigint unsigned NOT NULL DEFAULT 0,
  guid varchar(255) NOT NULL DEFAULT '',
  post_type varchar(20) NOT NULL DEFAULT 'post',
  comment_count bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (ID),
  KEY post_name (post_name(191)),
  KEY type_status_date (post_type, post_status, post_date, ID),
  KEY post_parent (post_parent),
  KEY post_author (post_author)
) ENGINE=InnoDB;
INSERT INTO wp_posts (ID, post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt,
                      post_status, post_name, post_modified, post_modified_gmt, guid, post_type)
SELECT seq, 1 + seq % 7, d, d - INTERVAL 1 HOUR,
       CONCAT('<!-- wp:paragraph --><p>',
              ELT(1 + seq % 5, 'The county board met in regular session and approved the consent agenda.',
                  'Road work on County Highway 12 continues; expect lane closures during the day.',
                  'The public library extends its summer hours for students and families.',
                  'Property tax statements have been mailed; the first half is due in May.',
                  'The recycling collection schedule changes for the holiday week.'),
              ' Reference ', SHA2(seq, 256), '. ',
              ELT(1 + seq % 3, 'Questions may be directed to the county administrator at the courthouse.',
                  'Minutes and recordings are available on the county website after approval.',
                  'Residents can sign up for notifications on the alerts page of this portal.'),
              '</p><!-- /wp:paragraph -->'),
       CONCAT(ELT(1 + seq % 6, 'Board meeting', 'Road closure', 'Library hours', 'Tax notice', 'Recycling update',
                  'Public hearing'), ' #', seq),
       '', IF(seq % 10 = 0, 'draft', 'publish'), CONCAT('post-', seq), d, d - INTERVAL 1 HOUR,
       CONCAT('https://portal.example.gov/?p=', seq), IF(seq % 20 = 0, 'page', 'post')
FROM (SELECT seq, TIMESTAMP '2016-01-01 08:00:00' + INTERVAL seq * 17 MINUTE AS d FROM seq_1_to_200000) AS s;
"""


class BenchError(Exception):
    """A step of the benchmark failed; the message says which in one line."""


@dataclass(frozen=True)
class Row:
    name: str
    seconds: float  # the median of the runs
    size: int  # bytes the measure covers (the dataset, the dump, the prepared physical backup)
    cpu: float = 0.0  # user + system CPU seconds of the run the median names
    runs: tuple[float, ...] = ()


@dataclass(frozen=True)
class Clocked:
    seconds: float
    cpu: float
    output: str


STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.0f} s] {message}", flush=True)


def podman(*args: str, stdin: str | None = None, timeout: float = 3600, what: str = "") -> str:
    try:
        result = subprocess.run(
            ["podman", *args], env=ENV, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise BenchError("podman is not installed (run `make setup`)") from None
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what or 'podman ' + args[0]} did not finish in {timeout:.0f} s") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).strip().splitlines() if line.strip()]
        raise BenchError(f"{what or 'podman ' + args[0]} failed: {lines[-1] if lines else 'no output'}")
    return result.stdout


def inside(script: str, stdin: str | None = None, what: str = "", timeout: float = 3600) -> str:
    """A bash script in the bench container (pipefail: a failed `restic dump` fails its pipe)."""
    interactive = ["--interactive"] if stdin is not None else []
    return podman(
        "exec", *interactive, NAME, "bash", "-euo", "pipefail", "-c", script, stdin=stdin, what=what, timeout=timeout
    )


def parse_clock(output: str) -> Clocked:
    """The wall and CPU seconds CLOCK printed after the script's own output."""
    lines = output.rstrip("\n").splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith(MARKER + " ")]
    if not marks or len(lines) < marks[-1] + 3:
        raise BenchError(f"the measure printed no clock: {output[-200:]!r}")
    mark = marks[-1]
    _, started, ended = lines[mark].split()
    children = re.findall(r"(\d+)m([\d.]+)s", lines[mark + 2])
    if len(children) != 2:
        raise BenchError(f"bash's times printed {lines[mark + 2]!r}")
    cpu = sum(int(minutes) * 60 + float(seconds) for minutes, seconds in children)
    return Clocked((int(ended) - int(started)) / 1e9, cpu, "\n".join(lines[:mark]))


def clocked(script: str, what: str) -> Clocked:
    inside("sync")  # earlier writes are not flushed on this measure's clock
    return parse_clock(inside(CLOCK.format(script=script, marker=MARKER), what=what))


def timed(name: str, script: str, size: int, reset: str = "", repeats: int = REPEATS) -> Row:
    """``script`` ``repeats`` times, ``reset`` before each run (off the clock); the median counts."""
    progress(f"measure: {name}" + (f" ({repeats} runs)" if repeats > 1 else ""))
    runs = []
    for _ in range(repeats):
        if reset:
            inside(reset, what=f"{name}: reset")
        runs.append(clocked(script, name))
    median = sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]
    row = Row(name, median.seconds, size, median.cpu, tuple(run.seconds for run in runs))
    progress(f"  {' '.join(f'{run.seconds:.1f}' for run in runs)} s; CPU {median.cpu:.1f} s in the median run")
    return row


def backup(name: str, job: str, size: int = 0) -> Row:
    """One `portalops-backup run --job JOB`; the size is what the job processed (from run.json)."""
    progress(f"measure: {name}")
    try:
        run = clocked(f"/usr/local/sbin/portalops-backup run --job {job}", f"portalops-backup run --job {job}")
    except BenchError as exc:
        status = json.loads(inside(f"cat {STATUS}/run.json || echo '{{}}'"))
        raise BenchError(f"{exc} ({'; '.join(status.get('errors', [])) or 'no status'})") from None
    status = json.loads(inside(f"cat {STATUS}/run.json"))
    entry = status["jobs"][0]
    progress(
        f"  {run.seconds:.1f} s, CPU {run.cpu:.1f} s; {entry['files']} files, {entry['files_new']} new, "
        f"{entry['files_changed']} changed, {entry['bytes_added'] / MIB:.1f} MiB added to the repository"
    )
    return Row(name, run.seconds, size or int(entry["bytes_processed"]), run.cpu, (run.seconds,))


# --------------------------------------------------------------------------- container


def start_container() -> None:
    if subprocess.run(["podman", "image", "exists", IMAGE], env=ENV, check=False).returncode != 0:
        raise BenchError(f"the lab image {IMAGE} is missing: run `portalops lab image` (or `make lab-up`) first")
    leftover = podman("ps", "--all", "--filter", f"name=^{NAME}$", "--format", "{{.Labels}}").strip()
    if leftover:
        if "portalops.bench:1" not in leftover:
            raise BenchError(f"a container named {NAME} exists and is not a benchmark's; remove it by hand")
        progress(f"removing {NAME} left by an interrupted run")
        remove_container()
    progress(f"starting {NAME} from {IMAGE}")
    podman("run", "--detach", "--name", NAME, "--hostname", HOST, "--label", LABEL, "--systemd", "always", IMAGE)
    deadline = time.monotonic() + 120
    state = ""
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["podman", "exec", NAME, "systemctl", "is-system-running"],
            env=ENV,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    raise BenchError(f"{NAME} did not boot in 120 s (systemd says {state or 'nothing'})")


def remove_container() -> None:
    subprocess.run(
        ["podman", "rm", "--force", "--time", "2", NAME], env=ENV, capture_output=True, check=False, timeout=120
    )


def prepare() -> None:
    progress(f"apt-get install {' '.join(PACKAGES)} (the Debian mirror)")
    inside(
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null; "
        f"apt-get install -y -q --no-install-recommends {' '.join(PACKAGES)} >/dev/null",
        what="apt-get install",
    )
    progress("installing the wrapper, its package, its config and a local repository")
    inside("install -d -m 0755 /usr/local/lib/portalops /etc/portalops")
    # As the restic_backup role installs them: the package's modules on the system Python's path.
    site = inside("""/usr/bin/python3 -c "import sysconfig; print(sysconfig.get_path('purelib'))" """).strip()
    inside(f"install -d -m 0755 {site}/portalops_host")
    for module in sorted(PACKAGE.glob("*.py")):
        podman("cp", str(module), f"{NAME}:{site}/portalops_host/{module.name}")
    podman("cp", str(WRAPPER), f"{NAME}:/usr/local/lib/portalops/portalops_backup.py")
    inside(
        "chmod 0755 /usr/local/lib/portalops/portalops_backup.py; "
        "ln -sf /usr/local/lib/portalops/portalops_backup.py /usr/local/sbin/portalops-backup; "
        "umask 077; head -c 32 /dev/urandom | base64 > /etc/portalops/restic.pass; "
        "cat > /etc/portalops/backup.json",
        stdin=json.dumps(CONFIG, indent=2),
    )
    inside(f"{RESTIC} init >/dev/null", what="restic init")
    inside(f"install -d {OUT}")


def copy_in(uploads: Uploads) -> None:
    """The files ``uploads`` wrote into :data:`UPLOADS` in the container (root's, 0644 and 0755), by tar: a
    file already there is replaced."""
    names = uploads.root.parent / "names"
    names.write_text("".join(f"{name}\0" for name in uploads.written))
    argv = ["tar", "-C", str(uploads.root), "--owner=0", "--group=0", "--numeric-owner", "--mode=u=rw,go=r"]
    with subprocess.Popen([*argv, "--null", "-T", str(names), "-cf", "-"], stdout=subprocess.PIPE) as pack:
        unpack = subprocess.run(
            ["podman", "exec", "--interactive", NAME, "tar", "-xf", "-", "-C", UPLOADS],
            env=ENV, stdin=pack.stdout, capture_output=True, text=True, check=False, timeout=3600,
        )  # fmt: skip
    if pack.returncode != 0 or unpack.returncode != 0:
        raise BenchError(f"copying the uploads into {NAME} failed: {unpack.stderr.strip()[-300:]}")


def generate(staging: Path) -> tuple[int, int]:
    """The uploads (written in ``staging``, copied in) and the database; returns the uploads' bytes and the
    table's row count."""
    progress(f"generating about 1 GiB of uploads in {UPLOADS} (4000 small, 100 medium, 10 large files)")
    uploads = Uploads(staging, "create")
    print("  " + uploads.create())
    inside(f"install -d -m 0755 {UPLOADS}")
    copy_in(uploads)
    progress(f"generating {DATABASE}.wp_posts ({ROWS} rows)")
    inside("mariadb", stdin=CREATE_DATABASE, what="generating the database")
    return uploads_bytes(), count_rows()


def uploads_bytes() -> int:
    return int(inside(f"du -sb {UPLOADS}").split()[0])


def count_rows() -> int:
    return int(inside("mariadb -N -e 'SELECT COUNT(*) FROM wordpress.wp_posts'").strip())


def check_rows(what: str) -> None:
    rows = count_rows()
    if rows != ROWS:
        raise BenchError(f"{what}: {DATABASE}.wp_posts has {rows} rows, expected {ROWS}")


# --------------------------------------------------------------------------- measures


def verify_restore(restore: str, manifest: str) -> list[str]:
    """The restored tree ``restore`` in the container against the snapshot's manifest of the files (restored
    with it at ``manifest``), read here through the container's mounted file system."""
    mounted = Path(podman("mount", NAME, what="podman mount").strip())
    try:
        root = mounted / restore.lstrip("/")
        return compare_files(json.loads((root / manifest.lstrip("/")).read_text()), root)
    finally:
        podman("unmount", NAME, what="podman unmount")


def measure_files(rows: list[Row], staging: Path) -> dict[str, Row]:
    size = uploads_bytes()
    full = backup("backup uploads, full (first run)", "uploads")
    same = backup("backup uploads, no change", "uploads")
    progress("changing about 1 % of the uploads' bytes")
    uploads = Uploads(staging, "change")
    print("  " + uploads.change())
    copy_in(uploads)
    size = uploads_bytes()
    changed = backup("backup uploads, 1 % changed", "uploads")
    tar = timed(
        "baseline: tar | zstd -T0 -3",
        f"tar -C /srv -cf - uploads | zstd -q -T0 -3 > {OUT}/u.tar.zst; sync -f {OUT}",
        size,
        repeats=1,  # the baseline of the full backup, which runs once
    )
    progress(f"  archive: {int(inside(f'stat -c %s {OUT}/u.tar.zst')) / MIB:.0f} MiB of {size / MIB:.0f} MiB")
    inside(f"rm -f {OUT}/u.tar.zst")
    copy = timed("baseline: cp -a", f"cp -a {UPLOADS} {OUT}/cp-copy; sync -f {OUT}", size, f"rm -rf {OUT}/cp-copy")
    inside(f"rm -rf {OUT}/cp-copy")
    restore = timed(
        "file restore (restic restore latest)",
        f"{READ} restore latest --tag job:uploads --host {HOST} --target {OUT}/restore >/dev/null; sync -f {OUT}",
        size,
        f"rm -rf {OUT}/restore",
    )
    progress("  verifying the restored files against the snapshot's manifest (sha256 of each)")
    problems = verify_restore(f"{OUT}/restore", f"{STATUS}/manifests/uploads.json")
    if problems:
        raise BenchError(f"file restore: {len(problems)} problems, e.g. {problems[0]}")
    inside(f"rm -rf {OUT}/restore")
    found = {"full": full, "same": same, "changed": changed, "tar": tar, "cp": copy, "restore": restore}
    rows += found.values()
    return found


def measure_database(rows: list[Row]) -> dict[str, Row]:
    dump = backup("backup db-dump (mariadb-dump | restic)", "db-dump")
    physical_backup = backup("backup db-physical (mariadb-backup)", "db-physical")
    # Both restores are timed from "the database is gone" to "it answers": the server's stop and
    # the removal of its datadir happen before the clock starts, as the DROP before the logical one.
    physical = timed(
        "physical restore (restore, move-back, start)",
        f"{READ} restore latest --tag job:db-physical --host {HOST} --target {OUT}/physical >/dev/null; "
        f"mariadb-backup --move-back --target-dir={OUT}/physical/var/backups/portalops/db-physical "
        "--datadir=/var/lib/mysql; "
        "chown -R mysql:mysql /var/lib/mysql; systemctl start mariadb; "
        "until mariadb -e 'select 1' >/dev/null 2>&1; do sleep 0.1; done",
        physical_backup.size,
        f"systemctl stop mariadb; rm -rf /var/lib/mysql {OUT}/physical",
    )
    check_rows("physical restore")
    inside(f"rm -rf {OUT}/physical")
    logical = timed(
        "logical restore (restic dump | mariadb)",
        f"{READ} dump latest /db-dump.sql --tag job:db-dump --host {HOST} | mariadb --default-character-set=utf8mb4",
        dump.size,
        f"mariadb -e 'DROP DATABASE IF EXISTS {DATABASE}'",
    )
    check_rows("logical restore")
    found = {"dump": dump, "physical_backup": physical_backup, "physical": physical, "logical": logical}
    rows += found.values()
    return found


# --------------------------------------------------------------------------- report


def cpus() -> int:
    return int(inside("nproc").strip())


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def report(rows: list[Row], files: dict[str, Row], db: dict[str, Row], uploads: int, table_rows: int) -> None:
    print(f"\ndataset: {uploads / MIB:.0f} MiB of uploads, {DATABASE}.wp_posts with {table_rows} rows")
    cores = cpus()
    print(f"seconds: wall time, the median of the runs listed; CPU s: user + system of that run, on {cores} CPUs\n")
    print(f"{'measure':<46} {'MiB':>6} {'seconds':>8} {'CPU s':>6} {'MiB/s':>7}  runs")
    for row in rows:
        rate = row.size / MIB / row.seconds if row.seconds else 0.0
        runs = " ".join(f"{run:.1f}" for run in row.runs) if len(row.runs) > 1 else ""
        print(f"{row.name:<46} {row.size / MIB:>6.0f} {row.seconds:>8.1f} {row.cpu:>6.1f} {rate:>7.1f}  {runs}")
    same = files["same"].seconds / files["full"].seconds
    changed = files["changed"].seconds / files["full"].seconds
    restore = files["restore"].seconds / files["cp"].seconds
    speedup = db["logical"].seconds / db["physical"].seconds
    print()
    print(f"no-change / full backup:           {same:6.2f}  (target <= 1/3)   {verdict(same <= 1 / 3)}")
    print(f"1 %-change / full backup:          {changed:6.2f}")
    print(f"full backup / tar | zstd:          {files['full'].seconds / files['tar'].seconds:6.2f}")
    print(f"file restore / cp -a:              {restore:6.2f}  (target <= 1)     {verdict(restore <= 1)}")
    print(
        f"  CPU seconds: restic restore {files['restore'].cpu:.1f}, cp -a {files['cp'].cpu:.1f}; a restore"
        f" cannot take less wall time than its CPU seconds / {cores} CPUs = "
        f"{files['restore'].cpu / cores:.1f} s"
    )
    print(f"physical vs logical restore:       {speedup:5.1f}x  (target >= 5x)    {verdict(speedup >= 5)}")
    rto = db["physical"].seconds + files["restore"].seconds + db["logical"].seconds
    print(
        f"\nestimated drill RTO for this dataset: {rto:.0f} s = physical restore {db['physical'].seconds:.0f} s"
        f" + file restore {files['restore'].seconds:.0f} s + logical restore {db['logical'].seconds:.0f} s"
        "\n  (the sum of the measured restore phases, without the site check)"
    )


def interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, interrupted)
    staging = Path(tempfile.mkdtemp(prefix="portalops-bench-backup-", dir="/var/tmp")) / "uploads"
    try:
        start_container()
        prepare()
        uploads, table_rows = generate(staging)
        rows: list[Row] = []
        files = measure_files(rows, staging)
        db = measure_database(rows)
        report(rows, files, db, uploads, table_rows)
    except BenchError as exc:
        print(f"bench-backup: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench-backup: interrupted", file=sys.stderr)
        return 130
    finally:
        progress(f"removing {NAME} and the staged uploads")
        remove_container()
        shutil.rmtree(staging.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
