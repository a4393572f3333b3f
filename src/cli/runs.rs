//! `gfi runs [ID]`, `gfi runs cancel ID`: the runs on a gfi controller.

use super::progress::{Progress, Style, Verbosity};
use super::remote::{Controller, ControllerArgs, ending, follow};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::Value;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub action: Option<RunsAction>,
    /// A run's id: show its events as `gfi run` shows them (live while it runs) and its
    /// ending; the exit status is the run's, as `gfi run` gives it.
    pub id: Option<String>,
    /// Print the record as JSON (one run: with its whole journal) instead.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub controller: ControllerArgs,
}

#[derive(Debug, Subcommand)]
pub enum RunsAction {
    /// Cancel a run: a queued one never starts, a running one stops and runs its cleanups.
    Cancel {
        /// The run's id.
        id: String,
    },
}

pub fn run(args: RunsArgs) -> ExitCode {
    if args.controller.remote.is_none() {
        eprintln!("error: gfi runs needs the controller: --remote URL (or GFI_REMOTE)");
        return ExitCode::from(2);
    }
    let controller = match Controller::new(&args.controller) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let result = match (&args.action, &args.id) {
            (Some(RunsAction::Cancel { id }), _) => cancel(&controller, id).await,
            (None, Some(id)) if args.json => show_json(&controller, id).await,
            (None, Some(id)) => return show(&controller, id).await,
            (None, None) => list(&controller, args.json).await,
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        }
    })
}

async fn cancel(controller: &Controller, id: &str) -> Result<(), String> {
    let record = controller
        .call(Method::POST, &format!("/api/v1/runs/{id}/cancel"), None)
        .await?;
    let status = record.get("status").and_then(Value::as_str).unwrap_or("?");
    println!("cancelling run {id} ({status}): its cleanups run on the controller");
    Ok(())
}

async fn show_json(controller: &Controller, id: &str) -> Result<(), String> {
    let record = controller
        .call(Method::GET, &format!("/api/v1/runs/{id}"), None)
        .await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&record).unwrap_or_default()
    );
    Ok(())
}

async fn show(controller: &Controller, id: &str) -> ExitCode {
    let wall = Instant::now();
    let tty = std::io::stdout().is_terminal();
    let progress = Progress::new(
        Verbosity::Normal,
        Style {
            color: tty && std::env::var_os("NO_COLOR").is_none(),
            status_line: tty,
        },
    );
    let followed = follow(controller, id, &progress, None).await;
    progress.clear_status();
    match followed {
        Ok(f) => ending(f, wall.elapsed()),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn list(controller: &Controller, json: bool) -> Result<(), String> {
    let body = controller.call(Method::GET, "/api/v1/runs", None).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
        return Ok(());
    }
    let runs = body
        .get("runs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if runs.is_empty() {
        println!("no runs");
        return Ok(());
    }
    let field = |r: &Value, k: &str| {
        r.get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default()
    };
    let rows: Vec<[String; 5]> = runs
        .iter()
        .map(|r| {
            [
                field(r, "id"),
                field(r, "status"),
                field(r, "submitted_at"),
                field(r, "started_by"),
                field(r, "script"),
            ]
        })
        .collect();
    let header = ["ID", "STATUS", "SUBMITTED", "BY", "SCRIPT"];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
                .max(header[i].len())
        })
        .collect();
    let line = |cells: [&str; 5]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 4 {
                    c.to_string()
                } else {
                    format!("{c:w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!("{}", line(header));
    for r in &rows {
        println!("{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    Ok(())
}
