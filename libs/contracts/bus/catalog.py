"""Catalog queries from the edge to the router (answered with bus.inference.Reply/Failure)."""

import msgspec


class ModelsQuery(msgspec.Struct, array_like=True):
    model_id: str | None = None  # set: one model (GET /v1/models/{id})
    provider: str | None = None
    modality: str | None = None


encode = msgspec.msgpack.Encoder().encode
decode_query = msgspec.msgpack.Decoder(ModelsQuery).decode
