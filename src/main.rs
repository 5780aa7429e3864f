//! `ferry`: the operator's program. With no command it opens the terminal
//! UI on the sites in its config file (or given with `--site/--token`);
//! `ferry demo` starts a demo pair of sites and opens the UI on them;
//! `ferry site` runs a site; `ferry info` says where ferry keeps its files.

use ferry::{demo, feed, settings, theme, tui};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "ferry: disaster recovery for paired sites, run from the keyboard",
    long_about = "ferry: disaster recovery for paired sites, run from the keyboard.\n\n\
                  With no command, opens the terminal UI on both sites of a pair: the sites \
                  listed in the config file (see `ferry info`), or given as --site URL --token T, twice. \
                  --token-file FILE reads a token from a file instead, and with neither the token comes \
                  from FERRY_TOKEN_1, FERRY_TOKEN_2 (by the --site's place) or FERRY_TOKEN, \
                  so it does not show in `ps`."
)]
struct Cli {
    #[command(flatten)]
    ui: UiArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// How the terminal UI looks and what it may do.
#[derive(Args, Clone)]
struct UiArgs {
    /// A site's API URL; repeat for the second site (each followed by --token).
    #[arg(long = "site", value_name = "URL")]
    sites: Vec<String>,
    /// The API token for the --site before it (shows in `ps`: prefer --token-file).
    #[arg(long = "token", value_name = "TOKEN")]
    tokens: Vec<String>,
    /// A file holding the API token for the --site before it.
    #[arg(long = "token-file", value_name = "FILE")]
    token_files: Vec<PathBuf>,
    /// Where each --token/--token-file stood on the command line, so they
    /// pair with the --site flags in order; filled in after parsing.
    #[arg(skip)]
    token_sources: Vec<settings::TokenSource>,
    /// The config file (default: the platform config directory's config.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Colour theme: dark, light, high-contrast, monochrome, or one of yours.
    #[arg(long, global = true)]
    theme: Option<String>,
    /// Offer no actions at all (for shared screens); the badge says so.
    #[arg(long, global = true)]
    read_only: bool,
    /// Kiosk mode for wall screens: rotates views, needs no input, implies --read-only.
    #[arg(long, global = true)]
    noc: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Start the demo: two sites, site-a (protected) and site-b (recovery),
    /// with a dozen VMs replicating between them, and open the UI on them.
    /// Quitting the UI stops the sites.
    Demo(demo::DemoArgs),
    /// Run one site from its site.toml, as `ferry-replicator --config` does.
    Site {
        /// The site's configuration file; site.db lives beside it.
        #[arg(long = "config", value_name = "FILE")]
        site_config: PathBuf,
    },
    /// Print where ferry keeps its config, themes and log.
    Info,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli.ui.token_sources = token_sources(&matches, &cli.ui);
    let paths = settings::Paths::discover();
    let tui_mode = match &cli.command {
        None => true,
        Some(Command::Demo(args)) => !args.no_tui,
        _ => false,
    };
    if tui_mode {
        log_to_file(&paths.log_file);
    } else {
        ferry_replicator::site::init_logging();
    }
    let _ = color_eyre::install();
    let result = match cli.command {
        None => open_ui(&cli.ui, &paths, None),
        Some(Command::Demo(args)) => demo::run(args, &cli.ui.options(), &paths),
        Some(Command::Site { site_config }) => {
            ferry_replicator::site::serve_config_file(&site_config)
        }
        Some(Command::Info) => info(&cli.ui, &paths),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ferry: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `--token` and `--token-file` values in command-line order.
fn token_sources(matches: &ArgMatches, ui: &UiArgs) -> Vec<settings::TokenSource> {
    let at = |id: &str| -> Vec<usize> {
        matches
            .indices_of(id)
            .map(|i| i.collect())
            .unwrap_or_default()
    };
    let mut sources: Vec<(usize, settings::TokenSource)> = at("tokens")
        .into_iter()
        .zip(&ui.tokens)
        .map(|(i, t)| (i, settings::TokenSource::Given(t.clone())))
        .chain(
            at("token_files")
                .into_iter()
                .zip(&ui.token_files)
                .map(|(i, f)| (i, settings::TokenSource::File(f.clone()))),
        )
        .collect();
    sources.sort_by_key(|(i, _)| *i);
    sources.into_iter().map(|(_, s)| s).collect()
}

/// Logs go to a file, never to the screen the UI draws on.
fn log_to_file(path: &std::path::Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                    .unwrap_or_else(|_| "info".into()),
            )
            .try_init();
    }
}

fn info(ui: &UiArgs, paths: &settings::Paths) -> Result<(), String> {
    let config_file = ui
        .config
        .clone()
        .unwrap_or_else(|| paths.config_file.clone());
    let config = settings::load(&config_file)?;
    let theme = theme::choose(ui.theme.as_deref(), config.theme.as_deref());
    println!(
        "config file  {}{}",
        config_file.display(),
        if config_file.exists() {
            ""
        } else {
            " (not there yet)"
        }
    );
    println!("themes dir   {}", paths.themes_dir.display());
    println!("theme        {theme}");
    println!("log file     {}", paths.log_file.display());
    println!("sites        {}", config.sites.len());
    Ok(())
}

impl UiArgs {
    fn options(&self) -> ferry::UiOptions {
        ferry::UiOptions {
            theme: self.theme.clone(),
            read_only: self.read_only || self.noc,
            noc: self.noc,
        }
    }
}

/// Opens the UI on `endpoints`, or on the configured sites when `None`.
fn open_ui(
    ui: &UiArgs,
    paths: &settings::Paths,
    endpoints: Option<Vec<feed::Endpoint>>,
) -> Result<(), String> {
    let config_file = ui
        .config
        .clone()
        .unwrap_or_else(|| paths.config_file.clone());
    let config = settings::load(&config_file)?;
    let endpoints = match endpoints {
        Some(endpoints) => endpoints,
        None => settings::endpoints(&config, &ui.sites, &ui.token_sources, &|name| {
            std::env::var(name).ok()
        })?,
    };
    let theme = theme::Theme::load(
        &theme::choose(ui.theme.as_deref(), config.theme.as_deref()),
        &paths.themes_dir,
    )?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(tui::run(endpoints, theme, ui.read_only || ui.noc, ui.noc))
}
