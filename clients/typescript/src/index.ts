// A typed client of llm-pool over gRPC (`llmpool.v1.LlmPool`), on @connectrpc/connect's
// gRPC transport for Node: one HTTP/2 connection, a deadline per call, TLS (with a client
// certificate when the pool asks), and the caller's credentials sent for it: an API key, a
// JWT, or an HMAC signature made per call. Failures are `LlmPoolError` subclasses by error
// class, with the pool's Decision when it made one.

import { createHmac, createHash, randomBytes } from "node:crypto";

import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type Client as ConnectClient,
  type Interceptor,
} from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";

import {
  type Answer,
  type Decision,
  DecisionSchema,
  EmbedRequestSchema,
  type EmbedResponse,
  type FeedbackReply,
  FeedbackRequestSchema,
  HealthRequestSchema,
  type HealthResponse,
  LlmPool,
  type QueryRequest,
  QueryRequestSchema,
  type StreamChunk,
  Strategy,
  Verdict,
} from "./gen/llmpool/v1/llmpool_pb.js";

export * from "./gen/llmpool/v1/llmpool_pb.js";

export interface ClientOptions {
  /** API key, sent as `authorization: Bearer <key>`. */
  apiKey?: string;
  /** A JWT from the caller's issuer, sent as `authorization: Bearer <token>`. */
  jwt?: string;
  /** Sign every call with HMAC-SHA256 as this tenant (instead of a bearer credential). */
  hmac?: { tenant: string; secret: string | Uint8Array };
  /** The priority class every call asks for. */
  priority?: string;
  /** TLS: the CA (PEM) of the pool's certificate; `https://` addresses use TLS anyway. */
  ca?: string | Buffer;
  /** Mutual TLS: the client certificate and its key (PEM). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** The deadline of every call, in milliseconds (each call's `timeoutMs` wins). */
  timeoutMs?: number;
}

export type StrategyName = "fastest" | "voting" | "weighted" | "consensus" | "judge" | "cascade";

/** Everything a QueryRequest can carry besides task and input; `strategy` also by name. */
export type QueryOptions = Omit<
  Exclude<MessageInitShape<typeof QueryRequestSchema>, QueryRequest>,
  "task" | "input" | "strategy" | "timeoutMs" | "$typeName"
> & {
  strategy?: Strategy | StrategyName;
  /** This call's deadline in milliseconds. */
  timeoutMs?: number;
};

/** A call the pool answered with an error, or that could not be made. */
export class LlmPoolError extends Error {
  constructor(
    /** The gRPC code (`Code.NotFound`, ...). */
    readonly code: Code,
    /** The pool's message. */
    readonly rawMessage: string,
    /** The Decision with every candidate, when the pool made one before failing. */
    readonly decision?: Decision,
    /** Seconds to wait before trying again (rate limited, overloaded). */
    readonly retryAfter?: number,
  ) {
    super(`${Code[code]}: ${rawMessage}`);
    this.name = new.target.name;
  }
}
/** The request is wrong (a field, a size, a strategy the task does not allow). */
export class InvalidArgument extends LlmPoolError {}
/** No such task, provider or request id. */
export class NotFound extends LlmPoolError {}
/** Missing or wrong credentials. */
export class Unauthenticated extends LlmPoolError {}
/** The tenant may not use this task, provider or priority. */
export class PermissionDenied extends LlmPoolError {}
/** Rate limited or overloaded: wait `retryAfter` seconds. */
export class RateLimited extends LlmPoolError {}
/** No provider could answer, or the pool cannot be reached. */
export class Unavailable extends LlmPoolError {}
/** The deadline passed before an answer was ready. */
export class DeadlineExceeded extends LlmPoolError {}
/** The ensemble did not agree (or was not confident enough) and said so. */
export class NoConsensus extends LlmPoolError {}
/** Every answer failed the task's output checks (labels, JSON schema, tools). */
export class InvalidAnswer extends LlmPoolError {}

