//! segment-verify: proves that nothing in a chainlog log directory was
//! altered, removed or reordered.

use std::path::PathBuf;

use clap::Parser;
use tools::verify_cmd::{self, Args};

/// Verify a chainlog log directory: recompute every CRC and hash from the
/// bytes, check seq continuity inside and across segments, segment links,
/// footers and index entries. Works offline on a live log or a copy.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Exit codes:\n  0  every segment valid (and the head commitment, if given, holds)\n  1  anything invalid: corruption, tampering, a missing segment, a failed head commitment or checkpoint\n  2  usage error, or an I/O error that stopped the check\n\nWithout --checkpoint (or --expect-head), the removal of the newest records and a rewrite of the whole log cannot be detected: the output says so."
)]
struct Cli {
    /// The log directory.
    dir: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// A head committed to outside the log: the log must contain record SEQ with hash HASH (64 hex digits).
    #[arg(long, value_name = "SEQ:HASH", value_parser = verify_cmd::parse_head)]
    expect_head: Option<(u64, engine::Hash)>,
    /// A signed checkpoint (C2SP tlog-checkpoint note, as `chainlog checkpoint` prints it): the Merkle tree recomputed from the records must have its size and root.
    #[arg(long, value_name = "FILE", requires = "key")]
    checkpoint: Option<PathBuf>,
    /// The checkpoint's verifier key (name+keyid+base64), or @FILE holding it.
    #[arg(long, value_name = "VKEY", requires = "checkpoint")]
    key: Option<String>,
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Report verification speed beside the single-core SHA-256 speed measured in the same run.
    #[arg(long)]
    stats: bool,
}

fn main() {
    let cli = Cli::parse();
    let args = Args {
        dir: cli.dir,
        json: cli.json,
        expect_head: cli.expect_head,
        checkpoint: cli.checkpoint,
        key: cli.key,
        threads: cli.threads,
        stats: cli.stats,
        progress: true,
    };
    let code = verify_cmd::run(&args, &mut std::io::stdout().lock());
    std::process::exit(code);
}
