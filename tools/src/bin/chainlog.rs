//! `chainlog`: the command-line client (see `tools::cli`).

use clap::Parser;

fn main() {
    let cli = tools::cli::Cli::parse();
    std::process::exit(tools::cli::run(&cli));
}
