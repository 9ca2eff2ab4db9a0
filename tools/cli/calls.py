"""`switchboard call` (a chat completion, streamed to the terminal) and `switchboard models`."""

import argparse
import sys

import msgspec

from libs.contracts.errors import ErrorBody
from libs.contracts.http.chat import ChatCompletionRequest, ChatMessage, StreamOptions
from libs.contracts.http.meta import ResponseMeta
from libs.contracts.http.models import ModelCard, ModelList
from tools.cli.context import Context
from tools.cli.exit_codes import FAILED, OK, USAGE, CliError
from tools.cli.gateway import parse, sse_events
from tools.cli.output import ms, print_json, print_raw_json, table, usd


class _Delta(msgspec.Struct):
    content: str | None = None


class _ChunkChoice(msgspec.Struct):
    delta: _Delta = msgspec.field(default_factory=_Delta)


class _Chunk(msgspec.Struct):
    """What `call` reads of a stream chunk: the text, the final `meta`, or an error event."""

    choices: list[_ChunkChoice] = []
    meta: ResponseMeta | None = None
    error: ErrorBody | None = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


def _prompt(args: argparse.Namespace) -> str:
    prompt: str = args.prompt
    if prompt == "-":
        prompt = sys.stdin.read().rstrip("\n")  # the newline `echo` and editors end a file with
    if not prompt.strip():
        raise CliError(USAGE, "the prompt is empty")
    return prompt


def _body(args: argparse.Namespace, stream: bool) -> ChatCompletionRequest:
    messages = [ChatMessage(role="system", content=args.system)] if args.system else []
    messages.append(ChatMessage(role="user", content=_prompt(args)))
    return ChatCompletionRequest(
        messages=messages, model=args.model, max_tokens=args.max_tokens, temperature=args.temperature,
        stream=True if stream else None, stream_options=StreamOptions(include_usage=True) if stream else None)


def _summary(ctx: Context, meta: ResponseMeta | None) -> None:
    if meta is None:
        return
    ctx.note(f"{meta.model} via {meta.provider} · {meta.usage.input_units} in / {meta.usage.output_units} out · "
             f"{usd(meta.cost.total_micros)} · {ms(meta.timing.total_latency_ms)} · request {meta.request_id}")


def run_call(ctx: Context) -> int:
    args = ctx.args
    gateway = ctx.gateway()
    headers = {"x-aig-tag": args.tag} if args.tag else None
    if ctx.json:
        raw = gateway.request("POST", "/chat/completions", body=_body(args, stream=False), headers=headers)
        print_raw_json(raw)
        return OK
    meta: ResponseMeta | None = None
    with gateway.stream("POST", "/chat/completions", body=_body(args, stream=True), headers=headers) as response:
        for event in sse_events(response):
            if event.data == "[DONE]":
                break
            try:
                chunk = _decode_chunk(event.data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # a chunk shape this CLI does not know carries no text it could print
            if chunk.error is not None:
                sys.stdout.write("\n")
                raise CliError(FAILED, chunk.error.message)
            for choice in chunk.choices:
                if choice.delta.content:
                    sys.stdout.write(choice.delta.content)
                    sys.stdout.flush()
            meta = chunk.meta or meta
    sys.stdout.write("\n")
    sys.stdout.flush()
    _summary(ctx, meta)
    return OK


def _matches(card: ModelCard, needle: str) -> bool:
    haystack = " ".join([card.id, card.provider, card.upstream_model, card.modality, *card.capabilities]).lower()
    return all(word in haystack for word in needle.lower().split())


def _per_mtok(value: float | None) -> str:
    return "-" if value is None else "$" + f"{value:,.4f}".rstrip("0").rstrip(".")


def run_models(ctx: Context) -> int:
    args = ctx.args
    params = {name: value for name, value in (("modality", args.modality), ("provider", args.provider)) if value}
    raw = ctx.gateway().request("GET", "/models", params=params)
    models = parse(raw, ModelList)
    if args.search:
        models = ModelList(data=[card for card in models.data if _matches(card, args.search)])
    if ctx.json:
        print_json(models) if args.search else print_raw_json(raw)
        return OK
    rows = [(card.id, card.provider, card.modality, card.context_window,
             _per_mtok(card.pricing.input_per_mtok if card.pricing else None),
             _per_mtok(card.pricing.output_per_mtok if card.pricing else None),
             ", ".join(card.capabilities)) for card in models.data]
    ctx.out.print(table(("model", "provider", "modality", "context", "in $/M", "out $/M", "capabilities"), rows,
                        title=f"models: {len(rows)}", numeric=("context", "in $/M", "out $/M")))
    return OK


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
             common: argparse.ArgumentParser) -> None:
    call = commands.add_parser("call", parents=[common], help="send a prompt to a model; the answer streams in",
                               description="Send PROMPT to MODEL as a chat completion and stream the answer. "
                                           "With --json, wait for it and print the whole response.")
    call.add_argument("model", metavar="MODEL", help="a model id from `switchboard models` (or auto)")
    call.add_argument("prompt", metavar="PROMPT", help="the user message; - reads it from stdin")
    call.add_argument("--system", help="a system message before the prompt")
    call.add_argument("--max-tokens", type=int, metavar="N")
    call.add_argument("--temperature", type=float, metavar="T")
    call.add_argument("--tag", help="attribute the request to this tag (x-aig-tag) in usage reports")
    call.set_defaults(run=run_call)

    models = commands.add_parser("models", parents=[common], help="list the model catalog",
                                 description="List the models the gateway serves, with prices per million units.")
    models.add_argument("--modality", help="only this modality (text, image, embedding, video, ...)")
    models.add_argument("--provider", help="only this provider")
    models.add_argument("--search", metavar="WORDS", help="only models whose id, provider or capabilities "
                                                          "contain every word")
    models.set_defaults(run=run_models)

