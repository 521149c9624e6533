"""Generate each role README's variables table from its ``meta/argument_specs.yml``.

The argument spec is a role's interface; the README section between the
markers below is rendered from it and never edited by hand. ``--check``
fails when a README is stale (run by the unit tests).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

from portalops.inventory import REPO_ROOT

BEGIN = "<!-- BEGIN variables: generated from meta/argument_specs.yml -->"
END = "<!-- END variables -->"
LONG_DEFAULT = 60


def _text(description: str | list[str]) -> str:
    """Ansible doc markup (``C(x)``) to Markdown, on one table line."""
    joined = " ".join(description) if isinstance(description, list) else description
    joined = re.sub(r"C\(([^()]*(?:\([^()]*\)[^()]*)*)\)", r"`\1`", joined)
    return joined.replace("|", "\\|").replace("\n", " ")


def _type(option: dict[str, Any]) -> str:
    base = str(option.get("type", "str"))
    return f"{base} of {option['elements']}" if option.get("elements") else base


def _scalar(value: Any) -> str:
    """A default as table cell text; a pipe (a Jinja filter) would end the cell."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value).replace("|", "\\|")


def _default(option: dict[str, Any]) -> str:
    if option.get("required"):
        return "**required**"
    value = option.get("default")
    if isinstance(value, list):
        return "<br>".join(f"`{_scalar(v)}`" for v in value) if value else "`[]`"
    if isinstance(value, dict):
        return "see defaults/main.yml" if value else "`{}`"
    text = _scalar(value)
    return "see defaults/main.yml" if len(text) > LONG_DEFAULT else f"`{text}`"


def table(spec: dict[str, Any]) -> str:
    rows = ["| variable | type | default | description |", "|---|---|---|---|"]
    for name, option in spec.items():
        description = _text(option.get("description", ""))
        if option.get("choices"):
            description += " Choices: " + ", ".join(f"`{c}`" for c in option["choices"]) + "."
        rows.append(f"| `{name}` | {_type(option)} | {_default(option)} | {description} |")
        for sub, sub_option in (option.get("options") or {}).items():
            required = "**required**" if sub_option.get("required") else ""
            description = _text(sub_option.get("description", ""))
            rows.append(f"| &nbsp;&nbsp;`.{sub}` | {_type(sub_option)} | {required} | {description} |")
    return "\n".join(rows)


def render(role: Path) -> tuple[str, str]:
    """The README as it is and as the spec says it should be."""
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    readme = (role / "README.md").read_text()
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"{role}/README.md has no generated variables section ({BEGIN} ... {END})")
    before, rest = readme.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return readme, f"{before}{BEGIN}\n{table(spec)}\n{END}{after}"


def roles(root: Path = REPO_ROOT / "roles") -> list[Path]:
    return sorted(p.parent.parent for p in root.glob("*/meta/argument_specs.yml"))


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for role in roles():
        try:
            current, wanted = render(role)
        except (ValueError, KeyError, OSError) as exc:
            print(f"specdoc: {role.name}: {exc}", file=sys.stderr)
            return 1
        if current != wanted:
            stale.append(role.name)
            if not check:
                (role / "README.md").write_text(wanted)
    if check and stale:
        print(f"stale README variables (run `make docs`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