const BY_CODE: Partial<Record<Code, typeof LlmPoolError>> = {
  [Code.InvalidArgument]: InvalidArgument,
  [Code.OutOfRange]: InvalidArgument,
  [Code.NotFound]: NotFound,
  [Code.Unauthenticated]: Unauthenticated,
  [Code.PermissionDenied]: PermissionDenied,
  [Code.ResourceExhausted]: RateLimited,
  [Code.Unavailable]: Unavailable,
  [Code.DeadlineExceeded]: DeadlineExceeded,
  [Code.Aborted]: NoConsensus,
  [Code.FailedPrecondition]: InvalidAnswer,
};

/** The exception for a failed call (anything not a ConnectError is passed through). */
export function toLlmPoolError(e: unknown): unknown {
  if (!(e instanceof ConnectError)) return e;
  const decision = e.findDetails(DecisionSchema)[0];
  const retry = e.metadata.get("retry-after");
  const Class = BY_CODE[e.code] ?? LlmPoolError;
  return new Class(e.code, e.rawMessage, decision, retry ? Number(retry) : undefined);
}

/**
 * The hex HMAC-SHA256 the pool checks: method, path, timestamp, the body's SHA-256 and
 * (if any) the nonce, one per line.
 */
export function sign(
  secret: string | Uint8Array,
  method: string,
  pathAndQuery: string,
  timestamp: string,
  body: Uint8Array,
  nonce?: string,
): string {
  const lines = [method, pathAndQuery, timestamp, createHash("sha256").update(body).digest("hex")];
  if (nonce !== undefined) lines.push(nonce);
  return createHmac("sha256", secret).update(lines.join("\n")).digest("hex");
}

/** Signs each call: the one request message, framed as gRPC sends it uncompressed. */
function signer(tenant: string, secret: string | Uint8Array): Interceptor {
  const prefix = randomBytes(8).toString("hex");
  let counter = 0;
  return (next) => async (req) => {
    let message;
    if (req.stream) {
      // Every LlmPool call sends exactly one message, streamed calls included.
      const messages = [];
      for await (const m of req.message) messages.push(m);
      if (messages.length !== 1) throw new ConnectError("one request message", Code.Internal);
      message = messages[0];
      req = {
        ...req,
        message: (async function* () {
          yield message;
        })(),
      };
    } else {
      message = req.message;
    }
    const bytes = toBinary(req.method.input, message);
    const framed = new Uint8Array(5 + bytes.length);
    new DataView(framed.buffer).setUint32(1, bytes.length);
    framed.set(bytes, 5);
    const timestamp = String(Math.floor(Date.now() / 1000));
    const nonce = `${prefix}-${counter++}`;
    const path = new URL(req.url).pathname;
    req.header.set("x-llm-pool-tenant", tenant);
    req.header.set("x-llm-pool-timestamp", timestamp);
    req.header.set("x-llm-pool-nonce", nonce);
    req.header.set("x-llm-pool-signature", sign(secret, "POST", path, timestamp, framed, nonce));
    return next(req);
  };
}

/**
 * A client of a pool's gRPC listener (`http://127.0.0.1:7070`, `https://pool:7070`).
 *
 * ```ts
 * const pool = new Client("http://127.0.0.1:7070", { apiKey: "...", timeoutMs: 30_000 });
 * const answer = await pool.query("classify_domain", "billing is down");
 * console.log(answer.text, answer.decision?.winner);
 * pool.close();
 * ```
 */
export class Client {
  /** The generated service's client, for calls this wrapper does not cover. */
  readonly raw: ConnectClient<typeof LlmPool>;
  private readonly sessions: Http2SessionManager;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs?: number;

