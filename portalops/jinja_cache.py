"""Compiled Jinja templates kept on disk, shared by every Ansible process of this user.

ansible-core 2.19 compiles each template string anew wherever it is rendered: Jinja lexes and parses
it, generates Python source and compiles that. Ansible renders a task's arguments in the task's worker,
a fork of the controller that lives for one host and one task, so nothing it compiled outlives it: a
re-run of site.yml compiled the same 871 templates in ~1,000 workers, ~30% of the workers' CPU
(py-spy). This keeps each compiled template's code object in a private directory, by a digest of its
source and of everything the compilation reads: the environment's syntax settings, its class, the
extensions, Ansible's compile-time switches, and the versions of Ansible, Jinja and Python (marshal's
format is Python's). Jinja's own BytecodeCache does the same for templates loaded from files, and
Python's __pycache__ for modules.

What is left as it was: a template given as a parsed tree (Ansible's expressions, ``when:``), raw source
(``raw=True``), and everything while Ansible's debuggable template sources are switched on. A cache that
cannot be trusted is not used: the directory must be the user's own, a real directory, writable by
nobody else (a file there is code that Ansible runs). A file that does not load is compiled again.
``PORTALOPS_JINJA_CACHE=off`` switches it off, ``=DIR`` puts it elsewhere.

plugins/strategy/mitogen_linear.py installs it in the controller, before the first worker forks.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import marshal
import os
import stat
import sys
import types
from pathlib import Path
from typing import Any

import ansible.release
from ansible._internal._templating import _jinja_bits

FORMAT = 1  # of the key and the files; a change here makes a new directory
# The environment's settings that the lexer, parser and code generator read: the syntax settings a template
# may override (Ansible's own list, which also keys its cache of lexers), and the environment's others.
SETTINGS = (*_jinja_bits._TEMPLATE_OVERRIDE_FIELD_NAMES, "optimized", "is_async", "autoescape")
ENV_VAR = "PORTALOPS_JINJA_CACHE"
# Ansible's templating engine, which it requires: read for its version only (portalops imports none of it).
JINJA_VERSION = importlib.metadata.version("jinja2")

_compile_uncached = _jinja_bits.AnsibleEnvironment.compile


def default_directory() -> Path | None:
    """Where the cache lives for this process, or None when it is switched off."""
    chosen = os.environ.get(ENV_VAR, "")
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    python = f"{sys.version_info[0]}{sys.version_info[1]}"
    versions = f"ansible-{ansible.release.__version__}-jinja-{JINJA_VERSION}-py{python}"
    return base / "portalops" / "jinja" / versions


def usable(directory: Path) -> bool:
    """Made if missing; used only when it is a real directory of this user that nobody else can write to."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022


def key(env: Any, source: str, name: str | None, filename: str | None, defer_init: bool) -> str | None:
    """The digest a compiled template is kept under; None when this compilation is not cached."""
    settings = [getattr(env, field) for field in SETTINGS]
    if callable(env.autoescape):
        return None  # a function has no stable name
    compiling = _jinja_bits._TemplateCompileContext.current(optional=True)
    described = repr(
        (
            FORMAT,
            ansible.release.__version__,
            JINJA_VERSION,
            sys.version,
            f"{type(env).__module__}.{type(env).__qualname__}",
            settings,
            sorted(env.extensions),
            getattr(env.finalize, "__qualname__", repr(env.finalize)),
            _jinja_bits._TemplateConfig.allow_embedded_templates,
            None if compiling is None else compiling.escape_backslashes,
            name,
            filename,
            defer_init,
            str(source),
        )
    )
    return hashlib.sha256(described.encode("utf-8", "surrogatepass")).hexdigest()


def load(path: Path) -> types.CodeType | None:
    try:
        # Only from a directory usable() accepted: this user's own, which nobody else can write to.
        code = marshal.loads(path.read_bytes())  # noqa: S302
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return code if isinstance(code, types.CodeType) else None


def store(path: Path, code: types.CodeType) -> None:
    """Whole or not at all: written aside, then renamed (workers of one task compile the same template)."""
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(marshal.dumps(code))
        os.replace(aside, path)
    except OSError:
        aside.unlink(missing_ok=True)


def install(directory: Path | None = None) -> Path | None:
    """Route AnsibleEnvironment.compile through the cache at ``directory`` (default_directory()); the
    directory used, or None when the cache is off or cannot be trusted (then nothing changes)."""
    directory = directory if directory is not None else default_directory()
    if directory is None or not usable(directory):
        uninstall()
        return None

    def compile(
        self: Any,
        source: Any,
        name: str | None = None,
        filename: str | None = None,
        raw: bool = False,
        defer_init: bool = False,
    ) -> Any:
        digest = None
        if isinstance(source, str) and not raw and not self._debuggable_template_source:
            digest = key(self, source, name, filename, defer_init)
        if digest is None:
            return _compile_uncached(self, source, name, filename, raw, defer_init)
        path = directory / digest
        code = load(path)
        if code is None:
            code = _compile_uncached(self, source, name, filename, raw, defer_init)
            store(path, code)
        return code

    compile.portalops_cache = directory  # type: ignore[attr-defined]
    _jinja_bits.AnsibleEnvironment.compile = compile
    return directory


def uninstall() -> None:
    _jinja_bits.AnsibleEnvironment.compile = _compile_uncached


def installed() -> Path | None:
    """The directory the installed cache uses, or None."""
    return getattr(_jinja_bits.AnsibleEnvironment.compile, "portalops_cache", None)
