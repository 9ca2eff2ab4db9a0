"""The edge's part of the Responses surface: its own `error` event continues the numbering of the
events the router already sent (ResponseErrorEvent requires `sequence_number`)."""

from services.edge.surfaces import next_sequence_number


def _event(kind: str, data: str) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + data.encode() + b"\n\n"


def test_nothing_sent_yet_starts_at_zero() -> None:
    assert next_sequence_number(b"") == 0


def test_the_number_after_the_last_event_of_the_chunk() -> None:
    sent = (_event("response.output_text.delta", '{"type":"response.output_text.delta","sequence_number":4}')
            + _event("response.output_text.delta", '{"type":"response.output_text.delta","sequence_number":5}'))
    assert next_sequence_number(sent) == 6


def test_text_that_looks_like_an_event_does_not_count() -> None:
    # JSON keeps a newline escaped, so "\ndata: " inside a delta cannot start a line.
    tricky = '{"type":"response.output_text.delta","sequence_number":7,"delta":"x\\ndata: {\\"sequence_number\\":99}"}'
    assert next_sequence_number(_event("response.output_text.delta", tricky)) == 8


def test_a_chunk_without_a_number_starts_at_zero() -> None:
    assert next_sequence_number(b'data: {"object":"chat.completion.chunk"}\n\n') == 0
    assert next_sequence_number(_event("x", "not json")) == 0
