"""The template environment and the small helpers every page uses: times, durations, state names.

Markup lives in ``web/templates``; Jinja2 escapes every value by default, so nothing a run's data
holds becomes HTML unless a template says so on purpose.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from orchestrator.settings import Settings

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


def json_text(value: Any) -> str:
    """A JSON value as people read it (escaped by the page like any text, unlike ``tojson``'s \\u003c)."""
    return json.dumps(value, ensure_ascii=False)


def setup_templates(app: web.Application, settings: Settings) -> None:
    """Give ``app`` the Jinja2 environment over ``web/templates`` (autoescaping on, unknown names fail)."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        filters={"duration": duration_text, "state_label": state_label, "plural": plural, "json_text": json_text},
        default_helpers=False,
    )
    env = aiohttp_jinja2.get_env(app)
    env.globals["static"] = static_url
    # Read at each page: the pages' buttons need the token only when one is set.
    env.globals["token_required"] = lambda: bool(settings.api_token)


def render(request: web.Request, name: str, context: dict[str, Any]) -> str:
    """A template rendered to text."""
    return aiohttp_jinja2.render_string(name, request, context)


def html_response(text: str, *, status: int = 200) -> web.Response:
    """An HTML page with the headers every page carries."""
    return web.Response(text=text, status=status, content_type="text/html", headers=html_headers())


@cache
def static_version() -> str:
    """A short hash of the static files, appended to their URLs so browsers never keep stale ones."""
    digest = hashlib.sha256()
    for path in sorted(p for p in STATIC_DIR.rglob("*") if p.is_file()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def static_url(name: str) -> str:
    """The URL of a static file, with the version that busts caches."""
    return f"/static/{name}?v={static_version()}"


@dataclass(frozen=True, slots=True)
class Clock:
    """How the pages show moments: in the service's time zone, the date left out for today."""

    tz: tzinfo
    now: float

    def iso(self, ts: float) -> str:
        """The moment for a ``datetime`` attribute."""
        return datetime.fromtimestamp(ts, self.tz).isoformat(timespec="seconds")

    def text(self, ts: float) -> str:
        """``14:03:07`` today, ``2026-01-31 14:03`` another day."""
        moment = datetime.fromtimestamp(ts, self.tz)
        today = datetime.fromtimestamp(self.now, self.tz).date() == moment.date()
        return moment.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M")


def duration_text(seconds: float | None) -> str:
    """``4 ms``, ``0.25 s``, ``12.3 s``, ``4m 05s``, ``2h 03m``; an en dash when unknown."""
    if seconds is None:
        return "–"
    if seconds < 0.1:
        return f"{seconds * 1000:.0f} ms"
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


def plural(count: int, singular: str, many: str | None = None) -> str:
    """``1 run``, ``2 runs``, ``0 runs``."""
    return f"{count} {singular if count == 1 else (many or singular + 's')}"
