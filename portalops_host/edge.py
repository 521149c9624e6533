"""`portalops-host check edge-content`: each site's front page through this edge, as visitors get it, is a
whole WordPress page with a title (the l1_defacement runbook)."""

from __future__ import annotations

import re
import ssl
import subprocess
import urllib.request


def server_names(nginx_config: str) -> list[str]:
    """The first ``server_name`` of each server block in ``nginx -T``'s output, each once in order; not
    the catch-all ``_``."""
    names = []
    for line in nginx_config.splitlines():
        words = line.split()
        if len(words) > 1 and words[0] == "server_name" and words[1].rstrip(";") != "_":
            names.append(words[1].rstrip(";"))
    return list(dict.fromkeys(names))


def page_line(name: str, status: int | None, body: str) -> tuple[str, bool]:
    """The site ``name``'s front page (``status`` None when it could not be fetched, ``body`` the error
    then) as a line, and whether it is whole: 200, WordPress's generator tag, a title, the closing tag,
    no PHP error."""
    title = re.search("<title>(.*?)</title>", body, re.S)
    whole = bool(re.search("<meta name=.generator. content=.WordPress", body)) and "</html>" in body
    broken = "Fatal error" in body or "Parse error" in body
    ok = status == 200 and whole and bool(title) and not broken
    seen = title.group(1) if title else "NO TITLE"
    return f"{name} {status} {len(body)} bytes {seen} {'ok' if ok else 'NOT OK'}", ok


def _front_page(name: str, context: ssl.SSLContext) -> tuple[int | None, str]:
    request = urllib.request.Request("https://127.0.0.1/", headers={"Host": name})
    try:
        with urllib.request.urlopen(request, context=context, timeout=20) as response:  # noqa: S310 - fixed https URL
            return response.status, response.read().decode("utf-8", "replace")
    except Exception as exc:
        return None, str(exc)


def command_edge_content() -> int:
    """Exit 0 when every site nginx serves here answers a whole page, 1 when one does not or nginx names none."""
    config = subprocess.run(["nginx", "-T"], capture_output=True, text=True, check=False).stdout
    names = server_names(config)
    # The edge's own address, not the name the certificate is for: what is checked is the content.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    bad = not names
    for name in names:
        line, ok = page_line(name, *_front_page(name, context))
        print(line)
        bad = bad or not ok
    return 1 if bad else 0
