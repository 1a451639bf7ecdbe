//! Command line: `serve` and `check-config`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// One process in front of a pool of LLM servers.
#[derive(Debug, Parser)]
#[command(name = "llm-pool", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve gRPC and HTTP in front of the configured providers.
    Serve {
        /// The configuration file; watched for changes.
        #[arg(long, short, env = "LLM_POOL_CONFIG", default_value = "llm-pool.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file without serving; prints every error with its TOML path.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}
