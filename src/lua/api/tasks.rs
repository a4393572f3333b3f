//! Concurrency and cleanup: `spawn(fn, ...)` runs a function as a task next to the script;
//! `cleanup(fn)` registers what must run at the end, even when the script fails or is
//! interrupted.

use super::set_fn;
use crate::lua::convert::*;
use crate::lua::{CLEANUP_TIMEOUT, Ctx, describe_error};
use mlua::{Function, Lua, MetaMethod, MultiValue, Table, UserData, UserDataMethods, Value};
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
use tokio::sync::watch;

const CLEANUPS: &str = "gfi.cleanups";

pub enum TaskResult {
    Running,
    Done(Vec<Value>),
    Failed(String),
    Cancelled,
}

pub struct TaskInner {
    pub id: u64,
    pub name: String,
    pub result: TaskResult,
    /// Someone looked at the outcome (a failure nobody saw fails the run).
    pub observed: bool,
    abort: Option<tokio::task::AbortHandle>,
    done: watch::Sender<bool>,
}

#[derive(Clone)]
pub struct Task(Rc<RefCell<TaskInner>>);

impl Task {
    fn status(&self) -> &'static str {
        match self.0.borrow().result {
            TaskResult::Running => "running",
            TaskResult::Done(_) => "done",
            TaskResult::Failed(_) => "failed",
            TaskResult::Cancelled => "cancelled",
        }
    }

    /// The outcome: values, or the error raised into the waiter.
    fn take_outcome(&self) -> mlua::Result<MultiValue> {
        let mut inner = self.0.borrow_mut();
        inner.observed = true;
        match &inner.result {
            TaskResult::Done(v) => Ok(MultiValue::from_vec(v.clone())),
            TaskResult::Failed(e) => Err(err(format!("task '{}' failed: {e}", inner.name))),
            TaskResult::Cancelled => Err(err(format!("task '{}' was cancelled", inner.name))),
            TaskResult::Running => Err(err("task still running (a bug)")),
        }
    }

    async fn wait_done(&self, timeout: Option<std::time::Duration>) -> bool {
        let mut rx = self.0.borrow().done.subscribe();
        let fut = rx.wait_for(|d| *d);
        match timeout {
            Some(t) => tokio::time::timeout(t, fut).await.is_ok(),
            None => fut.await.is_ok(),
        }
    }
}

impl UserData for Task {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_async_method("wait", |lua, this, timeout: Value| async move {
            let t = match &timeout {
                Value::Nil => None,
                v => Some(duration("task:wait", "timeout", v)?),
            };
            let task = this.clone();
            drop(this);
            if !task.wait_done(t).await {
                let name = task.0.borrow().name.clone();
                let msg = format!(
                    "task '{name}' still running after {}",
                    crate::duration::format(t.unwrap_or_default())
                );
                return Ok(MultiValue::from_vec(vec![
                    Value::Nil,
                    Value::String(lua.create_string(msg)?),
                ]));
            }
            task.take_outcome()
        });
        m.add_method("status", |_, this, ()| Ok(this.status()));
        m.add_method("done", |_, this, ()| Ok(this.status() != "running"));
        m.add_method("error", |_, this, ()| {
            let mut inner = this.0.borrow_mut();
            match &inner.result {
                TaskResult::Failed(e) => {
                    let e = e.clone();
                    inner.observed = true;
                    Ok(Some(e))
                }
                _ => Ok(None),
            }
        });
        m.add_method("cancel", |_, this, ()| {
            let mut inner = this.0.borrow_mut();
            if let TaskResult::Running = inner.result {
                if let Some(a) = inner.abort.take() {
                    a.abort();
                }
                inner.result = TaskResult::Cancelled;
                inner.observed = true;
                inner.done.send_replace(true);
                return Ok(true);
            }
            Ok(false)
        });
        m.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            let inner = this.0.borrow();
            Ok(format!(
                "task({} '{}', {})",
                inner.id,
                inner.name,
                this.status()
            ))
        });
        m.add_meta_method(MetaMethod::Index, |lua, this, key: String| match key.as_str() {
            "name" => Ok(Value::String(lua.create_string(&this.0.borrow().name)?)),
            "id" => Ok(Value::Integer(this.0.borrow().id as i64)),
            _ => Err(err(format!("a task has no field '{key}' (fields: name, id; methods: wait, status, done, error, cancel)"))),
        });
    }
}

