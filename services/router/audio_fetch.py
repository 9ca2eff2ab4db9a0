"""Transcriptions by URL (`{"model", "audio_url"}`): fetch the audio and turn the
request into the multipart upload every speech-to-text API takes.

The gateway fetching a URL a client names must not become a way into the
network it runs in: only public addresses are fetched (checked on the address
actually connected to, through the connector's resolver, so a DNS answer cannot
switch it after the check), redirects are not followed, and the download is
capped. SWITCHBOARD_FETCH_PRIVATE_URLS=1 lifts the address rule for
deployments whose audio lives on a private network (and for tests).
"""

import ipaddress
import secrets
import socket
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from libs.contracts.bus.inference import InferenceRequest
from libs.contracts.http.modalities import AudioUrlRequest

MAX_AUDIO_BYTES = 25 * 1024 * 1024  # OpenAI's own upload limit
_decode = msgspec.json.Decoder(AudioUrlRequest).decode


class FetchError(Exception):
    """The audio could not be fetched: the client's 400, naming audio_url."""


def public(address: str) -> bool:
    return ipaddress.ip_address(address.split("%", 1)[0]).is_global


class _PrivateAddress(OSError):
    """Raised by the resolver; aiohttp wraps it in a ClientConnectorError."""


class _PublicResolver(AbstractResolver):
    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        found = [r for r in await self._inner.resolve(host, port, family) if public(r["host"])]
        if not found:
            raise _PrivateAddress(f"{host} does not resolve to a public address")
        return found

    async def close(self) -> None:
        await self._inner.close()


def _form(fields: list[tuple[str, str]], filename: str, media_type: str, audio: bytes) -> tuple[bytes, str]:
    boundary = f"sb-{secrets.token_hex(16)}"
    out = bytearray()
    for name, value in fields:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n').encode()
    safe_name = filename.replace('"', "").replace("\r", "").replace("\n", "") or "audio"
    out += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
            f"Content-Type: {media_type}\r\n\r\n").encode()
    out += audio + f"\r\n--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


class AudioFetcher:
    def __init__(self, allow_private: bool, timeout_s: float = 30.0) -> None:
        self._allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        resolver: Any = None if self._allow_private else _PublicResolver()
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver),
                                              timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def as_form(self, request: InferenceRequest) -> InferenceRequest:
        """`request` with its JSON body replaced by a multipart form carrying the fetched audio."""
        parsed = _decode(request.body)  # validated at the edge
        audio, media_type = await self._fetch(parsed.audio_url)
        fields = [("model", parsed.model)] + [
            (name, str(value)) for name in ("language", "prompt", "response_format", "temperature")
            if (value := getattr(parsed, name)) is not None]
        body, content_type = _form(fields, PurePosixPath(urlsplit(parsed.audio_url).path).name, media_type, audio)
        return msgspec.structs.replace(request, body=body, content_type=content_type)

    async def _fetch(self, url: str) -> tuple[bytes, str]:
        assert self._session is not None
        host = urlsplit(url).hostname or ""
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None  # a name: the resolver checks what it resolves to
        if literal is not None and not self._allow_private and not literal.is_global:
            raise FetchError(f"audio_url points at a private address ({host}); only public URLs are fetched.")
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise FetchError(f"Fetching audio_url answered HTTP {response.status}"
                                     + (" (a redirect; give the final URL)" if 300 <= response.status < 400 else "")
                                     + ".")
                if (response.content_length or 0) > MAX_AUDIO_BYTES:
                    raise FetchError(f"The audio at audio_url is over {MAX_AUDIO_BYTES // (1024 * 1024)} MiB.")
                audio = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    audio += chunk
                    if len(audio) > MAX_AUDIO_BYTES:
                        raise FetchError(f"The audio at audio_url is over {MAX_AUDIO_BYTES // (1024 * 1024)} MiB.")
                return bytes(audio), response.content_type or "application/octet-stream"
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, _PrivateAddress):
                raise FetchError(f"audio_url's host {host} is not a public address; only public URLs are "
                                 "fetched.") from exc
            raise FetchError(f"audio_url could not be fetched: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise FetchError(f"audio_url could not be fetched: {exc}") from exc
