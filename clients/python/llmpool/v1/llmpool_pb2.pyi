from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_GOOD: _ClassVar[Verdict]
    VERDICT_BAD: _ClassVar[Verdict]

class CacheMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CACHE_MODE_DEFAULT: _ClassVar[CacheMode]
    CACHE_MODE_BYPASS: _ClassVar[CacheMode]
    CACHE_MODE_REFRESH: _ClassVar[CacheMode]
    CACHE_MODE_ONLY: _ClassVar[CacheMode]

class Strategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRATEGY_UNSPECIFIED: _ClassVar[Strategy]
    STRATEGY_FASTEST: _ClassVar[Strategy]
    STRATEGY_VOTING: _ClassVar[Strategy]
    STRATEGY_WEIGHTED: _ClassVar[Strategy]
    STRATEGY_CONSENSUS: _ClassVar[Strategy]
    STRATEGY_JUDGE: _ClassVar[Strategy]
    STRATEGY_CASCADE: _ClassVar[Strategy]
VERDICT_UNSPECIFIED: Verdict
VERDICT_GOOD: Verdict
VERDICT_BAD: Verdict
CACHE_MODE_DEFAULT: CacheMode
CACHE_MODE_BYPASS: CacheMode
CACHE_MODE_REFRESH: CacheMode
CACHE_MODE_ONLY: CacheMode
STRATEGY_UNSPECIFIED: Strategy
STRATEGY_FASTEST: Strategy
STRATEGY_VOTING: Strategy
STRATEGY_WEIGHTED: Strategy
STRATEGY_CONSENSUS: Strategy
STRATEGY_JUDGE: Strategy
STRATEGY_CASCADE: Strategy

class FeedbackRequest(_message.Message):
    __slots__ = ("request_id", "answer", "verdict")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    answer: str
    verdict: Verdict
    def __init__(self, request_id: _Optional[str] = ..., answer: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ...) -> None: ...

class GradedAnswer(_message.Message):
    __slots__ = ("provider", "answer", "credit_before", "credit", "accuracy", "evidence")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    CREDIT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    provider: str
    answer: str
    credit_before: float
    credit: float
    accuracy: float
    evidence: float
    def __init__(self, provider: _Optional[str] = ..., answer: _Optional[str] = ..., credit_before: _Optional[float] = ..., credit: _Optional[float] = ..., accuracy: _Optional[float] = ..., evidence: _Optional[float] = ...) -> None: ...

