"""The knowledge base: ``kb/<id>.md``, one article per file, YAML front matter and Markdown.

Front matter: ``id`` (``KB-`` and a slug, the file's name), ``title``, ``symptoms`` (what a person
sees), ``cause``, ``resolution``, ``tags`` and ``links`` (runbooks, documents, addresses). Texts are
bilingual like the runbooks' (中文 / English). Runbook steps cite articles by id (``Step.kb``) and
problems link them; a unit test fails when a cited article does not exist.

Search needs no segmenter: an English word matches as a substring (a query word loses its ``-ing``,
``-ed`` or ``-s`` first, so "locked" finds "lock"), a run of Chinese characters is cut into
overlapping pairs (数据库连接 -> 数据 据库 库连 连接), which is how Chinese full-text indexes
without a dictionary (the CJK bigram analysers of Lucene and PostgreSQL's pg_bigm) do it. Articles
rank by how many of the query's terms they contain, then by where: title, symptoms and tags weigh
more than cause and resolution, which weigh more than the body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portalops.errors import BadInput
from portalops.inventory import REPO_ROOT
from portalops.runbook.lifecycle import LINKS
from portalops.runbook.model import Runbook
from portalops.service import records

KB_DIR = REPO_ROOT / "kb"
SCHEMA: records.Schema = {
    "id": (str, True),
    "title": (str, True),
    "symptoms": (list, True),
    "cause": (str, True),
    "resolution": (str, True),
    "tags": (list, False),
    "links": (list, False),
}
WEIGHTS = {"title": 5, "symptoms": 3, "tags": 3, "cause": 2, "resolution": 2, "body": 1}
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
WORD = re.compile(r"[a-z0-9][a-z0-9_.+/-]*[a-z0-9]|[a-z0-9]")
SUFFIXES = ("ing", "ed", "es", "s")


def check(meta: Mapping[str, Any]) -> list[str]:
    found = []
    if not LINKS["kb"].match(str(meta["id"])):
        found.append(f"id: {meta['id']!r} is not like KB-nginx-502 (KB-, letters, digits, ._-)")
    if not str(meta["title"]).strip():
        found.append("title: empty")
    if not meta["symptoms"]:
        found.append("symptoms: at least one")
    for name in ("symptoms", "tags", "links"):
        if any(not isinstance(item, str) or not item.strip() for item in meta.get(name) or []):
            found.append(f"{name}: non-empty texts only")
    return found


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    symptoms: tuple[str, ...]
    cause: str
    resolution: str
    tags: tuple[str, ...]
    links: tuple[str, ...]
    body: str
    path: Path

    def fields(self) -> dict[str, str]:
        """Each searchable field as one lower-case text."""
        return {
            "title": self.title.lower(),
            "symptoms": "\n".join(self.symptoms).lower(),
            "tags": " ".join(self.tags).lower(),
            "cause": self.cause.lower(),
            "resolution": self.resolution.lower(),
            "body": self.body.lower(),
        }


def _article(record: records.Record) -> Article:
    meta = record.meta
    if record.path.name != f"{meta['id']}.md":
        raise BadInput(f"article {record.path} is malformed: its id {meta['id']} is not its file name")
    return Article(
        str(meta["id"]),
        str(meta["title"]),
        tuple(meta["symptoms"]),
        str(meta["cause"]),
        str(meta["resolution"]),
        tuple(meta.get("tags") or ()),
        tuple(meta.get("links") or ()),
        record.body,
        record.path,
    )


def read(path: Path) -> Article:
    return _article(records.read(path, SCHEMA, check, "article"))


def get(article: str, directory: Path = KB_DIR) -> Article:
    if not LINKS["kb"].match(article):
        raise BadInput(f"{article!r} is not an article id: like KB-nginx-502")
    path = directory / f"{article}.md"
    if not path.is_file():
        raise BadInput(f"no article {article} in {directory}: `portalops kb list` shows them")
    return read(path)


def load(directory: Path = KB_DIR) -> tuple[list[Article], list[str]]:
    """Every article, by id; and the malformed files, named with what is wrong."""
    found, malformed = [], []
    for path in sorted(directory.glob("*.md")) if directory.is_dir() else []:
        if path.name.lower() == "readme.md":
            continue
        try:
            found.append(read(path))
        except BadInput as exc:
            malformed.append(exc.message)
    return found, malformed


def citations(runbooks: Iterable[Runbook]) -> dict[str, list[str]]:
    """Article id -> the runbook steps that cite it (``runbook RB step STEP``)."""
    found: dict[str, list[str]] = {}
    for runbook in runbooks:
        for step in runbook.steps:
            if step.kb:
                found.setdefault(step.kb, []).append(f"runbook {runbook.id} step {step.id}")
    return found


def missing(runbooks: Iterable[Runbook], directory: Path = KB_DIR) -> list[str]:
    """The runbook steps citing an article that is not in the knowledge base."""
    return [
        f"{step} cites {article}, not in {directory}"
        for article, steps in citations(runbooks).items()
        for step in steps
        if not (directory / f"{article}.md").is_file()
    ]


def terms(query: str) -> list[str]:
    """The query's search terms: English words (suffix trimmed) and pairs of Chinese characters."""
    found: list[str] = []
    for word in query.lower().split():
        for run in CJK.findall(word):
            found += [run] if len(run) == 1 else [run[n : n + 2] for n in range(len(run) - 1)]
        for token in WORD.findall(CJK.sub(" ", word)):
            suffix = next((s for s in SUFFIXES if token.endswith(s) and len(token) - len(s) >= 4), "")
            found.append(token[: len(token) - len(suffix)])
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Hit:
    article: Article
    matched: int  # how many of the query's terms the article contains
    score: int
    where: tuple[str, ...]  # the fields that matched, heaviest first


