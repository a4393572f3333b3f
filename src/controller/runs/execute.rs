//! One run, start to end: its own OS thread (a Lua state is not `Send`) with a `LocalSet`,
//! driven by a fresh paused runtime on the sim (virtual time, a fresh sim) or by the
//! controller's runtime for a shared backend (its watchers are spawned there and must outlive
//! the run).

use super::bundle::RunRequest;
use super::manager::{Run, RunBackend, RunManager, now};
use super::record::RunStatus;
use crate::journal::{Entry, Sink};
use crate::lua::sandbox::Limits;
use crate::session::{self, BackendSource, Outcome, Session, SessionOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{OwnedSemaphorePermit, watch};

/// Who cancelled, once someone has (now or later).
pub(crate) async fn cancelled(rx: &mut watch::Receiver<Option<String>>) -> String {
    let who = match rx.wait_for(Option::is_some).await {
        Ok(who) => who.clone(),
        Err(_) => None,
    };
    match who {
        Some(who) => who,
        // The run is gone: nobody can cancel it any more.
        None => std::future::pending().await,
    }
}

/// Starts the run's thread; the slot is given back when it ends.
pub(crate) fn start(
    manager: Arc<RunManager>,
    run: Arc<Run>,
    req: RunRequest,
    slot: OwnedSemaphorePermit,
) {
    let (m, r) = (manager.clone(), run.clone());
    let spawned = std::thread::Builder::new()
        .name(format!("gfi-{}", run.id))
        .spawn(move || {
            let _slot = slot;
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let local = tokio::task::LocalSet::new();
                match &m.config.backend {
                    RunBackend::SimPerRun(_) => match session::runtime(true) {
                        Ok(rt) => local.block_on(&rt, drive(&m, &r, req)),
                        Err(e) => fail(&m, &r, e),
                    },
                    RunBackend::Shared { .. } => {
                        m.runtime.block_on(local.run_until(drive(&m, &r, req)))
                    }
                }
            }));
            // A bug must not leave the run "running" for ever, its followers waiting.
            if let Err(panic) = ran
                && !r.lock().status.is_terminal()
            {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                fail(&m, &r, format!("the run crashed (a bug in gfi): {what}"));
            }
            m.remove_bundle(&r.id);
        });
    if let Err(e) = spawned {
        fail(
            &manager,
            &run,
            format!("cannot start the run's thread: {e}"),
        );
        manager.remove_bundle(&run.id);
    }
}

fn fail(manager: &RunManager, run: &Run, error: String) {
    manager.update(run, |r| {
        r.status = RunStatus::Failed;
        r.error = Some(error);
        r.ended_at = Some(now());
    });
}

async fn drive(manager: &Arc<RunManager>, run: &Arc<Run>, req: RunRequest) {
    let (limits, cancelled_by) = {
        let r = run.lock();
        (r.limits, r.cancelled_by.clone())
    };
    if let Some(who) = cancelled_by {
        // Cancelled between leaving the queue and starting.
        manager.update(run, |r| {
            r.status = RunStatus::Cancelled;
            r.error = Some(format!("cancelled by {who} before it started"));
            r.ended_at = Some(now());
        });
        return;
    }
    manager.update(run, |r| {
        r.status = RunStatus::Running;
        r.started_at = Some(now());
    });
    let backend = match &manager.config.backend {
        RunBackend::SimPerRun(args) => BackendSource::Args(args.clone()),
        RunBackend::Shared {
            backend,
            description,
        } => BackendSource::Shared {
            backend: backend.clone(),
            description: description.clone(),
        },
    };
    let sink: Sink = {
        let (manager, run) = (manager.clone(), run.clone());
        Arc::new(move |e: &Entry| manager.record_entry(&run, e))
    };
    let line_style = req
        .line_style
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    let session = match Session::new(SessionOptions {
        seed: req.seed,
        title: format!("gfi run {}", req.script),
        script: req.script.clone(),
        args: req.args.clone(),
        limits: Limits {
            memory_bytes: limits.memory_bytes,
            instructions: limits.instructions,
            allow_unsafe: false,
            interrupt: Some(run.interrupt.clone()),
        },
        script_dir: Some(manager.bundle_dir(&run.id)),
        // Module errors name the files as the client has them, as a local run would.
        script_dir_shown: Some(match Path::new(&req.script).parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }),
        line_style,
        sinks: vec![sink],
        ..SessionOptions::new(backend)
    }) {
        Ok(s) => s,
        Err(e) => return fail(manager, run, e.to_string()),
    };
    let mut cancel = run.cancel.subscribe();
    let outcome = tokio::select! {
        biased;
        o = session.run_source(&req.source, &req.script) => o,
        who = cancelled(&mut cancel) => Outcome::Cancelled(who),
    };
    // The cleanups are Lua code too: they must not be interrupted, by this cancel or a later one.
    {
        let mut over = run.script_over.lock().unwrap_or_else(|e| e.into_inner());
        *over = true;
        run.interrupt.store(false, Ordering::SeqCst);
    }
    let timeout = manager.config.cleanup_timeout;
    let abandon = async move {
        tokio::time::sleep(timeout).await;
        format!(
            "cleanups abandoned after {} (the controller's cleanup timeout)",
            crate::duration::format(timeout)
        )
    };
    let report = session.finish(outcome, Default::default(), abandon).await;
    manager.update(run, |r| {
        r.status = match &report.outcome {
            Outcome::Finished | Outcome::Ended => RunStatus::Finished,
            Outcome::Failed(_) => RunStatus::Failed,
            Outcome::Cancelled(_) => RunStatus::Cancelled,
            Outcome::Interrupted(_) => RunStatus::Interrupted,
            Outcome::Stopped(_) => RunStatus::Stopped,
        };
        match &report.outcome {
            Outcome::Failed(m) => r.error = Some(m.clone()),
            Outcome::Stopped(stop) => r.error = Some(stop.describe()),
            _ => {}
        }
        r.summary = Some(report.summary.clone());
        r.ended_at = Some(now());
    });
}
