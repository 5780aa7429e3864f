//! `ferry`: the operator's program. The terminal UI and the demo arrive with
//! the site service; for now this says so plainly.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            println!(
                "ferry: disaster recovery for paired sites\n\n\
                 The replication engine is built (see `ferry-replicator --help`);\n\
                 the demo and the terminal UI are not built yet."
            );
            ExitCode::SUCCESS
        }
        Some("demo") => {
            eprintln!(
                "ferry demo: not built yet. The replication engine is ready;\n\
                 try replicator/benches/replication.sh to see it run."
            );
            ExitCode::from(2)
        }
        Some(other) => {
            eprintln!("ferry: unknown command {other:?}; see ferry --help");
            ExitCode::from(2)
        }
    }
}
