"""TaskFlow's web server: the status pages, the live run page and the JSON API (see ``web/API.md``)."""

from web.app import create_app, local_url, start_site

__all__ = ["create_app", "local_url", "start_site"]
