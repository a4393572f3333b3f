//! `gfi xids`: the XID catalogue (NVSentinel's, all 167 XIDs of its map) as a table or JSON.

use crate::xid::catalog;
use clap::{Args, ValueEnum};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct XidsArgs {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Only fatal XIDs (those NVSentinel acts on).
    #[arg(long)]
    pub fatal: bool,
    /// Only this XID.
    #[arg(long)]
    pub xid: Option<u32>,
}

pub fn run(args: XidsArgs) -> ExitCode {
    let rows: Vec<_> = catalog::all()
        .iter()
        .filter(|i| !args.fatal || i.fatal())
        .filter(|i| args.xid.is_none_or(|x| x == i.xid))
        .collect();
    if let Some(x) = args.xid
        && rows.is_empty()
    {
        eprintln!(
            "error: XID {x} is not in the catalogue; NVSentinel would treat it as CONTACT_SUPPORT"
        );
        return ExitCode::from(1);
    }
    match args.output {
        OutputFormat::Json => match serde_json::to_string_pretty(&rows) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        },
        OutputFormat::Table => print!("{}", table(&rows)),
    }
    ExitCode::SUCCESS
}

fn table(rows: &[&catalog::XidInfo]) -> String {
    let mut out = format!(
        "catalogue: {}\n\n{:>4}  {:<11}  {:<16}  {:<5}  {}\n",
        catalog::VERSION,
        "XID",
        "GROUP",
        "ACTION",
        "FATAL",
        "DESCRIPTION"
    );
    for r in rows {
        let action = match r.rule {
            catalog::ActionRule::Fixed(a) if r.metadata_dependent => format!("{a}*"),
            catalog::ActionRule::Fixed(a) => a.to_string(),
            catalog::ActionRule::FromLine => "(from line)".to_string(),
        };
        let fatal = match r.rule {
            catalog::ActionRule::FromLine => "dep",
            _ if r.fatal() => "yes",
            _ => "no",
        };
        // Where NVIDIA's text is not known here, the sheet's mnemonic says what it is.
        let description = if r.description.is_empty() {
            &r.mnemonic
        } else {
            &r.description
        };
        out.push_str(&format!(
            "{:>4}  {:<11}  {:<16}  {:<5}  {}\n",
            r.xid, r.group, action, fatal, description
        ));
    }
    out.push_str("\n* becomes RESTART_VM when the GPU's UUID is missing from NVSentinel's gpu_metadata.json\nAn XID not listed is CONTACT_SUPPORT (NVSentinel's default for an XID it does not know).\n");
    out
}
