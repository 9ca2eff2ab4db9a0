"""tools/cli/gateway.py and output.py: URLs, error messages, SSE parsing, money on screen."""

import io

import pytest

from tools.cli.exit_codes import FAILED, USAGE, CliError
from tools.cli.gateway import Gateway, SseEvent, api_error, api_root, checked_key, segment, sse_events
from tools.cli.output import usd


@pytest.mark.parametrize(("given", "root"), [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1"), ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1"),
    ("http://h/v1", "http://h/v1"), ("https://h/v1/", "https://h/v1"), (" http://h/gw ", "http://h/gw/v1"),
])
def test_the_api_root_with_or_without_v1(given: str, root: str) -> None:
    assert api_root(given) == root


@pytest.mark.parametrize("url", ["ftp://h/v1", "localhost:8080", "http://", "not a url", "http://h:port/v1",
                                 "http://[::1/v1"])
def test_a_url_that_is_no_gateway_is_a_usage_error(url: str) -> None:
    with pytest.raises(CliError) as failed:
        Gateway(url, "sk-aig-x")
    assert failed.value.code == USAGE


@pytest.mark.parametrize("key", ["", "sk aig", "sk-\n", "sk-à"])
def test_a_key_no_header_can_carry_is_a_usage_error(key: str) -> None:
    with pytest.raises(CliError) as failed:
        checked_key(key)
    assert failed.value.code == USAGE


def test_the_gateway_message_is_taken_from_its_envelope() -> None:
    body = b'{"error":{"message":"No job with id \'x\'.","type":"invalid_request_error","code":404,"param":"id"}}'
    error = api_error(404, body)
    assert (error.code, error.message, error.body, error.status) == (FAILED, "No job with id 'x'.", body, 404)
    proxy = api_error(502, b"<html>Bad Gateway</html>")
    assert proxy.message == "HTTP 502: <html>Bad Gateway</html>" and proxy.body is None
    assert api_error(500, b"").message == "HTTP 500"


@pytest.mark.parametrize(("value", "encoded"), [("job_1", "job_1"), ("a/../b", "a%2F..%2Fb"), ("à", "%C3%A0"),
                                               ("a.b", "a.b"), ("*", "%2A"), (">", "%3E")])
def test_ids_become_one_path_segment(value: str, encoded: str) -> None:
    assert segment(value) == encoded


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_ids_that_would_move_up_the_path_are_refused(value: str) -> None:
    with pytest.raises(CliError):
        segment(value)


def test_sse_events_are_parsed_as_the_spec_says() -> None:
    stream = (b": keep-alive\n\nevent: ready\ndata: {\"a\":1}\n\ndata: line1\ndata: line2\n\n"
              b"id: 7\nretry: 10\ndata:nospace\n\nevent: last\ndata: end")
    events = list(sse_events(io.BytesIO(stream.replace(b"data: line2\n", b"data: line2\r\n"))))
    assert events == [SseEvent("ready", '{"a":1}'), SseEvent("message", "line1\nline2"),
                      SseEvent("message", "nospace"), SseEvent("last", "end")]


@pytest.mark.parametrize(("micros", "shown"), [(0, "$0.00"), (12, "$0.000012"), (1_500_000, "$1.50"),
                                               (1_234_567, "$1.234567"), (2_000_000_000, "$2,000.00"),
                                               (-5, "-$0.000005")])
def test_money_is_exact_to_the_micro_dollar(micros: int, shown: str) -> None:
    assert usd(micros) == shown