  constructor(address = "http://127.0.0.1:7070", options: ClientOptions = {}) {
    if (options.apiKey !== undefined && options.jwt !== undefined) {
      throw new Error("give apiKey or jwt, not both");
    }
    const tls = address.startsWith("https://") || options.ca !== undefined || options.cert !== undefined;
    const baseUrl = tls ? address.replace(/^http:\/\//, "https://") : address;
    this.sessions = new Http2SessionManager(
      baseUrl,
      {},
      tls ? { ca: options.ca, cert: options.cert, key: options.key } : {},
    );
    const interceptors = options.hmac ? [signer(options.hmac.tenant, options.hmac.secret)] : [];
    const transport = createGrpcTransport({ baseUrl, sessionManager: this.sessions, interceptors });
    this.raw = createClient(LlmPool, transport);
    const token = options.apiKey ?? options.jwt;
    this.headers = {};
    if (token !== undefined) this.headers["authorization"] = `Bearer ${token}`;
    if (options.priority !== undefined) this.headers["x-llm-pool-priority"] = options.priority;
    this.timeoutMs = options.timeoutMs;
  }

  /** Closes the connection; calls after this fail. */
  close(): void {
    this.sessions.abort();
  }

  private call(timeoutMs?: number) {
    return { headers: this.headers, timeoutMs: timeoutMs ?? this.timeoutMs };
  }

  private static request(task: string, input: string, options: QueryOptions) {
    const { timeoutMs: _, strategy, ...fields } = options;
    let s: Strategy | undefined;
    if (typeof strategy === "string") {
      s = Strategy[strategy.toUpperCase() as keyof typeof Strategy];
      if (s === undefined) throw new InvalidArgument(Code.InvalidArgument, `unknown strategy ${strategy}`);
    } else {
      s = strategy;
    }
    return create(QueryRequestSchema, { ...fields, task, input, strategy: s });
  }

  /** One whole answer with its Decision. */
  async query(task: string, input = "", options: QueryOptions = {}): Promise<Answer> {
    const request = Client.request(task, input, options);
    try {
      return await this.raw.query(request, this.call(options.timeoutMs));
    } catch (e) {
      throw toLlmPoolError(e);
    }
  }

  /**
   * The answer in pieces; the last chunk (`done`) carries the whole Answer. A stream cut
   * short throws: it is never a shorter answer.
   */
  async *stream(task: string, input = "", options: QueryOptions = {}): AsyncGenerator<StreamChunk> {
    const request = Client.request(task, input, options);
    let done = false;
    try {
      for await (const chunk of this.raw.streamQuery(request, this.call(options.timeoutMs))) {
        done ||= chunk.done;
        yield chunk;
      }
    } catch (e) {
      throw toLlmPoolError(e);
    }
    if (!done) throw new Unavailable(Code.Unavailable, "the stream ended without its last chunk");
  }

  /** Providers, endpoints and breaker states. */
  async health(options: { timeoutMs?: number } = {}): Promise<HealthResponse> {
    try {
      return await this.raw.health(create(HealthRequestSchema), this.call(options.timeoutMs));
    } catch (e) {
      throw toLlmPoolError(e);
    }
  }

  /** Embeddings of `inputs` by `model` (a provider, `task:NAME` or an alias). */
  async embed(model: string, inputs: string[], options: { timeoutMs?: number } = {}): Promise<EmbedResponse> {
    try {
      return await this.raw.embed(
        create(EmbedRequestSchema, { model, input: inputs }),
        this.call(options.timeoutMs),
      );
    } catch (e) {
      throw toLlmPoolError(e);
    }
  }

  /**
   * The right answer to an earlier request (`{ answer }`), or a verdict on the one
   * returned (`{ good: true | false }`): the pool regrades its providers on the task.
   */
  async feedback(
    requestId: string,
    truth: { answer: string } | { good: boolean },
    options: { timeoutMs?: number } = {},
  ): Promise<FeedbackReply> {
    const request = create(FeedbackRequestSchema, {
      requestId,
      truth:
        "answer" in truth
          ? { case: "answer", value: truth.answer }
          : { case: "verdict", value: truth.good ? Verdict.GOOD : Verdict.BAD },
    });
    try {
      return await this.raw.feedback(request, this.call(options.timeoutMs));
    } catch (e) {
      throw toLlmPoolError(e);
    }
  }
}
