"""What the file routes share: the file store (records + blobs) and the URL signer, made at
startup from the edge's NATS connection and blob store."""

from aiohttp import web
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from libs.contracts import subjects
from libs.runtime.files import FileStore
from services.edge.signed_urls import UrlSigner, load_key
from services.edge.state import EDGE


class FilesState:
    """Registered with the routes (before the app is frozen), filled in by `start`."""

    def __init__(self) -> None:
        self._store: FileStore | None = None
        self._signer: UrlSigner | None = None
        self._jobs_kv: KeyValue | None = None
        self._js: JetStreamContext | None = None

    @property
    def store(self) -> FileStore:
        assert self._store is not None, "file routes used before startup"
        return self._store

    @property
    def signer(self) -> UrlSigner:
        assert self._signer is not None, "file routes used before startup"
        return self._signer

    async def start(self, app: web.Application) -> None:
        state = app[EDGE]
        self._js = js = state.nc.jetstream()
        self._store = await FileStore.open(js, state.blobs)
        self._signer = UrlSigner(await load_key(js, state.settings.url_signing_key))

    async def jobs_kv(self) -> KeyValue | None:
        """KV `sb_jobs`, or None until the jobs service has made it (it owns the bucket's settings)."""
        if self._jobs_kv is None and self._js is not None:
            try:
                self._jobs_kv = await self._js.key_value(subjects.KV_JOBS)
            except BucketNotFoundError:
                return None
        return self._jobs_kv


FILES = web.AppKey("files", FilesState)


def install(app: web.Application) -> FilesState:
    if FILES not in app:
        app[FILES] = FilesState()
        app.on_startup.append(app[FILES].start)
    return app[FILES]