pub fn register(lua: &Lua, gfi: &Table) -> mlua::Result<()> {
    lua.set_named_registry_value(CLEANUPS, lua.create_table()?)?;

    set_fn(
        lua,
        gfi,
        "spawn",
        lua.create_function(|lua, args: MultiValue| {
            let mut args = args.into_vec().into_iter();
            let first = args.next().unwrap_or(Value::Nil);
            // spawn(fn, ...) or spawn("name", fn, ...)
            let (name, func) = match (first, args.as_slice().first().cloned()) {
                (Value::Function(f), _) => (None, f),
                (Value::String(s), Some(Value::Function(f))) => {
                    args.next();
                    (Some(s.to_str()?.to_string()), f)
                }
                (other, _) => {
                    return Err(arg_err(
                        "spawn",
                        1,
                        "fn",
                        format!(
                            "must be a function (or a name then a function), got {}",
                            describe(&other)
                        ),
                    ));
                }
            };
            let ctx = Ctx::get(lua)?;
            let id = ctx.tasks.borrow().len() as u64 + 1;
            let name = name.unwrap_or_else(|| format!("task-{id}"));
            let (done, _) = watch::channel(false);
            let task = Task(Rc::new(RefCell::new(TaskInner {
                id,
                name,
                result: TaskResult::Running,
                observed: false,
                abort: None,
                done,
            })));
            let t2 = task.clone();
            let call_args: MultiValue = args.collect();
            let handle = tokio::task::spawn_local(async move {
                let r = func.call_async::<MultiValue>(call_args).await;
                let mut inner = t2.0.borrow_mut();
                if matches!(inner.result, TaskResult::Running) {
                    inner.result = match r {
                        Ok(v) => TaskResult::Done(v.into_vec()),
                        Err(e) => TaskResult::Failed(describe_error(&e)),
                    };
                }
                inner.done.send_replace(true);
            });
            task.0.borrow_mut().abort = Some(handle.abort_handle());
            ctx.tasks.borrow_mut().push(task.0.clone());
            Ok(task)
        })?,
    )?;

    set_fn(
        lua,
        gfi,
        "cleanup",
        lua.create_function(|lua, (f, name): (Value, Value)| {
            let Value::Function(f) = f else {
                return Err(arg_err(
                    "cleanup",
                    1,
                    "fn",
                    format!("must be a function, got {}", describe(&f)),
                ));
            };
            let name = match name {
                Value::Nil => None,
                Value::String(s) => Some(s.to_str()?.to_string()),
                other => {
                    return Err(arg_err(
                        "cleanup",
                        2,
                        "name",
                        format!("must be a string, got {}", describe(&other)),
                    ));
                }
            };
            let list: Table = lua.named_registry_value(CLEANUPS)?;
            let entry = lua.create_table()?;
            entry.set("fn", f)?;
            entry.set(
                "name",
                name.unwrap_or_else(|| format!("cleanup-{}", list.raw_len() + 1)),
            )?;
            list.push(entry)?;
            Ok(())
        })?,
    )?;
    Ok(())
}

/// Runs the cleanups newest first, each with a time limit; returns the errors.
pub async fn run_cleanups(lua: &Lua, ctx: &Ctx) -> Vec<String> {
    let mut errors = Vec::new();
    let list: Table = match lua.named_registry_value(CLEANUPS) {
        Ok(t) => t,
        Err(e) => return vec![e.to_string()],
    };
    let entries: Vec<Table> = list
        .sequence_values::<Table>()
        .filter_map(Result::ok)
        .collect();
    // A cleanup registered by a cleanup is not run: the list is taken once.
    let _ = lua.set_named_registry_value(CLEANUPS, lua.create_table().ok());
    for entry in entries.into_iter().rev() {
        let name: String = entry.get("name").unwrap_or_default();
        let Ok(f) = entry.get::<Function>("fn") else {
            continue;
        };
        ctx.journal.record(
            crate::journal::EntryKind::Cleanup,
            None,
            format!("running cleanup '{name}'"),
            json!({"name": name}),
        );
        match tokio::time::timeout(CLEANUP_TIMEOUT, f.call_async::<()>(())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let msg = format!("cleanup '{name}' failed: {}", describe_error(&e));
                ctx.journal.record(
                    crate::journal::EntryKind::CleanupFailed,
                    None,
                    msg.clone(),
                    json!(null),
                );
                errors.push(msg);
            }
            Err(_) => {
                let msg = format!(
                    "cleanup '{name}' did not finish within {}",
                    crate::duration::format(CLEANUP_TIMEOUT)
                );
                ctx.journal.record(
                    crate::journal::EntryKind::CleanupFailed,
                    None,
                    msg.clone(),
                    json!(null),
                );
                errors.push(msg);
            }
        }
    }
    errors
}

/// Cancels tasks still running; returns failures nobody observed.
pub fn finish(ctx: &Ctx) -> Vec<String> {
    let mut errors = Vec::new();
    for t in ctx.tasks.borrow().iter() {
        let mut inner = t.borrow_mut();
        match &inner.result {
            TaskResult::Running => {
                if let Some(a) = inner.abort.take() {
                    a.abort();
                }
                inner.result = TaskResult::Cancelled;
                ctx.journal.record(
                    crate::journal::EntryKind::TaskCancelled,
                    None,
                    format!(
                        "task '{}' was still running at the end of the script and was cancelled",
                        inner.name
                    ),
                    json!(null),
                );
            }
            TaskResult::Failed(e) if !inner.observed => {
                let msg = format!("task '{}' failed and nobody waited for it: {e}", inner.name);
                ctx.journal.record(
                    crate::journal::EntryKind::TaskFailed,
                    None,
                    msg.clone(),
                    json!(null),
                );
                errors.push(msg);
            }
            _ => {}
        }
    }
    errors
}
