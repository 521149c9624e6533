"""Published posts and pages holding a word of the customer's list: found, kept as evidence, unpublished.

What ``l1_sensitive_content`` runs (``portalops content ...``). The posts are found the inspection's
way, through the edge and WordPress' REST API with the inspection's matcher (:mod:`words`) over the same
visible text (:func:`site.item_text`), so the runbook acts on exactly what the inspection reported.
Unpublishing sets each one back to draft in the site's own WordPress on a CMS host (:mod:`portalops.wpphp`,
over SSH as runbook steps reach hosts), as an editor would: nothing is deleted and an editor republishes
the corrected text. The post's status is changed in the database directly, not through
``wp_update_post``, which would pass the content through the KSES filters of a user-less script and
change the very text kept as evidence.

Evidence goes to the incident's directory (``incidents/<incident>/evidence/``, 0700, each file 0600 with
its sha256 in ``SHA256SUMS``, as the runbooks keep evidence on hosts): what was found, as the public saw
it (site, post id, URL, matched words, title, rendered content), and what was unpublished, as the
database held it (status before and after, raw content).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from portalops import wpphp
from portalops.errors import BadInput, CommandFailed
from portalops.inspect import pages
from portalops.inspect.edge import Answer, Edge
from portalops.inspect.site import Settings, Unreadable, item_text, rendered, rest
from portalops.inspect.words import WordMatcher
from portalops.runbook.hosts import Host
from portalops.runbook.journal import incident_directory
from portalops.service.changes import INCIDENT_VARIABLE, default_root

FIELDS = "id,type,date_gmt,link,title,content"
ROUTES = ("/wp/v2/posts", "/wp/v2/pages")
FOUND_PREFIX = "sensitive-"  # evidence: what was found, as the public saw it
UNPUBLISHED_PREFIX = "unpublished-"  # evidence: what was unpublished, as the database held it
SUMS = "SHA256SUMS"
# Each id given: a published post or page goes back to draft (its content untouched); one found and what it was.
UNPUBLISH_PHP = r"""
$done = [];
foreach ($args as $arg) {
    $post = get_post((int) $arg);
    if (!$post) { $done[] = ['id' => (int) $arg, 'found' => false]; continue; }
    $before = $post->post_status;
    if ($before === 'publish') {
        $wpdb->update($wpdb->posts, ['post_status' => 'draft'], ['ID' => $post->ID]);
        clean_post_cache($post->ID);
    }
    $done[] = ['id' => $post->ID, 'found' => true, 'type' => $post->post_type, 'title' => $post->post_title,
               'status_before' => $before, 'status' => get_post_status($post->ID),
               'modified_gmt' => $post->post_modified_gmt, 'content' => $post->post_content];
}
echo json_encode($done, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
"""


@dataclass(frozen=True)
class Finding:
    """A published post or page holding words of the list, as the public saw it."""

    site: str
    domain: str
    id: int
    type: str
    link: str
    title: str
    words: tuple[str, ...]
    date_gmt: str
    content: str  # rendered HTML

    def line(self) -> str:
        return f"{self.site}: {self.type} {self.id} {self.link}: {', '.join(self.words)}"


def matches(site: str, domain: str, items: Iterable[Mapping[str, Any]], matcher: WordMatcher) -> list[Finding]:
    """The REST items (posts, pages) whose visible title or text holds a word."""
    found = []
    for item in items:
        words = matcher.words_in(item_text(dict(item)))
        if words:
            found.append(
                Finding(
                    site=site,
                    domain=domain,
                    id=int(item["id"]),
                    type=str(item.get("type") or "post"),
                    link=str(item.get("link", "")),
                    title=pages.visible_text(rendered(dict(item), "title")).strip(),
                    words=tuple(words),
                    date_gmt=str(item.get("date_gmt") or ""),
                    content=rendered(dict(item), "content"),
                )
            )
    return found


def find(edge: Edge, site: str, matcher: WordMatcher) -> list[Finding]:
    """Every published post and page of the site holding a word; :class:`Unreadable` when the API does not answer."""
    items = [item for route in ROUTES for item in rest(edge, route, f"_fields={FIELDS}")]
    return matches(site, edge.domain, items, matcher)


def find_in_sites(settings: Settings, sites: Sequence[Mapping[str, Any]]) -> tuple[list[Finding], list[str]]:
    """What every site publishes holding a word, and the sites that could not be read (why)."""
    matcher = WordMatcher(settings.words)
    found: list[Finding] = []
    unread: list[str] = []
    if not matcher:
        return found, unread
    for site in sites:
        edge = Edge(settings.public_url, site["domains"][0], settings.cafiles, settings.timeout)
        try:
            found += find(edge, str(site["name"]), matcher)
        except Unreadable as exc:
            unread.append(f"{site['name']}: the REST API did not answer: {exc}")
        finally:
            edge.close()
    return found, unread


def served(edge: Edge, finding: Finding, matcher: WordMatcher) -> tuple[list[str], list[str]]:
    """Whether the post's URL still serves one of its words: as visitors get it (the edge cache too) and as
    the CMS renders it now. (what still serves a word, what did not answer)."""
    still: list[str] = []
    silent: list[str] = []
    for fresh, how in ((False, "as visitors get it"), (True, "from the CMS")):
        answer: Answer = edge.get(finding.link, fresh=fresh)
        if answer.status is None:
            silent.append(f"{finding.link} {how}: no answer ({answer.error})")
            continue
        words = matcher.words_in(pages.visible_text(answer.text())) if answer.ok else []
        if words:
            still.append(f"{finding.link} {how}: HTTP {answer.status} still shows {', '.join(words)}")
    return still, silent


# --------------------------------------------------------------------------- evidence


def incident_evidence(given: str = "") -> Path | None:
    """``given``, else the running incident's evidence directory (``$PORTALOPS_INCIDENT``), else None."""
    if given:
        return Path(given)
    incident = os.environ.get(INCIDENT_VARIABLE, "")
    return incident_directory(default_root(), incident) / "evidence" if incident else None


def keep(directory: Path, prefix: str, document: Mapping[str, Any], now: dt.datetime) -> Path:
    """``document`` as ``<prefix><UTC>.json`` in ``directory`` (root only), its sha256 added to SHA256SUMS."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = directory / f"{prefix}{now:%Y%m%dT%H%M%SZ}.json"
    number = 1
    while path.exists():  # two in one second: never over the first
        number += 1
        path = directory / f"{prefix}{now:%Y%m%dT%H%M%SZ}-{number}.json"
    data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    with (directory / SUMS).open("a", encoding="utf-8") as sums:
        sums.write(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")
    (directory / SUMS).chmod(0o600)
    return path


def found_document(findings: Sequence[Finding], now: dt.datetime, words: int) -> dict[str, Any]:
    return {
        "time_utc": now.isoformat(timespec="seconds"),
        "words_in_list": words,
        "found": [asdict(f) for f in findings],
    }


def kept_findings(directory: Path) -> list[Finding]:
    """Every post the evidence directory says was found, each once (site and id), the newest record of it."""
    found: dict[tuple[str, int], Finding] = {}
    for path in sorted(directory.glob(f"{FOUND_PREFIX}*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8")).get("found", []):
            finding = Finding(**{**entry, "words": tuple(entry["words"])})
            found[(finding.site, finding.id)] = finding
    return list(found.values())


# --------------------------------------------------------------------------- unpublishing


def unpublish(host: Host, findings: Sequence[Finding], timeout: float = 120) -> list[dict[str, Any]]:
    """Each finding's post back to draft in its site's WordPress on ``host``; what each was and is now."""
    by_site: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        by_site.setdefault((finding.site, finding.domain), []).append(finding)
    records: list[dict[str, Any]] = []
    for (site, domain), posts in by_site.items():
        ids = [str(f.id) for f in posts]
        result = host.run(wpphp.command(site, domain, UNPUBLISH_PHP, *ids), timeout)
        if not result.ok:
            raise CommandFailed(f"{host.name}: unpublishing {site} posts {', '.join(ids)}: {result.last_line()}")
        try:
            done = wpphp.last_json(result.stdout)
        except ValueError as exc:
            raise CommandFailed(f"{host.name}: unpublishing {site}: no JSON answer ({exc})") from exc
        records += [{"site": site, "domain": domain, **entry} for entry in done]
    return records


def unpublished_lines(records: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """What was set to draft, and what could not be (a post gone or not published meanwhile is no failure)."""
    done: list[str] = []
    failed: list[str] = []
    for r in records:
        where = f"{r['site']}: {r.get('type', 'post')} {r['id']}"
        if not r.get("found"):
            done.append(f"{where}: no longer exists")
        elif r.get("status") == "publish":
            failed.append(f"{where}: still published")
        else:
            done.append(f"{where} {r.get('title', '')!r}: {r.get('status_before')} -> {r.get('status')}")
    return done, failed


def require_evidence(directory: Path | None, what: str) -> Path:
    if directory is None:
        raise BadInput(
            f"{what} keeps its evidence in an incident: run it from the runbook l1_sensitive_content"
            " ($PORTALOPS_INCIDENT) or give --evidence-dir"
        )
    return directory
