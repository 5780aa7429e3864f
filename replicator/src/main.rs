//! The `ferry-replicator` binary: one per site.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ferry_replicator::access::Role;
use ferry_replicator::config::LoadedConfig;
use ferry_replicator::identity::{Fingerprint, Identity};
use ferry_replicator::replication::{LinkTls, Receiver, ReceiverConfig, receiver};
use ferry_replicator::server;

#[derive(Parser)]
#[command(
    version,
    about = "ferry's per-site replication service",
    long_about = "ferry's per-site replication service.\n\nRun a site with `ferry-replicator --config site.toml`: it serves the HTTP API, \
                  replicates its protected VMs to the paired site and receives the peer's replicas. \
                  SIGINT or SIGTERM stops it cleanly, keeping change tracking."
)]
struct Cli {
    /// The site's configuration file (site.toml); site.db lives beside it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run only a replication receiver: accept cycles from a paired site and
    /// keep replicas in the given datastores. Prints `fingerprint FP` (this
    /// receiver's certificate, for the sender to pin) and `listening on ADDR`.
    Receive {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// This site's name.
        #[arg(long, default_value = "recovery")]
        site: String,
        /// Directory of the receiver's key and certificate (made on first
        /// start).
        #[arg(long)]
        identity_dir: PathBuf,
        /// The sending site's certificate fingerprint, the only one accepted.
        #[arg(long)]
        peer_fingerprint: Fingerprint,
        /// A datastore as NAME=DIR; repeat for more.
        #[arg(long = "datastore", value_parser = parse_datastore, required = true)]
        datastores: Vec<(String, PathBuf)>,
    },
    /// Manage the site's API tokens (in site.db beside --config); a running
    /// site sees every change on its next call.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token and print it, once: only its hash is kept.
    Create {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Its name in `token list` and the audit log (default: the role
        /// and the start of its hash).
        #[arg(long)]
        name: Option<String>,
    },
    /// Every token: name, role, origin, created, last used, revoked.
    List,
    /// Refuse the token from now on.
    Revoke { name: String },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Viewer,
    Operator,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Operator => Role::Operator,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// Why a command of this binary failed; printed after `ferry-replicator: `.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0:?} is not NAME=DIR")]
    NotNameDir(String),
    #[error("datastore name {0:?} may hold only letters, digits, '-', '_' and '.'")]
    DatastoreName(String),
    #[error("give the site's --config site.toml (site.db lives beside it)")]
    TokenWithoutConfig,
    #[error("nothing to do: give --config site.toml (see --help)")]
    NothingToDo,
    #[error(transparent)]
    Serve(#[from] server::ServeError),
    #[error(transparent)]
    Config(#[from] ferry_replicator::config::ConfigError),
    #[error(transparent)]
    Identity(#[from] ferry_replicator::identity::IdentityError),
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Token(#[from] ferry_replicator::store::tokens::TokenError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn parse_datastore(arg: &str) -> Result<(String, PathBuf), Failure> {
    let (name, dir) = arg
        .split_once('=')
        .ok_or_else(|| Failure::NotNameDir(arg.to_string()))?;
    if !receiver::is_safe_name(name) {
        return Err(Failure::DatastoreName(name.to_string()));
    }
    Ok((name.to_string(), PathBuf::from(dir)))
}

fn main() -> ExitCode {
    server::init_logging();
    let cli = Cli::parse();
    let result = match (cli.command, cli.config) {
        (
            Some(Command::Receive {
                listen,
                site,
                identity_dir,
                peer_fingerprint,
                datastores,
            }),
            _,
        ) => receive(listen, site, &identity_dir, peer_fingerprint, datastores),
        (Some(Command::Token(command)), Some(config)) => token(command, &config),
        (Some(Command::Token(_)), None) => Err(Failure::TokenWithoutConfig),
        (None, Some(config)) => server::serve_config_file(&config).map_err(Failure::from),
        (None, None) => Err(Failure::NothingToDo),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ferry-replicator: {message}");
            ExitCode::FAILURE
        }
    }
}

fn receive(
    listen: String,
    site: String,
    identity_dir: &std::path::Path,
    peer: Fingerprint,
    datastores: Vec<(String, PathBuf)>,
) -> Result<(), Failure> {
    let identity = Identity::load_or_create(identity_dir)?;
    let tls = LinkTls::new(&identity, Some(peer))?;
    println!("fingerprint {}", identity.fingerprint);
    let config = ReceiverConfig {
        site,
        tls,
        datastores: datastores.into_iter().collect::<BTreeMap<_, _>>(),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|source| Failure::Listen {
                addr: listen.clone(),
                source,
            })?;
        let addr = listener.local_addr()?;
        println!("listening on {addr}");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        receiver::serve(listener, Receiver::new(config), shutdown).await;
        Ok(())
    })
}

fn token(command: TokenCommand, config: &std::path::Path) -> Result<(), Failure> {
    use ferry_replicator::site::tokens::admin;
    let config = LoadedConfig::load(config)?;
    match command {
        TokenCommand::Create { role, name } => {
            let (name, secret) = admin::create(&config, role.into(), name)?;
            eprintln!("token {name:?} made; it is shown only this once:");
            println!("{secret}");
        }
        TokenCommand::List => {
            let rows = admin::list(&config)?;
            let when =
                |ms: Option<u64>| ms.map_or_else(|| "-".to_string(), ferry_api::time::date_time);
            println!(
                "{:<24} {:<8} {:<9} {:<19}  {:<19}  STATUS",
                "NAME", "ROLE", "ORIGIN", "CREATED", "LAST USED"
            );
            for t in rows {
                let status = match t.revoked_ms {
                    Some(at) => format!("revoked {}", ferry_api::time::date_time(at)),
                    None => "active".to_string(),
                };
                println!(
                    "{:<24} {:<8} {:<9} {:<19}  {:<19}  {status}",
                    t.name,
                    t.role.as_str(),
                    t.origin,
                    when(Some(t.created_ms)),
                    when(t.last_used_ms),
                );
            }
        }
        TokenCommand::Revoke { name } => {
            admin::revoke(&config, &name)?;
            eprintln!("token {name:?} revoked");
        }
    }
    Ok(())
}
