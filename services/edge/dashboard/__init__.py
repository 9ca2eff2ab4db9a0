"""The usage dashboard: a static page at /dashboard that signs in with a key (kept in the
browser's session storage) and draws the report endpoints' answers with Chart.js."""

from services.edge.dashboard.routes import add_routes

__all__ = ["add_routes"]
