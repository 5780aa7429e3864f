//! `ferry`: the operator's program. With no command it opens the terminal
//! UI on the sites in its config file (or given with `--site/--token`);
//! `ferry demo` starts a demo pair of sites and opens the UI on them;
//! `ferry site` runs a site; `ferry info` says where ferry keeps its files.

use ferry::{cli, demo, feed, pinning, settings, theme, tui};

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
    #[arg(long = "site", value_name = "URL", global = true)]
    sites: Vec<String>,
    /// The API token for the --site before it (shows in `ps`: prefer --token-file).
    #[arg(long = "token", value_name = "TOKEN", global = true)]
    tokens: Vec<String>,
    /// A file holding the API token for the --site before it.
    #[arg(long = "token-file", value_name = "FILE")]
    token_files: Vec<PathBuf>,
    /// Where each --token/--token-file stood on the command line, so they
    /// pair with the --site flags in order; filled in after parsing.
    #[arg(skip)]
    token_sources: Vec<settings::TokenSource>,
    /// The config file (default: the platform config directory's config.toml).
    #[arg(long, value_name = "FILE", env = "FERRY_CONFIG")]
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
    #[command(flatten)]
    Scripted(cli::args::Scripted),
    /// Print a shell completion script: `ferry completions bash > /etc/bash_completion.d/ferry`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `ferry man > ferry.1 && man ./ferry.1`.
    Man,
}

