"""The page layout and the small pieces every page uses: escaping, times, durations, state badges."""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from datetime import datetime, tzinfo
from functools import cache
from pathlib import Path
from string import Template

WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

# Pages forbid inline scripts and styles: nothing a run's data holds can run in the browser.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def html_headers() -> dict[str, str]:
    """Headers every HTML page carries."""
    return {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }


def esc(value: object) -> str:
    """Text made safe for HTML content and attribute values."""
    return html.escape(str(value), quote=True)


@cache
def _layout() -> Template:
    return Template((TEMPLATES_DIR / "layout.html").read_text(encoding="utf-8"))


@cache
def static_version() -> str:
    """A short hash of the static files, appended to their URLs so browsers never keep stale ones."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def page(title: str, body: str, *, tz: tzinfo | None = None, scripts: Sequence[str] = ()) -> str:
    """A whole HTML page around ``body`` (already HTML)."""
    version = static_version()
    tags = "\n".join(f'<script src="/static/{esc(name)}?v={version}" defer></script>' for name in scripts)
    footer = f"TaskFlow · times in {esc(tz)}" if tz else "TaskFlow"
    return _layout().substitute(title=esc(title), body=body, scripts=tags, version=version, footer=footer)


def error_page(status: int, message: str) -> str:
    """A plain page for a 4xx/5xx answer to a browser."""
    title = "Not found" if status == 404 else f"Error {status}"
    body = (
        f'<section class="card error-page"><h1>{status} · {esc(title)}</h1>'
        f'<p>{esc(message)}</p><p><a href="/">Back to the status page</a></p></section>'
    )
    return page(title, body)


def time_html(ts: float | None, tz: tzinfo, now: float) -> str:
    """A ``<time>`` element: the clock time for today, the date and time otherwise."""
    if ts is None:
        return '<span class="muted">–</span>'
    moment = datetime.fromtimestamp(ts, tz)
    today = datetime.fromtimestamp(now, tz).date() == moment.date()
    text = moment.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M")
    return f'<time datetime="{moment.isoformat(timespec="seconds")}">{text}</time>'


def duration_text(seconds: float | None) -> str:
    """``0.25 s``, ``12.3 s``, ``4m 05s``, ``2h 03m``; an en dash when unknown."""
    if seconds is None:
        return "–"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def state_label(state: str) -> str:
    """A state as people read it (``up_for_retry`` → ``up for retry``)."""
    return state.replace("_", " ")


def badge(state: str) -> str:
    """A coloured badge for a task or run state (colours live in the stylesheet, keyed by state)."""
    return f'<span class="badge" data-state="{esc(state)}">{esc(state_label(state))}</span>'
