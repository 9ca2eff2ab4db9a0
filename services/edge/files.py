"""Placeholder until its helper lands it (issue 8)."""

from aiohttp import web


def add_routes(app: web.Application) -> None:
    return None
