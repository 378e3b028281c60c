//! segment-dump: prints the records of a chainlog log or segment as JSON
//! lines.

use std::path::PathBuf;

use clap::Parser;
use tools::dump_cmd::{self, Args};

/// Print the records of a chainlog log directory or segment file as JSON
/// lines (seq, created_at, kind, hash, payload as text for data records
/// that are UTF-8, hex otherwise). Reads the files directly: never repairs
/// anything, works on damaged copies. Each segment is read by the rules
/// recovery and segment-verify apply (CRCs, the chain inside the segment,
/// its seal); where its valid records end, an error line says why. The
/// links between segments are segment-verify's to check.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Exit codes:\n  0  every structure decoded\n  1  some structure did not decode (an error line says where)\n  2  usage or I/O error"
)]
struct Cli {
    /// A log directory or one segment file.
    path: PathBuf,
    /// First seq to print.
    #[arg(long)]
    from: Option<u64>,
    /// Last seq to print (inclusive).
    #[arg(long)]
    to: Option<u64>,
    /// Also print each segment's header and footer.
    #[arg(long)]
    headers: bool,
}

fn main() {
    let cli = Cli::parse();
    let args = Args {
        path: cli.path,
        from: cli.from,
        to: cli.to,
        headers: cli.headers,
    };
    let code = dump_cmd::run(&args, &mut std::io::stdout().lock());
    std::process::exit(code);
}
