"""The service report's PDF: its HTML page printed by WeasyPrint, Debian's ``weasyprint`` command.

The command, not the library: Debian packages WeasyPrint for the system's Python, not for the virtualenv,
and a separate process keeps its many native dependencies out of portalops. Chinese needs a CJK font
(scripts/setup-system installs fonts-wqy-microhei); without one the characters print as boxes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from portalops.errors import PortalopsError
from portalops.proc import run

COMMAND = "weasyprint"
TIMEOUT_S = 300.0  # a year's report with 365 days per site prints in seconds; a hung renderer must not hang cron


def write_pdf(html: Path, pdf: Path) -> str:
    """Print ``html`` to ``pdf``; "" when written, else why not (the other formats are written regardless)."""
    if shutil.which(COMMAND) is None:
        return f"no PDF: {COMMAND} is not installed (scripts/setup-system installs Debian's package)"
    temporary = pdf.with_name(f".{pdf.name}.tmp")
    try:
        run([COMMAND, "--quiet", str(html), str(temporary)], timeout=TIMEOUT_S, what=f"{COMMAND} {html.name}")
        temporary.replace(pdf)
    except PortalopsError as exc:
        return f"no PDF: {exc.message}"
    finally:
        temporary.unlink(missing_ok=True)
    return ""
