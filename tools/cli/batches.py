"""`switchboard batches create|get|cancel`: OpenAI-style batches from a local JSONL file."""

import argparse
from pathlib import Path

import msgspec

from libs.contracts.files import FileObject
from libs.contracts.http.batches import ENDPOINTS, TERMINAL, Batch, BatchCreate, InputLine
from tools.cli.context import Context
from tools.cli.exit_codes import FAILED, OK, USAGE, CliError
from tools.cli.gateway import parse, segment
from tools.cli.jobs import wait_options
from tools.cli.output import print_raw_json, status_text, table, when
from tools.cli.waiting import Progressed, wait_until

_decode_line = msgspec.json.Decoder(InputLine).decode


def _endpoint_of(path: Path) -> str:
    """The `url` of the file's first line, which every line must share; chat completions when the
    line does not say (the gateway reports a bad line by number)."""
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                try:
                    url = _decode_line(line).url
                except (msgspec.DecodeError, msgspec.ValidationError):
                    break
                return url if url in ENDPOINTS else ENDPOINTS[0]
    return ENDPOINTS[0]


def _metadata(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    metadata = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(USAGE, f"--metadata takes KEY=VALUE, got '{pair}'")
        metadata[name] = value
    return metadata


def show_batch(ctx: Context, batch: Batch) -> None:
    counts = batch.request_counts
    rows: list[tuple[str, object]] = [
        ("id", batch.id), ("status", status_text(batch.status)), ("endpoint", batch.endpoint), ("model", batch.model),
        ("requests", f"{counts.completed:,} completed, {counts.failed:,} failed, {counts.total:,} in all"),
        ("tokens", f"{batch.usage.input_tokens:,} in / {batch.usage.output_tokens:,} out"),
        ("input file", batch.input_file_id), ("output file", batch.output_file_id),
        ("error file", batch.error_file_id), ("created", when(batch.created_at)),
        ("completed", when(batch.completed_at) if batch.completed_at else None), ("metadata", batch.metadata)]
    for error in batch.errors.data if batch.errors else []:
        rows.append(("error", f"line {error.line}: {error.code}: {error.message}" if error.line else
                     f"{error.code}: {error.message}"))
    shown = table(("field", "value"), [row for row in rows if row[1] is not None])
    shown.show_header = False
    ctx.out.print(shown)


def _wait(ctx: Context, batch_id: str) -> tuple[bytes, Batch]:
    gateway, args = ctx.gateway(), ctx.args

    def fetch() -> tuple[bytes, Batch]:
        raw = gateway.request("GET", f"/batches/{segment(batch_id)}")
        return raw, parse(raw, Batch)

    def progress(answer: tuple[bytes, Batch]) -> Progressed:
        counts = answer[1].request_counts
        return Progressed(answer[1].status, counts.completed + counts.failed, counts.total or None)

    return wait_until(fetch, lambda answer: answer[1].status in TERMINAL, progress, f"batch {batch_id}", ctx.err,
                      args.timeout, args.interval)


def _create(ctx: Context) -> tuple[bytes, Batch]:
    args, gateway = ctx.args, ctx.gateway()
    path = Path(args.file)
    try:
        endpoint = args.endpoint or _endpoint_of(path)
        with path.open("rb") as data:
            uploaded = gateway.upload("/files", data, path.name, {"purpose": "batch"})
    except OSError as exc:
        raise CliError(USAGE, f"cannot read {path}: {exc.strerror or exc}") from exc
    file = parse(uploaded, FileObject)
    ctx.note(f"uploaded {path.name} as {file.id} ({file.bytes:,} bytes)")
    body = BatchCreate(input_file_id=file.id, endpoint=endpoint, metadata=_metadata(args.metadata))
    raw = gateway.request("POST", "/batches", body=body)
    return raw, parse(raw, Batch)


def run_batches(ctx: Context) -> int:
    args, gateway = ctx.args, ctx.gateway()
    if args.action == "create":
        raw, batch = _create(ctx)
        if args.wait:
            raw, batch = _wait(ctx, batch.id)
    elif args.action == "get":
        raw = gateway.request("GET", f"/batches/{segment(args.id)}")
        batch = parse(raw, Batch)
    else:
        raw = gateway.request("POST", f"/batches/{segment(args.id)}/cancel")
        batch = parse(raw, Batch)
    if ctx.json:
        print_raw_json(raw)
    else:
        show_batch(ctx, batch)
    if args.action == "create" and args.wait and batch.status != "completed":
        ctx.note(f"batch {batch.id} {batch.status}", style="red")
        return FAILED
    return OK


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
             common: argparse.ArgumentParser) -> None:
    batches = commands.add_parser("batches", help="batches of requests from a JSONL file",
                                  description="OpenAI-style batches: upload a JSONL file of requests, run them "
                                              "in the background, read the output file.")
    batches.set_defaults(run=run_batches)
    actions = batches.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[common], help="upload FILE and start a batch over it")
    create.add_argument("file", metavar="FILE", help="JSONL, one {custom_id, method, url, body} per line")
    create.add_argument("--endpoint", choices=ENDPOINTS, help="default: the url of the file's first line")
    create.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="repeatable")
    create.add_argument("--wait", action="store_true",
                        help="wait for it to finish with a progress bar; exit 1 unless it completed")
    wait_options(create, 3600)
    actions.add_parser("get", parents=[common], help="show a batch").add_argument("id", metavar="BATCH_ID")
    actions.add_parser("cancel", parents=[common], help="cancel a batch").add_argument("id", metavar="BATCH_ID")
