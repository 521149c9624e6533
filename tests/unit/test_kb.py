"""The knowledge base: the repository's articles, the runbook steps citing them, search in Chinese and English.

Commands run through ``portalops.cli.main``; the real ``kb/`` is read where the test is about the
articles the project ships, a ``tmp_path`` copy where a test breaks one.
"""

# ruff: noqa: RUF001 - Chinese text keeps its own full-width punctuation on purpose

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest

from portalops import cli
from portalops.runbook import Level, Runbook, act, escalate, registry, verify
from portalops.service import kb

SHIPPED = ("KB-php-fpm-pool-saturated", "KB-restic-repository-locked", "KB-nginx-config-refused")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["kb", *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_every_article_a_runbook_step_cites_exists() -> None:
    runbooks = registry.discover().values()
    assert kb.missing(runbooks) == []
    cited = kb.citations(runbooks)
    assert cited["KB-mariadb-starting-refuses-connections"] == [
        "runbook l1_database_lost step start_mariadb",
        "runbook l1_portal_unreachable step start_mariadb",
    ]
    assert cited["KB-php-fpm-pool-saturated"] == ["runbook l2_slow_response step reload_php_fpm"]


def test_a_step_citing_an_article_that_does_not_exist_is_named(tmp_path: Path) -> None:
    steps = (
        act("fix", "修", "Fix", run="true", kb="KB-no-such-article"),
        verify("ok", "好", "OK", run="true"),
        escalate("up", "升级", "Up", to_zh="二线", to_en="second line"),
    )
    runbook = Runbook("test_rb", "测试", "Test", Level.L3, (("x", "x"),), ("web",), steps)
    assert kb.missing([runbook]) == [f"runbook test_rb step fix cites KB-no-such-article, not in {kb.KB_DIR}"]
    with pytest.raises(ValueError, match="step fix: cites 'kb/nginx', not an article id"):
        Runbook(
            "test_rb",
            "测试",
            "Test",
            Level.L3,
            (("x", "x"),),
            ("web",),
            (act("fix", "修", "Fix", run="true", kb="kb/nginx"), *steps[1:]),
        )


def test_the_shipped_articles_are_well_formed_and_bilingual() -> None:
    articles, malformed = kb.load()
    assert malformed == []
    assert {a.id for a in articles} >= {*SHIPPED, "KB-mariadb-starting-refuses-connections"}
    for article in articles:
        assert article.path.name == f"{article.id}.md"
        for text in (article.title, article.cause, article.resolution, *article.symptoms):
            assert re.search(r"[\u4e00-\u9fff]", text) and re.search(r"[A-Za-z]{3}", text), (article.id, text)
        assert all(link.startswith("runbook:") is False or link[8:] in registry.discover() for link in article.links)


@pytest.mark.parametrize(
    ("words", "first"),
    [
        (("数据库", "启动中", "拒绝连接"), "KB-mariadb-starting-refuses-connections"),
        (("网站打不开", "502"), "KB-php-fpm-pool-saturated"),
        (("php-fpm", "满了"), "KB-php-fpm-pool-saturated"),
        (("备份失败", "仓库被锁"), "KB-restic-repository-locked"),
        (("restic", "locked"), "KB-restic-repository-locked"),
        (("nginx", "配置", "校验"), "KB-nginx-config-refused"),
        (("deployment", "fails", "validation"), "KB-nginx-config-refused"),
        (("database", "refusing", "connections"), "KB-mariadb-starting-refuses-connections"),
    ],
)
def test_search_ranks_the_right_article_first_in_chinese_and_english(words: tuple[str, ...], first: str) -> None:
    code, out, err = run("search", *words, "--json")
    assert code == 0, err
    hits = json.loads(out)["hits"]
    assert hits[0]["id"] == first, hits
    assert hits[0]["terms"] > (hits[1]["terms"] if len(hits) > 1 else 0) or hits[0]["score"] > hits[1]["score"]


def test_search_terms_are_english_words_and_chinese_character_pairs() -> None:
    assert kb.terms("数据库连接 Locked backups") == ["数据", "据库", "库连", "连接", "lock", "backup"]
    assert kb.terms("锁 php-fpm, 502") == ["锁", "php-fpm", "502"]
    code, out, err = run("search", "数据库连接")
    assert code == 0, err
    assert out.splitlines()[1].split()[:2] == ["KB-mariadb-starting-refuses-connections", "3/4"]  # 库连 is nowhere
    assert "matched in title, symptoms" in out.splitlines()[2]


def test_no_match_exits_1_and_says_what_was_looked_for() -> None:
    code, out, err = run("search", "打印机", "toner")
    assert (code, out) == (1, "")
    assert err == "no article contains any of: 打印 印机 toner\n"
    assert run("search", "   ")[0] == 2


def test_show_prints_the_article_and_who_cites_it() -> None:
    code, out, err = run("show", "KB-restic-repository-locked")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "KB-restic-repository-locked: restic 仓库被锁，备份失败 / restic repository locked, backups fail"
    assert "cited by: runbook l3_backup_stale step back_up_now" in lines
    assert '  - 备份任务失败，日志提示 "repository is already locked" / a backup job fails with' in out
    assert "# restic 仓库被锁 / restic repository locked" in lines
    assert run("show", "KB-nope")[0] == 2
    code, _, err = run("show", "../README")
    assert code == 2 and "is not an article id" in err


def test_list_shows_every_article() -> None:
    code, out, _ = run("list")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == sorted(a.id for a in kb.load()[0])


def test_a_malformed_article_is_named_with_exit_2_and_the_others_still_answer(tmp_path: Path) -> None:
    directory = tmp_path / "kb"
    shutil.copytree(kb.KB_DIR, directory)
    broken = directory / "KB-restic-repository-locked.md"
    broken.write_text(broken.read_text().replace("- restic\n", "- 7\n", 1))
    wrong_name = directory / "KB-elsewhere.md"
    shutil.copy(directory / "KB-nginx-config-refused.md", wrong_name)
    before = broken.read_bytes()
    code, out, err = run("list", "--kb-dir", str(directory))
    assert code == 2
    assert "KB-php-fpm-pool-saturated" in out and "KB-restic-repository-locked" not in out
    assert f"portalops: article {broken} is malformed: tags: a list of texts is wanted" in err
    assert f"article {wrong_name} is malformed: its id KB-nginx-config-refused is not its file name" in err
    code, out, _ = run("search", "php-fpm", "--kb-dir", str(directory))
    assert code == 2 and "KB-php-fpm-pool-saturated" in out
    code, _, err = run("show", "KB-restic-repository-locked", "--kb-dir", str(directory))
    assert code == 2 and "mend it by hand" in err
    assert broken.read_bytes() == before
