//! `chainlog schema` and `chainlog keys`: a log's action schema and its API
//! keys, managed at runtime with an admin key (no tenant limit). Changes
//! are kept by the server in its data directory and survive restarts.

use std::io::{self, Write};

use client::{rights, Origin, SchemaMode};

use super::{Cli, Failure, EXIT_OK};

/// `chainlog schema`.
#[derive(Debug, clap::Subcommand)]
pub enum SchemaCmd {
    /// Show the log's mode and action patterns.
    Show,
    /// Replace the log's mode and action patterns.
    Set {
        /// strict: refuse unknown actions; permissive: store and count them.
        #[arg(long, value_enum)]
        mode: Mode,
        /// Allowed action patterns, comma-separated (`*` matches one or more characters); none allows every action.
        #[arg(long, value_delimiter = ',')]
        actions: Vec<String>,
    },
    /// List the actions stored that the schema does not allow, with counts.
    Unknown,
}

/// Schema modes as flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Refuse events with unknown actions.
    Strict,
    /// Store them and count them as unknown.
    Permissive,
}

/// `chainlog keys`.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCmd {
    /// List the log's keys (never their text).
    List,
    /// Create a key; its text is printed once and never stored.
    Create {
        /// The key's id (a name for logs and revocation).
        id: String,
        /// Rights, comma-separated: append, read, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        rights: Vec<String>,
        /// Tenants it may write and read, comma-separated [default: every tenant].
        #[arg(long, value_delimiter = ',')]
        tenants: Vec<String>,
    },
    /// Revoke a key: it stops working at once, on open connections too.
    Revoke {
        /// The key's id.
        id: String,
    },
}

fn rights_text(r: u8) -> String {
    let names: Vec<&str> = [
        (rights::APPEND, "append"),
        (rights::READ, "read"),
        (rights::ADMIN, "admin"),
    ]
    .iter()
    .filter(|(bit, _)| r & bit != 0)
    .map(|(_, n)| *n)
    .collect();
    names.join(",")
}

fn origin_text(o: Origin) -> &'static str {
    match o {
        Origin::Config => "config",
        Origin::Runtime => "runtime",
    }
}

/// Runs `chainlog schema`.
pub fn schema(cli: &Cli, cmd: &SchemaCmd) -> Result<i32, Failure> {
    let mut c = cli.connect()?;
    let mut out = io::stdout().lock();
    match cmd {
        SchemaCmd::Show => {
            let s = c.schema()?;
            let mode = match s.spec.mode {
                SchemaMode::Strict => "strict",
                SchemaMode::Permissive => "permissive",
            };
            writeln!(out, "mode: {mode} (from the {})", origin_text(s.origin))?;
            if s.spec.actions.is_empty() {
                writeln!(out, "actions: any")?;
            } else {
                writeln!(out, "actions:")?;
                for a in &s.spec.actions {
                    writeln!(out, "  {a}")?;
                }
            }
        }
        SchemaCmd::Set { mode, actions } => {
            let mode = match mode {
                Mode::Strict => SchemaMode::Strict,
                Mode::Permissive => SchemaMode::Permissive,
            };
            let actions: Vec<String> = actions.iter().filter(|a| !a.is_empty()).cloned().collect();
            c.set_schema(mode, &actions)?;
            writeln!(out, "schema set: {} pattern(s)", actions.len())?;
        }
        SchemaCmd::Unknown => {
            let list = c.actions_seen()?;
            if list.is_empty() {
                writeln!(out, "no unknown actions stored")?;
            } else {
                writeln!(
                    out,
                    "{:>10}  {:30}  {:30}  ACTION",
                    "EVENTS", "FIRST STORED", "LAST STORED"
                )?;
            }
            for a in list {
                writeln!(
                    out,
                    "{:>10}  {:30}  {:30}  {}",
                    a.count,
                    super::time::format(a.first_seen),
                    super::time::format(a.last_seen),
                    a.action
                )?;
            }
        }
    }
    Ok(EXIT_OK)
}

/// Runs `chainlog keys`.
pub fn keys(cli: &Cli, cmd: &KeysCmd) -> Result<i32, Failure> {
    let mut c = cli.connect()?;
    let mut out = io::stdout().lock();
    match cmd {
        KeysCmd::List => {
            writeln!(out, "{:24}  {:8}  {:18}  TENANTS", "ID", "ORIGIN", "RIGHTS")?;
            for k in c.list_keys()? {
                let tenants = if k.tenants.is_empty() {
                    "(all)".to_string()
                } else {
                    k.tenants.join(",")
                };
                writeln!(
                    out,
                    "{:24}  {:8}  {:18}  {tenants}",
                    k.id,
                    origin_text(k.origin),
                    rights_text(k.rights)
                )?;
            }
        }
        KeysCmd::Create {
            id,
            rights: names,
            tenants,
        } => {
            let mut r = 0u8;
            for n in names {
                r |= match n.as_str() {
                    "append" => rights::APPEND,
                    "read" => rights::READ,
                    "admin" => rights::ADMIN,
                    other => {
                        return Err(Failure::new(format!(
                            "unknown right {other:?} (append, read, admin)"
                        )))
                    }
                };
            }
            let created = c.create_key(id, r, tenants)?;
            writeln!(out, "{}", created.key)?;
            eprintln!(
                "key {:?} created; its text is shown once, above, and not stored",
                created.id
            );
        }
        KeysCmd::Revoke { id } => {
            c.revoke_key(id)?;
            writeln!(out, "key {id:?} revoked")?;
        }
    }
    Ok(EXIT_OK)
}