class FeedbackReply(_message.Message):
    __slots__ = ("request_id", "task", "answer", "graded")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    GRADED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    task: str
    answer: str
    graded: _containers.RepeatedCompositeFieldContainer[GradedAnswer]
    def __init__(self, request_id: _Optional[str] = ..., task: _Optional[str] = ..., answer: _Optional[str] = ..., graded: _Optional[_Iterable[_Union[GradedAnswer, _Mapping]]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("model", "input", "dimensions", "cache", "timeout_ms")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    model: str
    input: _containers.RepeatedScalarFieldContainer[str]
    dimensions: int
    cache: CacheMode
    timeout_ms: int
    def __init__(self, model: _Optional[str] = ..., input: _Optional[_Iterable[str]] = ..., dimensions: _Optional[int] = ..., cache: _Optional[_Union[CacheMode, str]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "provider", "model", "prompt_tokens", "cache_hit")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    provider: str
    model: str
    prompt_tokens: int
    cache_hit: bool
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., cache_hit: _Optional[bool] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content", "tool_calls", "tool_call_id", "name")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    tool_call_id: str
    name: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., tool_call_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Tool(_message.Message):
    __slots__ = ("name", "description", "parameters_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters_json: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters_json: _Optional[str] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("id", "name", "arguments_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    arguments_json: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., arguments_json: _Optional[str] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("task", "input", "messages", "variables", "strategy", "max_tokens", "temperature", "cache", "metadata", "model", "top_p", "seed", "stop", "timeout_ms", "n", "tools", "tool_choice", "response_schema_json", "top_k")
    class VariablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CHOICE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    task: str
    input: str
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    variables: _containers.ScalarMap[str, str]
    strategy: Strategy
    max_tokens: int
    temperature: float
    cache: CacheMode
    metadata: _containers.ScalarMap[str, str]
    model: str
    top_p: float
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    timeout_ms: int
    n: int
    tools: _containers.RepeatedCompositeFieldContainer[Tool]
    tool_choice: str
    response_schema_json: str
    top_k: int
    def __init__(self, task: _Optional[str] = ..., input: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., variables: _Optional[_Mapping[str, str]] = ..., strategy: _Optional[_Union[Strategy, str]] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., cache: _Optional[_Union[CacheMode, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., model: _Optional[str] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ..., timeout_ms: _Optional[int] = ..., n: _Optional[int] = ..., tools: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ..., tool_choice: _Optional[str] = ..., response_schema_json: _Optional[str] = ..., top_k: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("provider", "model", "endpoint", "status", "text", "latency_ms", "error", "usage", "hedged", "sample", "weight", "group", "accuracy", "evidence", "credit", "started_ms", "retries")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    HEDGED_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    STARTED_MS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    endpoint: str
    status: str
    text: str
    latency_ms: int
    error: str
    usage: Usage
    hedged: bool
    sample: int
    weight: float
    group: int
    accuracy: float
    evidence: float
    credit: float
    started_ms: int
    retries: int
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., endpoint: _Optional[str] = ..., status: _Optional[str] = ..., text: _Optional[str] = ..., latency_ms: _Optional[int] = ..., error: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., hedged: _Optional[bool] = ..., sample: _Optional[int] = ..., weight: _Optional[float] = ..., group: _Optional[int] = ..., accuracy: _Optional[float] = ..., evidence: _Optional[float] = ..., credit: _Optional[float] = ..., started_ms: _Optional[int] = ..., retries: _Optional[int] = ...) -> None: ...

class Group(_message.Message):
    __slots__ = ("answer", "members", "votes", "probability")
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    answer: str
    members: _containers.RepeatedScalarFieldContainer[int]
    votes: float
    probability: float
    def __init__(self, answer: _Optional[str] = ..., members: _Optional[_Iterable[int]] = ..., votes: _Optional[float] = ..., probability: _Optional[float] = ...) -> None: ...

class JudgeVerdict(_message.Message):
    __slots__ = ("provider", "seed", "order", "scores", "winner", "attempts", "errors")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: float
        def __init__(self, key: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    WINNER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    provider: str
    seed: int
    order: _containers.RepeatedScalarFieldContainer[int]
    scores: _containers.ScalarMap[int, float]
    winner: int
    attempts: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, provider: _Optional[str] = ..., seed: _Optional[int] = ..., order: _Optional[_Iterable[int]] = ..., scores: _Optional[_Mapping[int, float]] = ..., winner: _Optional[int] = ..., attempts: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class Tier(_message.Message):
    __slots__ = ("provider", "cost_per_1k_tokens", "accepted", "reason", "candidates")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    COST_PER_1K_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    provider: str
    cost_per_1k_tokens: float
    accepted: bool
    reason: str
    candidates: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, provider: _Optional[str] = ..., cost_per_1k_tokens: _Optional[float] = ..., accepted: _Optional[bool] = ..., reason: _Optional[str] = ..., candidates: _Optional[_Iterable[int]] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("strategy", "candidates", "votes", "winner", "agreement", "rationale", "fallbacks", "groups", "formula", "judge", "tiers", "total_usage", "confidence", "stopped", "degraded", "route")
    class VotesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    WINNER_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    FORMULA_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_USAGE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    strategy: Strategy
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    votes: _containers.ScalarMap[str, float]
    winner: str
    agreement: float
    rationale: str
    fallbacks: _containers.RepeatedScalarFieldContainer[str]
    groups: _containers.RepeatedCompositeFieldContainer[Group]
    formula: str
    judge: JudgeVerdict
    tiers: _containers.RepeatedCompositeFieldContainer[Tier]
    total_usage: Usage
    confidence: float
    stopped: str
    degraded: _containers.RepeatedScalarFieldContainer[str]
    route: RouteRecord
    def __init__(self, strategy: _Optional[_Union[Strategy, str]] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., votes: _Optional[_Mapping[str, float]] = ..., winner: _Optional[str] = ..., agreement: _Optional[float] = ..., rationale: _Optional[str] = ..., fallbacks: _Optional[_Iterable[str]] = ..., groups: _Optional[_Iterable[_Union[Group, _Mapping]]] = ..., formula: _Optional[str] = ..., judge: _Optional[_Union[JudgeVerdict, _Mapping]] = ..., tiers: _Optional[_Iterable[_Union[Tier, _Mapping]]] = ..., total_usage: _Optional[_Union[Usage, _Mapping]] = ..., confidence: _Optional[float] = ..., stopped: _Optional[str] = ..., degraded: _Optional[_Iterable[str]] = ..., route: _Optional[_Union[RouteRecord, _Mapping]] = ...) -> None: ...

class RouteRecord(_message.Message):
    __slots__ = ("router", "label", "confidence", "route", "task", "reason")
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    router: str
    label: str
    confidence: float
    route: str
    task: str
    reason: str
    def __init__(self, router: _Optional[str] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ..., route: _Optional[str] = ..., task: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Answer(_message.Message):
    __slots__ = ("text", "provider", "model", "usage", "latency_ms", "cache_hit", "decision", "finish_reason", "task", "request_id", "tool_calls", "reasoning", "top_k")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    text: str
    provider: str
    model: str
    usage: Usage
    latency_ms: int
    cache_hit: bool
    decision: Decision
    finish_reason: str
    task: str
    request_id: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    reasoning: str
    top_k: _containers.RepeatedCompositeFieldContainer[LabelProbability]
    def __init__(self, text: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., latency_ms: _Optional[int] = ..., cache_hit: _Optional[bool] = ..., decision: _Optional[_Union[Decision, _Mapping]] = ..., finish_reason: _Optional[str] = ..., task: _Optional[str] = ..., request_id: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., reasoning: _Optional[str] = ..., top_k: _Optional[_Iterable[_Union[LabelProbability, _Mapping]]] = ...) -> None: ...

class LabelProbability(_message.Message):
    __slots__ = ("label", "probability")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    label: str
    probability: float
    def __init__(self, label: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class StreamChunk(_message.Message):
    __slots__ = ("delta", "done", "answer", "tool_call", "reasoning")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    delta: str
    done: bool
    answer: Answer
    tool_call: ToolCall
    reasoning: str
    def __init__(self, delta: _Optional[str] = ..., done: _Optional[bool] = ..., answer: _Optional[_Union[Answer, _Mapping]] = ..., tool_call: _Optional[_Union[ToolCall, _Mapping]] = ..., reasoning: _Optional[str] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EndpointHealth(_message.Message):
    __slots__ = ("url", "state", "outstanding", "last_error", "breaker", "trips", "calls", "failures", "models")
    URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    TRIPS_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    url: str
    state: str
    outstanding: int
    last_error: str
    breaker: str
    trips: int
    calls: int
    failures: int
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, url: _Optional[str] = ..., state: _Optional[str] = ..., outstanding: _Optional[int] = ..., last_error: _Optional[str] = ..., breaker: _Optional[str] = ..., trips: _Optional[int] = ..., calls: _Optional[int] = ..., failures: _Optional[int] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

class ProviderHealth(_message.Message):
    __slots__ = ("name", "kind", "model", "endpoints")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    model: str
    endpoints: _containers.RepeatedCompositeFieldContainer[EndpointHealth]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., model: _Optional[str] = ..., endpoints: _Optional[_Iterable[_Union[EndpointHealth, _Mapping]]] = ...) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status", "providers", "config_version", "config_error")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ERROR_FIELD_NUMBER: _ClassVar[int]
    status: str
    providers: _containers.RepeatedCompositeFieldContainer[ProviderHealth]
    config_version: int
    config_error: str
    def __init__(self, status: _Optional[str] = ..., providers: _Optional[_Iterable[_Union[ProviderHealth, _Mapping]]] = ..., config_version: _Optional[int] = ..., config_error: _Optional[str] = ...) -> None: ...
