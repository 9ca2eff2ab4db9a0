"""Route table: the catalog and provider health (services/edge/router_queries.py), liveness
and readiness (app.py), and the API description itself (this package's handlers.py)."""

from typing import Final, Literal

from libs.contracts.bus.health import ProvidersHealth
from libs.contracts.http.models import ModelCard, ModelList
from libs.contracts.supervision import Readiness
from services.edge.openapi.table import BUS, READ, Answer, Param, Route, ok_json
from services.edge.router_queries import _MODALITIES as MODALITIES  # the values the handler accepts

_Modality = Literal[tuple(sorted(MODALITIES))]  # type: ignore[valid-type]
_DOCUMENT: Final = {"type": "object", "description": "An OpenAPI 3.1 document."}

CATALOG_ROUTES: Final = (
    Route(method="GET", path="/v1/models", operation_id="listModels", tag="models", summary="List models",
          auth="bearer", description="The enabled catalog: provider, modality, capabilities, pricing.",
          params=(Param(name="modality", where="query", type=_Modality, description="Only this modality."),
                  Param(name="provider", where="query", description="Only this provider.")),
          answers=(ok_json(200, "The models.", ModelList),), errors=READ),
    Route(method="GET", path="/v1/models/{model_id}", served_path="/v1/models/{model_id:.+}",
          operation_id="getModel", tag="models", summary="Get a model", auth="bearer",
          description="Model ids hold slashes (provider/model); send them as they are.",
          params=(Param(name="model_id", where="path", required=True, description="A model id, e.g. openai/gpt-4o."),),
          answers=(ok_json(200, "The model.", ModelCard),), errors=(400, 401, 403, 404, *BUS)),
    Route(method="GET", path="/v1/health/providers", operation_id="providerHealth", tag="health",
          summary="Provider health", auth="bearer",
          description="Breaker state, success rate and latency per deployment, merged over router replicas.",
          answers=(ok_json(200, "Every deployment's health.", ProvidersHealth),), errors=READ),
)

SERVICE_ROUTES: Final = (
    Route(method="GET", path="/healthz", operation_id="liveness", tag="health", summary="Liveness", auth="none",
          answers=(Answer(status=200, description="ok", kind="text", types=(("text/plain", None),)),), errors=(400,)),
    Route(method="GET", path="/readyz", operation_id="readiness", tag="health",
          summary="Readiness: connected to NATS with its key mirror synced", auth="none",
          answers=(Answer(status=200, description="ready (JSON with the supervisor's view when it runs us).",
                          kind="text", types=(("text/plain", None), ("application/json", Readiness))),
                   Answer(status=503, description="not ready", kind="text",
                          types=(("text/plain", None), ("application/json", Readiness)))),
          errors=(400,)),
    Route(method="GET", path="/metrics", operation_id="metrics", tag="health",
          summary="Prometheus metrics of the edge's workers", auth="admin",
          description="The Prometheus text format (docs/metrics.md). Also accepts "
                      "`Authorization: Bearer $SWITCHBOARD_METRICS_TOKEN` when the gateway sets that variable.",
          answers=(Answer(status=200, description="Every metric, summed over this machine's edge workers.",
                          kind="text", types=(("text/plain", None),)),),
          errors=(400, 401, 403)),
    Route(method="GET", path="/openapi.json", operation_id="getOpenApiDocument", tag="meta",
          summary="This OpenAPI document", auth="none",
          answers=(Answer(status=200, description="The document.", types=(("application/json", _DOCUMENT),)),),
          errors=(400,)),
    Route(method="GET", path="/v1/openapi.json", operation_id="getOpenApiDocumentV1", tag="meta",
          summary="This OpenAPI document (under /v1)", auth="none",
          answers=(Answer(status=200, description="The document.", types=(("application/json", _DOCUMENT),)),),
          errors=(400,)),
    Route(method="GET", path="/llms.txt", operation_id="getLlmsTxt", tag="meta",
          summary="The capability map for LLMs (llmstxt.org)", auth="none",
          answers=(Answer(status=200, description="Markdown: the endpoints and the model catalog.", kind="text",
                          types=(("text/plain", None),)),),
          errors=(400,)),
)

ROUTES: Final = (*CATALOG_ROUTES, *SERVICE_ROUTES)
