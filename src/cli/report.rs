//! `gfi report`: the reports of a saved journal (terminal summary, `--html`, `--junit`), and
//! `--compare A.json B.json`, where two runs differ stage by stage.

use crate::report::{self, Outputs, Run};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(
    after_help = "With neither --html nor --junit, prints the summary `gfi run` ends with (failures first, then each stage's count and p50/p95/max since the injection)."
)]
pub struct ReportArgs {
    /// A journal written by `gfi run --journal`.
    #[arg(value_name = "JOURNAL.json", required_unless_present = "compare")]
    pub journal: Option<PathBuf>,
    /// Write the HTML report here.
    #[arg(long, value_name = "FILE", conflicts_with = "compare")]
    pub html: Option<PathBuf>,
    /// Write the JUnit XML report here.
    #[arg(long, value_name = "FILE", conflicts_with = "compare")]
    pub junit: Option<PathBuf>,
    /// Compare two journals stage by stage (e.g. a cluster's run and the sim's prediction).
    #[arg(
        long,
        num_args = 2,
        value_names = ["A.json", "B.json"],
        conflicts_with = "journal"
    )]
    pub compare: Option<Vec<PathBuf>>,
}

pub fn run(args: ReportArgs) -> ExitCode {
    let load = |p: &PathBuf| {
        Run::load(p).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(2)
        })
    };
    if let Some(pair) = &args.compare {
        let (a, b) = match (load(&pair[0]), load(&pair[1])) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(c), _) | (_, Err(c)) => return c,
        };
        print!("{}", report::compare::render(&a, &b));
        return ExitCode::SUCCESS;
    }
    let Some(path) = &args.journal else {
        eprintln!("error: name a journal (gfi report JOURNAL.json) or two with --compare A B");
        return ExitCode::from(2);
    };
    let run = match load(path) {
        Ok(r) => r,
        Err(c) => return c,
    };
    if args.html.is_none() && args.junit.is_none() {
        print!("{}", report::text::full(&run));
        return ExitCode::SUCCESS;
    }
    let errors = report::write(
        &run,
        &Outputs {
            junit: args.junit.clone(),
            html: args.html.clone(),
        },
    );
    for e in &errors {
        eprintln!("error: {e}");
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
