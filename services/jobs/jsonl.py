"""JSON Lines read from a byte stream (batch input files, eval dataset files)."""

from collections.abc import AsyncIterator


async def split_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The stream's lines without their newlines; memory stays at one line plus one chunk."""
    pending = bytearray()
    async for piece in chunks:
        pending += piece
        start = 0
        while (end := pending.find(b"\n", start)) != -1:
            yield bytes(pending[start:end])
            start = end + 1
        del pending[:start]
    if pending:
        yield bytes(pending)


async def numbered(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """(1-based line number, line) for the non-blank lines: a trailing newline is no line."""
    line_no = 0
    async for raw in split_lines(chunks):
        line_no += 1
        if raw.strip():
            yield line_no, raw
