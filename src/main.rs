//! The `guestctl` command: parse arguments, call the library, print, map errors to exit codes.

mod cli;

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn main() -> ExitCode {
    // Exceeding RLIMIT_FSIZE (`ulimit -f`) raises SIGXFSZ, whose default action kills the
    // process without a word. With a handler installed the write fails with EFBIG instead,
    // which the converters report as an error (exit 1) after removing their temporary file.
    // If installing it fails we run on with the default action.
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        Arc::new(AtomicBool::new(false)),
    );
    cli::run()
}
