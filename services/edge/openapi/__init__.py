"""The API description: the route table, the OpenAPI 3.1 document built from it and the
msgspec contracts, and llms.txt (GET /openapi.json, /v1/openapi.json, /llms.txt)."""
