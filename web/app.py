"""The app factory and the site starter.

``create_app`` reads top to bottom: the injected services under typed keys, the middlewares
(errors outermost, then the cross-site check, then the token), one list of routes, the shutdown
hook. ``start_site`` listens on ``settings.host``/``settings.port`` and says so, loudly when the API
is open to the network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from aiohttp import web

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.limits import MAX_HTTP_BODY_BYTES
from orchestrator.metrics import Metrics
from orchestrator.settings import Settings
from orchestrator.store import Store
from web import views_dag_page as dag_page
from web import views_dags as dags
from web import views_live as live
from web import views_ops as ops
from web import views_pages as pages
from web import views_runs as runs
from web import views_submit as submit
from web import views_task as task
from web.guard import AcceptErrorThrottle, ConnectionLimits, GuardedRunner
from web.keys import LIBRARY, METRICS, ORCH, PROBES, SETTINGS, STATE, STORE, WebState
from web.middlewares import auth_middleware, error_middleware, origin_middleware
from web.render.base import STATIC_DIR, setup_templates

log = logging.getLogger("taskflow.web")

# Requests still in flight at shutdown get this long; live streams and /api/cli waits end at once.
SHUTDOWN_TIMEOUT_S = 10.0

_RUN = r"{run_id:\d{1,19}}"

ROUTES = [
    # Pages: open and read-only.
    web.get("/", pages.status),
    web.get("/parts/runs", pages.status_runs),
    web.get("/live", live.status_stream),
    web.get("/dags/{dag_id}", dag_page.dag_page),
    web.get(f"/runs/{_RUN}", pages.run_view),
    web.get(f"/runs/{_RUN}/parts", pages.run_view_parts),
    web.get(f"/runs/{_RUN}/live", live.run_stream),
    web.get(f"/runs/{_RUN}/log", pages.run_log),
    web.get(f"/runs/{_RUN}/archive.zip", pages.run_archive),
    web.get(f"/runs/{_RUN}/task", task.task_details),
    web.get(f"/runs/{_RUN}/output", task.task_output),
    web.static("/static", STATIC_DIR),
    # For operators: health is open to all, metrics need the token when one is set.
    web.get("/healthz", ops.healthz),
    web.get("/metrics", ops.metrics),
    # JSON API: needs the token when one is set.
    web.post("/api/web", submit.submit_web),
    web.post("/api/cli", submit.submit_cli),
    web.get("/api/dags", dags.list_dags),
    web.post("/api/dags", dags.post_dag),
    web.get("/api/dags/{dag_id}", dags.get_dag),
    web.put("/api/dags/{dag_id}", dags.put_dag),
    web.post("/api/import/4diac", dags.import_4diac),
    web.get("/api/runs", runs.list_runs),
    web.get(f"/api/runs/{_RUN}", runs.get_run),
    web.get(f"/api/runs/{_RUN}/events", runs.run_events),
    web.get(f"/api/runs/{_RUN}/archive", runs.run_archive),
    web.get(f"/api/runs/{_RUN}/log", runs.run_log),
    web.post(f"/api/runs/{_RUN}/cancel", runs.cancel_run),
    web.post(f"/api/runs/{_RUN}/rerun", runs.rerun),
    web.get("/api/schedules", dags.list_schedules),
    web.get("/api/operations", dags.list_operations),
    web.get("/api/schema", dags.schema),
    web.get("/api/openapi.json", ops.openapi),
]


def create_app(settings: Settings, orch: Orchestrator, library: DagLibrary, store: Store) -> web.Application:
    """The web application over a started orchestrator and its DAG library (both owned by the caller)."""
    # The largest body any route takes (a 4diac file); each route checks its own, smaller, limit.
    middlewares = [error_middleware, origin_middleware, auth_middleware]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_HTTP_BODY_BYTES)
    app[SETTINGS] = settings
    app[ORCH] = orch
    app[LIBRARY] = library
    app[STORE] = store
    app[STATE] = WebState(public_url=settings.public_url)
    app[METRICS] = Metrics(orch, store)
    # taskflow/cli.py adds the bot's check before the site starts.
    app[PROBES] = {"store": ops.store_probe, "workers": ops.workers_probe}
    setup_templates(app, settings)
    app.add_routes(ROUTES)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_on_cleanup)
    return app


async def _on_startup(app: web.Application) -> None:
    app[METRICS].attach()


async def _on_cleanup(app: web.Application) -> None:
    app[METRICS].detach()


async def _on_shutdown(app: web.Application) -> None:
    # Live streams and waiting /api/cli requests watch this and end, so cleanup never waits on them.
    app[STATE].closing.set()


async def start_site(app: web.Application, settings: Settings) -> web.AppRunner:
    """Serve ``app`` on ``settings.host``/``settings.port`` (0 = any free port); stop it with ``runner.cleanup()``."""
    limits = ConnectionLimits(settings.header_timeout, settings.min_body_rate, settings.max_connections)
    runner = GuardedRunner(app, limits, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    AcceptErrorThrottle().install(asyncio.get_running_loop())
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except BaseException:
        await runner.cleanup()
        raise
    port = bound_port(runner)
    state = app[STATE]
    if settings.public_url_setting is None and settings.port == 0:
        state.public_url = f"http://{_url_host(settings.host)}:{port}"  # links must name the real port
    log.info("web server listening on %s:%d (links: %s)", settings.host, port, state.public_url)
    if settings.public_url_setting is None and settings.host in _WILDCARD_HOSTS:
        log.warning(
            "links handed out (the bot's, POST /api/web's) say %s, which no browser can open: "
            "set TASKFLOW_PUBLIC_URL to the address people reach this server at",
            state.public_url,
        )
    if not is_loopback(settings.host) and not settings.api_token:
        log.warning(
            "the web server listens on %s, beyond this machine, and TASKFLOW_API_TOKEN is not set: "
            "anyone who can reach it can start and cancel runs",
            settings.host,
        )
    return runner


_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # every interface: a place to listen, not to link to


def local_url(runner: web.AppRunner, settings: Settings) -> str:
    """Where a process on this machine reaches the API (the CLI hands its runs there)."""
    host = "127.0.0.1" if settings.host in _WILDCARD_HOSTS else _url_host(settings.host)
    return f"http://{host}:{bound_port(runner)}"


def bound_port(runner: web.AppRunner) -> int:
    """The port the runner's first site listens on."""
    address = runner.addresses[0]
    return int(address[1])


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name, or "" for every interface: assume the network can reach it


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
