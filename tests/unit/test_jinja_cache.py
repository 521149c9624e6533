"""portalops.jinja_cache: a template compiled once, by any Ansible process of the user, is loaded after that."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible._internal._templating import _jinja_bits
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

from portalops import jinja_cache

SOURCE = "{{ x + 1 }} and {{ 'a' | upper }}"


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    """Ansible's import machinery for its plugins, as every ansible-* command sets it up (without it the
    filters' first import leaves ansible_collections a plain namespace package for later tests); and
    Ansible's own compile again after each test."""
    init_plugin_loader()
    yield
    jinja_cache.uninstall()
    _AnsibleCollectionFinder._remove()


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every source Jinja really compiled (the cache missed or was not asked)."""
    done: list[str] = []
    uncached = jinja_cache._compile_uncached

    def counting(self: Any, source: Any, *args: Any) -> Any:
        done.append(source if isinstance(source, str) else "<tree>")
        return uncached(self, source, *args)

    monkeypatch.setattr(jinja_cache, "_compile_uncached", counting)
    return done


def render(source: str, **variables: Any) -> Any:
    """As a task's worker renders an argument: a fresh Templar, so nothing is memoised in it."""
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(source))


def test_a_template_is_compiled_once_and_loaded_from_the_directory_after(tmp_path: Path, compiles: list[str]) -> None:
    assert jinja_cache.install(tmp_path) == tmp_path == jinja_cache.installed()
    assert render(SOURCE, x=1) == "2 and A"
    assert compiles == [SOURCE]
    assert render(SOURCE, x=41) == "42 and A"  # the code object is a template, not its result
    assert compiles == [SOURCE]
    assert len(list(tmp_path.iterdir())) == 1
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in tmp_path.iterdir())


def test_what_changes_the_compiled_code_makes_another_entry(tmp_path: Path) -> None:
    jinja_cache.install(tmp_path)
    env = Templar(loader=DataLoader()).environment
    plain = jinja_cache.key(env, SOURCE, None, None, False)
    assert plain == jinja_cache.key(env, SOURCE, None, None, False)
    other_syntax = env.overlay(variable_start_string="[[", variable_end_string="]]")
    assert jinja_cache.key(other_syntax, SOURCE, None, None, False) != plain
    assert jinja_cache.key(env, SOURCE + " ", None, None, False) != plain
    assert jinja_cache.key(env, SOURCE, "name.j2", None, False) != plain
    with _jinja_bits._TemplateCompileContext(escape_backslashes=True):
        escaped = jinja_cache.key(env, SOURCE, None, None, False)
    with _jinja_bits._TemplateCompileContext(escape_backslashes=False):
        unescaped = jinja_cache.key(env, SOURCE, None, None, False)
    assert len({plain, escaped, unescaped}) == 3


def test_backslashes_render_as_without_the_cache(tmp_path: Path) -> None:
    """escape_backslashes is applied while lexing: a template compiled with it is never served without it."""
    source = "{{ 'a\\\\1b' | length }}"
    jinja_cache.uninstall()
    expected = render(source)
    jinja_cache.install(tmp_path)
    assert render(source) == expected
    assert render(source) == expected


def test_a_file_that_does_not_load_is_compiled_again(tmp_path: Path, compiles: list[str]) -> None:
    jinja_cache.install(tmp_path)
    render(SOURCE, x=1)
    (entry,) = tmp_path.iterdir()
    entry.write_bytes(b"not marshal data")
    assert render(SOURCE, x=2) == "3 and A"
    assert compiles == [SOURCE, SOURCE]
    assert jinja_cache.load(entry) is not None  # written again, whole


@pytest.mark.parametrize("mode", [0o770, 0o757])
def test_a_directory_others_can_write_to_is_not_used(tmp_path: Path, compiles: list[str], mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    assert jinja_cache.install(shared) is None and jinja_cache.installed() is None
    assert render(SOURCE, x=1) == "2 and A"
    assert list(shared.iterdir()) == [] and compiles == [SOURCE]


def test_a_link_is_not_used_as_the_directory(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    assert jinja_cache.install(tmp_path / "link") is None


def test_raw_source_and_parsed_trees_are_compiled_as_before(tmp_path: Path, compiles: list[str]) -> None:
    jinja_cache.install(tmp_path)
    env = Templar(loader=DataLoader()).environment
    assert isinstance(env.compile(SOURCE, raw=True), str)
    assert render("{{ [1, 2] | length }}") == 2
    Templar(loader=DataLoader(), variables={"x": 1}).evaluate_conditional(trust_as_template("x == 1"))
    # only the template from a string was kept, not the raw source nor the conditional's tree
    assert len(list(tmp_path.iterdir())) == 1
    assert compiles == [SOURCE, "{{ [1, 2] | length }}", "<tree>"]


def test_off_switches_it_off_and_a_directory_can_be_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(jinja_cache.ENV_VAR, "off")
    assert jinja_cache.default_directory() is None and jinja_cache.install() is None
    monkeypatch.setenv(jinja_cache.ENV_VAR, str(tmp_path / "here"))
    assert jinja_cache.install() == tmp_path / "here"
    monkeypatch.delenv(jinja_cache.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    directory = jinja_cache.default_directory()
    assert directory is not None and directory.is_relative_to(tmp_path / "xdg" / "portalops" / "jinja")
    assert os.path.basename(directory).startswith("ansible-")