/// Why a command of the binary failed; `main` prints it as `ferry: …`.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error(transparent)]
    Pin(#[from] pinning::PinError),
    #[error(transparent)]
    Client(#[from] ferry_api::ClientError),
    #[error(transparent)]
    Theme(#[from] theme::ThemeError),
    #[error(transparent)]
    Draw(#[from] tui::DrawError),
    #[error(transparent)]
    Demo(#[from] demo::DemoError),
    #[error(transparent)]
    DemoPair(#[from] ferry_replicator::demo_pair::DemoPairError),
    #[error(transparent)]
    Serve(#[from] ferry_replicator::server::ServeError),
    /// No async runtime could start.
    #[error(transparent)]
    Runtime(#[from] std::io::Error),
    #[error("cannot run {}: {error}", script.display())]
    ImageScript {
        script: PathBuf,
        error: std::io::Error,
    },
    #[error("{} failed ({status})", script.display())]
    ImageFailed {
        script: PathBuf,
        status: std::process::ExitStatus,
    },
    #[error("cannot write the manual page: {0}")]
    Man(std::io::Error),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli.ui.token_sources = token_sources(&matches, &cli.ui);
    let paths = settings::Paths::discover();
    match &cli.command {
        None => log_to_file(&paths.log_file),
        Some(Command::Demo(args)) if !args.no_tui => log_to_file(&paths.log_file),
        Some(Command::Demo(_) | Command::Site { .. }) => ferry_replicator::server::init_logging(),
        // Scripts read stdout and stderr: no log lines among them.
        _ => {}
    }
    let _ = color_eyre::install();
    let result = match cli.command {
        None => open_ui(&cli.ui, &paths, None),
        Some(Command::Demo(args)) => run_demo(args, &cli.ui.options(), &paths),
        Some(Command::Site { site_config }) => {
            ferry_replicator::server::serve_config_file(&site_config).map_err(Failure::from)
        }
        Some(Command::Info) => info(&cli.ui, &paths),
        Some(Command::Scripted(command)) => return scripted(command, &cli.ui, &paths),
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut std::io::stdout());
            Ok(())
        }
        Some(Command::Man) => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map_err(Failure::Man),
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
    // --site and --token are global: after a subcommand they are that
    // subcommand's, so look there too.
    let at = |id: &str| -> Vec<usize> {
        let mut found = Vec::new();
        let mut level = Some(matches);
        while let Some(m) = level {
            if let Ok(Some(i)) = m.try_get_raw(id).map(|_| m.indices_of(id)) {
                found.extend(i);
            }
            level = m.subcommand().map(|(_, sub)| sub);
        }
        found.sort_unstable();
        found.dedup();
        found
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

/// Writes the demo pair's site configs (the one part of the demo that knows
/// a site's config) and hands the sites to `ferry::demo` to run.
fn run_demo(
    args: demo::DemoArgs,
    ui: &ferry::UiOptions,
    paths: &settings::Paths,
) -> Result<(), Failure> {
    let compute = demo_compute(args.compute)?;
    let pair = ferry_replicator::demo_pair::write_with(
        &args.data_dir(),
        &args.inventory()?,
        args.port_base(),
        &compute,
    )?;
    let sites = pair
        .into_iter()
        .map(|site| demo::PairSite {
            name: site.name,
            dir: site.dir,
            tokens: demo::Tokens {
                admin: site.tokens.admin,
                operator: site.tokens.operator,
                viewer: site.tokens.viewer,
            },
        })
        .collect();
    Ok(demo::run(
        args,
        sites,
        ferry_replicator::server::shutdown_signal(),
        ui,
        paths,
    )?)
}

/// The demo's `[compute]`: for QEMU, the guest image is built (or found in
/// its cache) by the repository's script first.
fn demo_compute(
    choice: demo::DemoCompute,
) -> Result<ferry_replicator::config::ComputeConfig, Failure> {
    use ferry_replicator::config::{ComputeConfig, ComputeKind};
    if choice == demo::DemoCompute::Builtin {
        return Ok(ComputeConfig::default());
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("replicator/guest/image.sh");
    eprintln!(
        "building the guest image with {} (cached after the first time)",
        script.display()
    );
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|error| Failure::ImageScript {
            script: script.clone(),
            error,
        })?;
    if !out.status.success() {
        return Err(Failure::ImageFailed {
            script,
            status: out.status,
        });
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let image = stdout.lines().last().unwrap_or_default().trim().to_string();
    Ok(ComputeConfig {
        backend: ComputeKind::Qemu,
        guest_image: Some(image.into()),
        ..ComputeConfig::default()
    })
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

fn info(ui: &UiArgs, paths: &settings::Paths) -> Result<(), Failure> {
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

/// Runs a scripted command on the configured sites; its exit code is the
/// command's verdict (see `ferry::cli`).
fn scripted(command: cli::args::Scripted, ui: &UiArgs, paths: &settings::Paths) -> ExitCode {
    let config_file = ui
        .config
        .clone()
        .unwrap_or_else(|| paths.config_file.clone());
    if ui.config.is_some() && !config_file.exists() {
        eprintln!(
            "ferry: the config file {} does not exist (from --config or FERRY_CONFIG)",
            config_file.display()
        );
        return ExitCode::from(cli::commands::USAGE);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ferry: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let clients = settings::load(&config_file)
        .and_then(|config| {
            settings::endpoints(&config, &ui.sites, &ui.token_sources, &|name| {
                std::env::var(name).ok()
            })
        })
        .map_err(Failure::from)
        .and_then(|mut endpoints| {
            runtime.block_on(pinning::first_contact(
                &mut endpoints,
                &config_file,
                &mut pinning::ask_on_terminal,
            ))?;
            Ok(endpoints)
        })
        .and_then(|endpoints| {
            endpoints
                .iter()
                .map(|e| e.client(cli::REQUEST_TIMEOUT).map_err(Failure::from))
                .collect::<Result<Vec<_>, _>>()
        });
    let clients = match clients {
        Ok(clients) => clients,
        Err(message) => {
            eprintln!("ferry: {message}");
            return ExitCode::from(cli::commands::USAGE);
        }
    };
    match runtime.block_on(command.run(&clients)) {
        Ok(code) => ExitCode::from(code),
        Err(failed) => {
            eprintln!("ferry: {}", failed.message);
            ExitCode::from(failed.code)
        }
    }
}

/// Opens the UI on `endpoints`, or on the configured sites when `None`.
fn open_ui(
    ui: &UiArgs,
    paths: &settings::Paths,
    endpoints: Option<Vec<feed::Endpoint>>,
) -> Result<(), Failure> {
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
    let runtime = tokio::runtime::Runtime::new()?;
    let mut endpoints = endpoints;
    runtime.block_on(pinning::first_contact(
        &mut endpoints,
        &config_file,
        &mut pinning::ask_on_terminal,
    ))?;
    Ok(runtime.block_on(tui::run(endpoints, theme, ui.read_only || ui.noc, ui.noc))?)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn completions_and_the_manual_page_cover_the_scripted_commands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut super::Cli::command(), "ferry", &mut script);
            let script = String::from_utf8(script).unwrap();
            for word in ["status", "runbook", "reprotect", "confirm"] {
                assert!(script.contains(word), "{shell:?} completion lacks {word}");
            }
        }
        let mut page = Vec::new();
        clap_mangen::Man::new(super::Cli::command())
            .render(&mut page)
            .unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains(".TH ferry"), "roff: {page}");
        assert!(page.contains("status"), "{page}");
    }
}
