"""Which models an operation can be sent to: the one place that decides it.

Every operation needs a model of one catalog modality offering one or more
capabilities (the strings of catalog/models.toml). A model the catalog knows
(with its capabilities listed) that cannot serve the operation is the client's
error, a 400 on `model` naming the model's modality and a few enabled models that
would do, rather than a call the provider answers with a confusing 404 or 502, or
worse, answers. Fallbacks (the catalog's and the request's `models: [...]`) that
cannot serve it are skipped. Models the catalog does not know (passed through
under a configured provider), and config-file models declared without
capabilities, go to the provider unchecked: it is the judge of those.
"""

from typing import Final

import msgspec

from libs.contracts import errors
from libs.contracts.bus.inference import (
    OP_AUDIO_TRANSLATIONS,
    OP_CHAT,
    OP_CLASSIFICATIONS,
    OP_DETECTIONS,
    OP_EMBEDDINGS,
    OP_IMAGE_EDITS,
    OP_IMAGES,
    OP_MESSAGES,
    OP_MODERATIONS,
    OP_OCR,
    OP_RERANK,
    OP_RESPONSES,
    OP_SPEECH,
    OP_TRANSCRIPTIONS,
    OP_TRANSLATIONS,
)
from libs.contracts.http.models import ModelCard
from services.router.catalog import Catalog, Plan, RouteError

SUGGESTIONS: Final = 3


class Need(msgspec.Struct, frozen=True):
    endpoint: str  # for the error message
    modality: str
    capabilities: frozenset[str]
    kind: str  # "a chat model", for the error message


_CHAT: Final = frozenset({"chat"})
_CHAT_VISION: Final = frozenset({"chat", "vision"})
# The utility endpoints (services/router/utilities.py) run on a chat model.
NEEDS: Final[dict[str, Need]] = {
    OP_CHAT: Need("/v1/chat/completions", "text", _CHAT, "a chat model"),
    OP_MESSAGES: Need("/v1/messages", "text", _CHAT, "a chat model"),
    OP_RESPONSES: Need("/v1/responses", "text", _CHAT, "a chat model"),
    OP_EMBEDDINGS: Need("/v1/embeddings", "embedding", frozenset({"embeddings"}), "an embedding model"),
    OP_IMAGES: Need("/v1/images/generations", "image", frozenset({"images"}), "an image model"),
    OP_IMAGE_EDITS: Need("/v1/images/edits", "image", frozenset({"image_edits"}), "an image model that edits"),
    OP_SPEECH: Need("/v1/audio/speech", "audio-tts", frozenset({"speech"}), "a text-to-speech model"),
    OP_TRANSCRIPTIONS: Need("/v1/audio/transcriptions", "audio-stt", frozenset({"transcriptions"}),
                            "a speech-to-text model"),
    OP_AUDIO_TRANSLATIONS: Need("/v1/audio/translations", "audio-stt", frozenset({"translations"}),
                                "a speech-to-text model that translates"),
    OP_MODERATIONS: Need("/v1/moderations", "moderation", frozenset({"moderation"}), "a moderation model"),
    OP_TRANSLATIONS: Need("/v1/translations", "text", _CHAT, "a chat model"),
    OP_CLASSIFICATIONS: Need("/v1/classifications", "text", _CHAT, "a chat model"),
    OP_RERANK: Need("/v1/rerank", "text", _CHAT, "a chat model"),
    OP_DETECTIONS: Need("/v1/detections", "text", _CHAT_VISION, "a chat model with vision"),
    OP_OCR: Need("/v1/ocr", "text", _CHAT_VISION, "a chat model with vision"),
}


def serves(card: ModelCard, need: Need) -> bool:
    return card.modality == need.modality and need.capabilities <= set(card.capabilities)


def _judged(catalog: Catalog, slug: str) -> ModelCard | None:
    """The card to judge `slug` by; None when the provider is the judge (see the module doc)."""
    card = catalog.known_card(slug)
    return card if card is not None and card.capabilities else None


def suitable(catalog: Catalog, operation: str, slug: str) -> bool:
    need = NEEDS.get(operation)
    card = _judged(catalog, slug) if need is not None else None
    return card is None or need is None or serves(card, need)


def admit(catalog: Catalog, operation: str, plan: Plan, models: list[str]) -> tuple[Plan, list[str]]:
    """The plan and the request's `models` with the fallbacks that cannot serve `operation` left
    out; a RouteError 400 (param `model`) if the model itself cannot."""
    need = NEEDS.get(operation)
    if need is None:
        return plan, models
    slug = plan.deployments[0].slug if plan.deployments else ""
    card = _judged(catalog, slug)
    if card is not None and not serves(card, need):
        raise RouteError(400, errors.INVALID_REQUEST, _refusal(catalog, card, need), param="model")
    fallbacks = tuple(s for s in plan.fallbacks if suitable(catalog, operation, s))
    if fallbacks != plan.fallbacks:
        plan = msgspec.structs.replace(plan, fallbacks=fallbacks)
    return plan, [s for s in models if suitable(catalog, operation, s)]


def _refusal(catalog: Catalog, card: ModelCard, need: Need) -> str:
    article = "an" if card.modality[:1] in "aeiou" else "a"
    why = f"Model '{card.id}' is {article} {card.modality} model ({', '.join(card.capabilities)})"
    if card.modality == need.modality:
        why += f" without {', '.join(sorted(need.capabilities - set(card.capabilities)))}"
    # The requested model's own provider first: the likeliest swap.
    options = sorted((c for c in catalog.listing(modality=need.modality).data if serves(c, need)),
                     key=lambda c: (c.provider != card.provider, c.id))
    if options:
        hint = "try " + ", ".join(c.id for c in options[:SUGGESTIONS])
    else:
        hint = "no enabled model on this gateway offers it"
    return f"{why}; {need.endpoint} needs {need.kind} ({need.modality}): {hint} (GET /v1/models lists them)."
