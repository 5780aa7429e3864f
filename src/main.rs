//! `ferry`: the operator's program. `ferry site` runs a site (the same code
//! as `ferry-replicator`), `ferry demo` starts a demo pair of sites.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "ferry: disaster recovery for paired sites, run from the keyboard"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the demo: two sites, site-a (protected) and site-b (recovery),
    /// with a dozen VMs replicating between them.
    Demo(demo::DemoArgs),
    /// Run one site from its site.toml, as `ferry-replicator --config` does.
    Site {
        /// The site's configuration file; site.db lives beside it.
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    ferry_replicator::site::init_logging();
    let result = match Cli::parse().command {
        Command::Demo(args) => demo::run(args),
        Command::Site { config } => ferry_replicator::site::serve_config_file(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ferry: {message}");
            ExitCode::FAILURE
        }
    }
}
