//! Stream an answer from a running pool, signing each call with HMAC when a tenant is given
//! and using TLS when a CA is given.
//!
//! ```sh
//! cargo run -p llm-pool-client --example stream -- http://127.0.0.1:7070 chat "Tell a story"
//! LLM_POOL_HMAC_TENANT=app LLM_POOL_HMAC_SECRET=... LLM_POOL_CA_CERT=ca.crt \
//!   cargo run -p llm-pool-client --example stream -- https://pool.internal:7070 chat "..."
//! ```

use std::io::Write;
use std::time::Duration;

use llm_pool_client::{Client, QueryRequest};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7070".to_owned());
    let task = args.next().unwrap_or_else(|| "chat".to_owned());
    let input = args.next().unwrap_or_else(|| "Tell a story".to_owned());

    let mut builder = Client::builder(&addr).timeout(Duration::from_secs(60));
    if let (Ok(tenant), Ok(secret)) = (
        std::env::var("LLM_POOL_HMAC_TENANT"),
        std::env::var("LLM_POOL_HMAC_SECRET"),
    ) {
        builder = builder.hmac(tenant, secret);
    }
    if let Ok(ca) = std::env::var("LLM_POOL_CA_CERT") {
        builder = builder.ca_certificate(std::fs::read(ca)?);
    }
    let mut client = builder.connect().await?;

    let mut out = std::io::stdout().lock();
    let mut stream = match client.stream_query(QueryRequest::new(task, input)).await {
        Ok(stream) => stream,
        Err(status) => {
            eprintln!("{:?}: {}", status.code(), status.message());
            return Ok(llm_pool_client::exit_code(status.code()).into());
        }
    };
    loop {
        match stream.message().await {
            Ok(Some(chunk)) => {
                write!(out, "{}", chunk.delta)?;
                out.flush()?;
                if let Some(answer) = chunk.answer.filter(|_| chunk.done) {
                    writeln!(out, "\n-- {} in {} ms", answer.provider, answer.latency_ms)?;
                }
            }
            Ok(None) => return Ok(std::process::ExitCode::SUCCESS),
            // A stream that breaks after it began is an error, not a short answer.
            Err(status) => {
                eprintln!("\n{:?}: {}", status.code(), status.message());
                return Ok(llm_pool_client::exit_code(status.code()).into());
            }
        }
    }
}