def search(articles: Sequence[Article], query: str) -> list[Hit]:
    """The articles containing any term of the query, best first."""
    wanted = terms(query)
    if not wanted:
        raise BadInput("give words to search for (Chinese or English)")
    hits = []
    for article in articles:
        texts = article.fields()
        matched, score, where = 0, 0, set()
        for term in wanted:
            found = {name: text.count(term) for name, text in texts.items() if term in text}
            matched += bool(found)
            score += sum(WEIGHTS[name] * min(count, 3) for name, count in found.items())
            where |= set(found)
        if matched:
            order = tuple(sorted(where, key=lambda name: (-WEIGHTS[name], name)))
            hits.append(Hit(article, matched, score, order))
    return sorted(hits, key=lambda h: (-h.matched, -h.score, h.article.id))


def format_hits(hits: Sequence[Hit], query: str) -> str:
    total = len(terms(query))
    lines = [f"{'ARTICLE':<40} {'TERMS':>5} {'SCORE':>5}  TITLE"]
    for hit in hits:
        lines.append(f"{hit.article.id:<40} {hit.matched:>2}/{total:<2} {hit.score:>5}  {hit.article.title}")
        lines.append(f"{'':<40} {'':>5} {'':>5}  matched in {', '.join(hit.where)}")
    return "\n".join(lines)


def format_list(articles: Sequence[Article]) -> str:
    lines = [f"{'ARTICLE':<40} {'TAGS':<40} TITLE"]
    lines += [f"{a.id:<40} {','.join(a.tags):<40} {a.title}" for a in articles]
    return "\n".join(lines)


def format_article(article: Article, cited_by: Sequence[str] = ()) -> str:
    """An article as ``portalops kb show`` prints it: the fields first, then the body."""
    lines = [f"{article.id}: {article.title}", "", "symptoms 症状:"]
    lines += [f"  - {s}" for s in article.symptoms]
    lines += ["cause 原因:", *_indented(article.cause), "resolution 处理:", *_indented(article.resolution)]
    if article.tags:
        lines.append(f"tags: {', '.join(article.tags)}")
    lines += [f"link: {link}" for link in article.links]
    lines += [f"cited by: {who}" for who in cited_by]
    lines += ["", article.body.rstrip(), "", f"({article.path})"]
    return "\n".join(lines)


def _indented(text: str) -> list[str]:
    return [f"  {line}" for line in text.strip().splitlines()] or ["  -"]
