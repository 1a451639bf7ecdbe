//! Ask a running pool over gRPC and print the answer, then how it was chosen.
//!
//! ```sh
//! cargo run -p llm-pool-client --example query -- http://127.0.0.1:7070 chat "Say hello"
//! LLM_POOL_API_KEY=... cargo run -p llm-pool-client --example query -- https://pool.internal:7070 classify_domain "..."
//! ```

use std::io::Write;
use std::time::Duration;

use llm_pool_client::Client;
use llm_pool_client::pb;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7070".to_owned());
    let task = args.next().unwrap_or_else(|| "chat".to_owned());
    let input = args.next().unwrap_or_else(|| "Say hello".to_owned());

    let mut client = Client::connect(&addr)
        .await?
        .with_timeout(Duration::from_secs(30));
    if let Ok(key) = std::env::var("LLM_POOL_API_KEY") {
        client = client.with_api_key(&key)?;
    }
    let request = pb::QueryRequest {
        task,
        input,
        ..Default::default()
    };
    let mut out = std::io::stdout().lock();
    match client.query(request).await {
        Ok(answer) => {
            writeln!(out, "{}", answer.text)?;
            write!(out, "{}", llm_pool_client::explain(&answer))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(status) => {
            // The class of the error decides what to do: retry later, fix the request, …
            eprintln!("{:?}: {}", status.code(), status.message());
            Ok(std::process::ExitCode::from(llm_pool_client::exit_code(
                status.code(),
            )))
        }
    }
}
