//! The `guestctl` command: parse arguments, call the library, print, map errors to exit codes.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
