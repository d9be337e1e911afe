//! `psirtctl`: parses the command line, runs it on a single-threaded runtime
//! and maps the outcome to the exit code (see `psirt_cli::error`).

use std::process::ExitCode;

use clap::Parser as _;
use psirt_cli::{Cli, CliError, error};

fn main() -> ExitCode {
    // Usage errors exit here with clap's code 2 (and --help/--version with 0).
    let cli = Cli::parse();
    // One call at a time: a current-thread runtime is all a CLI needs.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&CliError::Other(anyhow::Error::new(e).context("cannot start the runtime"))),
    };
    match runtime.block_on(psirt_cli::run(cli)) {
        Ok(()) => ExitCode::from(error::EXIT_OK),
        Err(err) => fail(&err),
    }
}

fn fail(err: &CliError) -> ExitCode {
    // Nothing better to do if stderr itself is gone.
    let _ = err.print(&mut std::io::stderr());
    ExitCode::from(err.exit_code())
}
