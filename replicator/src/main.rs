//! The `ferry-replicator` binary: one per site.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferry_replicator::replication::{PairingSecret, Receiver, ReceiverConfig, receiver};

#[derive(Parser)]
#[command(version, about = "ferry's per-site replication service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run only a replication receiver: accept cycles from a paired site and
    /// keep replicas in the given datastores. Prints `listening on ADDR`.
    Receive {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// This site's name.
        #[arg(long, default_value = "recovery")]
        site: String,
        /// File holding the pairing secret shared with the peer site.
        #[arg(long)]
        secret_file: PathBuf,
        /// A datastore as NAME=DIR; repeat for more.
        #[arg(long = "datastore", value_parser = parse_datastore, required = true)]
        datastores: Vec<(String, PathBuf)>,
    },
}

fn parse_datastore(arg: &str) -> Result<(String, PathBuf), String> {
    let (name, dir) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?} is not NAME=DIR"))?;
    if !receiver::is_safe_name(name) {
        return Err(format!(
            "datastore name {name:?} may hold only letters, digits, '-', '_' and '.'"
        ));
    }
    Ok((name.to_string(), PathBuf::from(dir)))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ferry-replicator: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Receive {
            listen,
            site,
            secret_file,
            datastores,
        } => {
            let secret = std::fs::read_to_string(&secret_file)
                .map_err(|e| format!("cannot read {}: {e}", secret_file.display()))?;
            let secret = PairingSecret::new(secret.trim())
                .map_err(|e| format!("{}: {e}", secret_file.display()))?;
            let config = ReceiverConfig {
                site,
                secret,
                datastores: datastores.into_iter().collect::<BTreeMap<_, _>>(),
            };
            let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
                let addr = listener.local_addr().map_err(|e| e.to_string())?;
                println!("listening on {addr}");
                let shutdown = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                receiver::serve(listener, Receiver::new(config), shutdown).await;
                Ok(())
            })
        }
    }
}
