"""Every route the edge serves, in one table: what the OpenAPI document, llms.txt and the
route-coverage test (tests/integration/test_openapi_document.py) read.

A route added to the edge without an entry here fails that test; an entry that names
a route the edge does not serve fails it too. Routes that are not JSON API (transports,
pages) are entries with `excluded` saying why they are left out of the document.
"""

from typing import Final

from services.edge.openapi import (
    routes_accounts,
    routes_files,
    routes_inference,
    routes_jobs,
    routes_meta,
    routes_surfaces,
)
from services.edge.openapi.table import Route

ROUTES: Final[tuple[Route, ...]] = (
    *routes_inference.ROUTES,
    *routes_jobs.ROUTES,
    *routes_files.ROUTES,
    *routes_accounts.ROUTES,
    *routes_meta.ROUTES,
    *routes_surfaces.ROUTES,
)
