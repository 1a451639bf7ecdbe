"""Client (blocking) and AsyncClient (asyncio) over the generated stubs."""

from __future__ import annotations

import hashlib
import hmac as _hmac
import itertools
import os
import struct
import time
from typing import (
    AsyncIterator,
    Iterable,
    Iterator,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import grpc
import grpc.aio

from llmpool.v1 import llmpool_pb2 as pb
from llmpool.v1 import llmpool_pb2_grpc as pb_grpc

from .errors import LlmPoolError, Unavailable, from_rpc_error

SERVICE = "/llmpool.v1.LlmPool/"

Metadata = Tuple[Tuple[str, Union[str, bytes]], ...]


def sign(
    secret: bytes,
    method: str,
    path_and_query: str,
    timestamp: str,
    body: bytes,
    nonce: Optional[str] = None,
) -> str:
    """The hex HMAC-SHA256 the pool checks: method, path, timestamp, the body's SHA-256
    and (if any) the nonce, one per line."""
    lines = [method, path_and_query, timestamp, hashlib.sha256(body).hexdigest()]
    if nonce is not None:
        lines.append(nonce)
    return _hmac.new(secret, "\n".join(lines).encode(), hashlib.sha256).hexdigest()


def _target(address: str) -> Tuple[str, bool]:
    """`host:port` and whether TLS is asked for (`https://`)."""
    for scheme, tls in (("https://", True), ("http://", False)):
        if address.startswith(scheme):
            return address[len(scheme) :].rstrip("/"), tls
    return address, False


_STRATEGIES = {
    name[len("STRATEGY_") :].lower(): value
    for name, value in pb.Strategy.items()
    if name != "STRATEGY_UNSPECIFIED"
}


def query_request(
    task: str = "",
    input: str = "",
    *,
    messages: Optional[Sequence[Union[pb.ChatMessage, Mapping[str, str]]]] = None,
    variables: Optional[Mapping[str, str]] = None,
    strategy: Optional[str] = None,
    n: Optional[int] = None,
    model: str = "",
    **fields,
) -> pb.QueryRequest:
    """A QueryRequest from keyword arguments; `strategy` by name (`"voting"`), messages as
    dicts or ChatMessage; anything else is a QueryRequest field (`max_tokens`, `top_k`, ...)."""
    request = pb.QueryRequest(task=task, input=input, model=model, **fields)
    for m in messages or ():
        request.messages.append(m if isinstance(m, pb.ChatMessage) else pb.ChatMessage(**m))
    request.variables.update(variables or {})
    if strategy is not None:
        try:
            request.strategy = _STRATEGIES[strategy.lower()]
        except KeyError:
            raise ValueError(
                f"unknown strategy {strategy!r}: one of {', '.join(_STRATEGIES)}"
            ) from None
    if n is not None:
        request.n = n
    return request


class _Settings:
    """Address, credentials and deadline shared by both clients."""

    def __init__(
        self,
        address: str,
        *,
        api_key: Optional[str],
        jwt: Optional[str],
        hmac: Optional[Tuple[str, Union[str, bytes]]],
        priority: Optional[str],
        root_certificates: Optional[bytes],
        certificate_chain: Optional[bytes],
        private_key: Optional[bytes],
        timeout: Optional[float],
    ) -> None:
        if api_key is not None and jwt is not None:
            raise ValueError("give api_key or jwt, not both")
        self.target, tls = _target(address)
        tls = tls or root_certificates is not None or certificate_chain is not None
        self.credentials = (
            grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
            if tls
            else None
        )
        token = api_key if api_key is not None else jwt
        base = []
        if token is not None:
            base.append(("authorization", f"Bearer {token}"))
        if priority is not None:
            base.append(("x-llm-pool-priority", priority))
        self.base: Metadata = tuple(base)
        if hmac is not None:
            tenant, secret = hmac
            self.hmac = (tenant, secret.encode() if isinstance(secret, str) else secret)
        else:
            self.hmac = None
        self._nonces = itertools.count()
        self._nonce_prefix = os.urandom(8).hex()
        self.timeout = timeout

    def metadata(self, method: str, body: bytes) -> Metadata:
        """The call's metadata: the bearer credential, or an HMAC signature over `body`
        (the serialized message) framed as gRPC sends it."""
        if self.hmac is None:
            return self.base
        tenant, secret = self.hmac
        timestamp = str(int(time.time()))
        nonce = f"{self._nonce_prefix}-{next(self._nonces)}"
        framed = struct.pack(">BI", 0, len(body)) + body
        signature = sign(secret, "POST", SERVICE + method, timestamp, framed, nonce)
        return self.base + (
            ("x-llm-pool-tenant", tenant),
            ("x-llm-pool-timestamp", timestamp),
            ("x-llm-pool-nonce", nonce),
            ("x-llm-pool-signature", signature),
        )

    def deadline(self, timeout: Optional[float]) -> Optional[float]:
        return self.timeout if timeout is None else timeout


def _identity(b: bytes) -> bytes:
    return b


_REPLIES = {
    "Query": pb.Answer,
    "Health": pb.HealthResponse,
    "Embed": pb.EmbedResponse,
    "Feedback": pb.FeedbackReply,
}


def _methods(channel):
    """The five calls, taking the request already serialized (so that what is signed is
    byte for byte what is sent)."""
    calls = {
        name: channel.unary_unary(
            SERVICE + name, request_serializer=_identity, response_deserializer=reply.FromString
        )
        for name, reply in _REPLIES.items()
    }
    calls["StreamQuery"] = channel.unary_stream(
        SERVICE + "StreamQuery",
        request_serializer=_identity,
        response_deserializer=pb.StreamChunk.FromString,
    )
    return calls


def _error(e: grpc.RpcError) -> LlmPoolError:
    return from_rpc_error(e.code(), e.details(), e.trailing_metadata())


def _feedback_request(request_id: str, answer: Optional[str], good: Optional[bool]):
    if (answer is None) == (good is None):
        raise ValueError("give the right answer or a verdict (good=True/False), one of them")
    if answer is not None:
        return pb.FeedbackRequest(request_id=request_id, answer=answer)
    verdict = pb.VERDICT_GOOD if good else pb.VERDICT_BAD
    return pb.FeedbackRequest(request_id=request_id, verdict=verdict)


class _Base:
    """What both clients share: settings, channel, the generated stub and the calls."""

    def __init__(
        self,
        address: str = "127.0.0.1:7070",
        *,
        api_key: Optional[str] = None,
        jwt: Optional[str] = None,
        hmac: Optional[Tuple[str, Union[str, bytes]]] = None,
        priority: Optional[str] = None,
        root_certificates: Optional[bytes] = None,
        certificate_chain: Optional[bytes] = None,
        private_key: Optional[bytes] = None,
        timeout: Optional[float] = None,
        options: Iterable[Tuple[str, object]] = (),
    ) -> None:
        self._settings = _Settings(
            address,
            api_key=api_key,
            jwt=jwt,
            hmac=hmac,
            priority=priority,
            root_certificates=root_certificates,
            certificate_chain=certificate_chain,
            private_key=private_key,
            timeout=timeout,
        )
        s = self._settings
        self.channel = self._open(s.target, s.credentials, list(options))
        #: The generated stub, for calls this wrapper does not cover.
        self.stub = pb_grpc.LlmPoolStub(self.channel)
        self._calls = _methods(self.channel)

    @staticmethod
    def _open(target, credentials, options):
        raise NotImplementedError


class Client(_Base):
    """A blocking client of a pool's gRPC listener, over one reused connection.

    >>> with Client("127.0.0.1:7070", api_key="...", timeout=30) as pool:
    ...     answer = pool.query("classify_domain", "billing is down")
    ...     print(answer.text, answer.decision.winner)

    `address` is `host:port`, `http://host:port` or `https://host:port` (TLS with the
    public roots, or `root_certificates`). Credentials: `api_key`, `jwt`, or
    `hmac=(tenant, secret)` (each call signed). `timeout` (seconds) is every call's
    deadline; each method's `timeout` overrides it for that call. Failures raise
    :class:`llm_pool_client.LlmPoolError` subclasses.
    """

    @staticmethod
    def _open(target, credentials, options):
        if credentials:
            return grpc.secure_channel(target, credentials, options)
        return grpc.insecure_channel(target, options)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _unary(self, method: str, request, timeout: Optional[float]):
        body = request.SerializeToString()
        try:
            return self._calls[method](
                body,
                timeout=self._settings.deadline(timeout),
                metadata=self._settings.metadata(method, body),
            )
        except grpc.RpcError as e:
            raise _error(e) from None

    def query(self, task: str = "", input: str = "", *, timeout: Optional[float] = None, **fields) -> pb.Answer:
        """One whole answer with its Decision. Fields as :func:`query_request` takes them,
        or `request=` a ready QueryRequest."""
        request = fields.pop("request", None) or query_request(task, input, **fields)
        return self._unary("Query", request, timeout)

    def stream(
        self, task: str = "", input: str = "", *, timeout: Optional[float] = None, **fields
    ) -> Iterator[pb.StreamChunk]:
        """The answer in pieces; the last chunk (`done`) carries the whole Answer. A
        stream cut short raises: it is never a shorter answer."""
        request = fields.pop("request", None) or query_request(task, input, **fields)
        body = request.SerializeToString()
        try:
            call = self._calls["StreamQuery"](
                body,
                timeout=self._settings.deadline(timeout),
                metadata=self._settings.metadata("StreamQuery", body),
            )
            done = False
            for chunk in call:
                done = done or chunk.done
                yield chunk
        except grpc.RpcError as e:
            raise _error(e) from None
        if not done:
            raise Unavailable(grpc.StatusCode.UNAVAILABLE, "the stream ended without its last chunk")

    def health(self, *, timeout: Optional[float] = None) -> pb.HealthResponse:
        """Providers, endpoints and breaker states."""
        return self._unary("Health", pb.HealthRequest(), timeout)

    def embed(
        self, model: str, inputs: Sequence[str], *, timeout: Optional[float] = None, **fields
    ) -> pb.EmbedResponse:
        """Embeddings of `inputs` by `model` (a provider, `task:NAME` or an alias)."""
        return self._unary("Embed", pb.EmbedRequest(model=model, input=list(inputs), **fields), timeout)

    def feedback(
        self,
        request_id: str,
        *,
        answer: Optional[str] = None,
        good: Optional[bool] = None,
        timeout: Optional[float] = None,
    ) -> pb.FeedbackReply:
        """The right answer to an earlier request (`answer=`), or a verdict on the one
        returned (`good=True/False`): the pool regrades its providers on the task."""
        return self._unary("Feedback", _feedback_request(request_id, answer, good), timeout)


class AsyncClient(_Base):
    """The asyncio twin of :class:`Client` (same arguments, `await`ed calls).

    >>> async with AsyncClient("127.0.0.1:7070") as pool:
    ...     answer = await pool.query("chat", "hi")
    ...     async for chunk in pool.stream("chat", "a story"):
    ...         print(chunk.delta, end="")
    """

    @staticmethod
    def _open(target, credentials, options):
        if credentials:
            return grpc.aio.secure_channel(target, credentials, options)
        return grpc.aio.insecure_channel(target, options)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def _unary(self, method: str, request, timeout: Optional[float]):
        body = request.SerializeToString()
        try:
            return await self._calls[method](
                body,
                timeout=self._settings.deadline(timeout),
                metadata=self._settings.metadata(method, body),
            )
        except grpc.RpcError as e:
            raise _error(e) from None

    async def query(self, task: str = "", input: str = "", *, timeout: Optional[float] = None, **fields) -> pb.Answer:
        request = fields.pop("request", None) or query_request(task, input, **fields)
        return await self._unary("Query", request, timeout)

    async def stream(
        self, task: str = "", input: str = "", *, timeout: Optional[float] = None, **fields
    ) -> AsyncIterator[pb.StreamChunk]:
        request = fields.pop("request", None) or query_request(task, input, **fields)
        body = request.SerializeToString()
        done = False
        try:
            call = self._calls["StreamQuery"](
                body,
                timeout=self._settings.deadline(timeout),
                metadata=self._settings.metadata("StreamQuery", body),
            )
            async for chunk in call:
                done = done or chunk.done
                yield chunk
        except grpc.RpcError as e:
            raise _error(e) from None
        if not done:
            raise Unavailable(grpc.StatusCode.UNAVAILABLE, "the stream ended without its last chunk")

    async def health(self, *, timeout: Optional[float] = None) -> pb.HealthResponse:
        return await self._unary("Health", pb.HealthRequest(), timeout)

    async def embed(
        self, model: str, inputs: Sequence[str], *, timeout: Optional[float] = None, **fields
    ) -> pb.EmbedResponse:
        return await self._unary("Embed", pb.EmbedRequest(model=model, input=list(inputs), **fields), timeout)

    async def feedback(
        self,
        request_id: str,
        *,
        answer: Optional[str] = None,
        good: Optional[bool] = None,
        timeout: Optional[float] = None,
    ) -> pb.FeedbackReply:
        return await self._unary("Feedback", _feedback_request(request_id, answer, good), timeout)
