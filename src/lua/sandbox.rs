//! A fresh, sandboxed Lua 5.4 state per run: safe libraries only, a memory limit and an
//! instruction budget.

use mlua::{HookTriggers, Lua, LuaOptions, StdLib, VmState};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Instructions between two budget checks.
const HOOK_EVERY: u32 = 10_000;

#[derive(Debug, Clone)]
pub struct Limits {
    pub memory_bytes: usize,
    pub instructions: u64,
    /// Keep `io`, `os.execute`, `loadfile`, `dofile`, `debug`.
    pub allow_unsafe: bool,
    /// While set, running Lua code gives control back: how Ctrl-C stops a busy loop, which
    /// otherwise never returns to the runtime that would cancel it. Code running as an async
    /// call yields (its future returns `Pending`, so the caller can drop it: nothing in Lua can
    /// catch that); code that cannot yield (inside a C call) gets [`INTERRUPTED`] raised.
    pub interrupt: Option<Arc<AtomicBool>>,
}

/// The error raised into Lua code that cannot yield while the interrupt flag is set.
pub const INTERRUPTED: &str = "interrupted (Ctrl-C)";

/// Hook calls that yield on an interrupt before it raises instead (yielding is a no-op where
/// Lua cannot yield, and the caller may need a moment to drop the future).
const INTERRUPT_YIELDS: u32 = 100;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 << 20,
            instructions: 20_000_000_000,
            allow_unsafe: false,
            interrupt: None,
        }
    }
}

/// Counts instructions executed so far (shared with the hook).
#[derive(Clone, Default)]
pub struct InstructionCounter(Rc<Cell<u64>>);

impl InstructionCounter {
    pub fn get(&self) -> u64 {
        self.0.get()
    }

    /// Starts the budget over (the REPL gives each chunk the whole budget).
    pub fn reset(&self) {
        self.0.set(0);
    }
}

pub fn new_state(limits: &Limits) -> mlua::Result<(Lua, InstructionCounter)> {
    let safe = StdLib::COROUTINE
        | StdLib::TABLE
        | StdLib::STRING
        | StdLib::UTF8
        | StdLib::MATH
        | StdLib::PACKAGE
        | StdLib::OS;
    let options = LuaOptions::new().thread_pool_size(64);
    let lua = if limits.allow_unsafe {
        // SAFETY: the user asked for the debug library with --allow-unsafe.
        unsafe { Lua::unsafe_new_with(safe | StdLib::IO | StdLib::DEBUG, options) }
    } else {
        Lua::new_with(safe, options)?
    };
    if !limits.allow_unsafe {
        restrict(&lua)?;
    }
    lua.set_memory_limit(limits.memory_bytes)?;
    // Plans make many short-lived tables (every wait's result, every node's facts) beside a
    // large long-lived set (a task per fault): the generational collector leaves the old ones
    // alone on most cycles.
    lua.gc_set_mode(mlua::state::GcMode::Generational(Default::default()));
    let counter = InstructionCounter::default();
    let c = counter.clone();
    let budget = limits.instructions;
    let interrupt = limits.interrupt.clone();
    let interrupted_hooks = Cell::new(0u32);
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |_, _| {
            if interrupt
                .as_ref()
                .is_some_and(|flag| flag.load(Ordering::Relaxed))
            {
                let n = interrupted_hooks.get() + 1;
                interrupted_hooks.set(n);
                if n <= INTERRUPT_YIELDS {
                    return Ok(VmState::Yield);
                }
                return Err(mlua::Error::runtime(INTERRUPTED));
            }
            interrupted_hooks.set(0);
            let n = c.0.get() + HOOK_EVERY as u64;
            c.0.set(n);
            if n > budget {
                return Err(mlua::Error::runtime(format!(
                    "instruction budget of {budget} exhausted (raise it with --instruction-limit)"
                )));
            }
            Ok(VmState::Continue)
        },
    )?;
    Ok((lua, counter))
}

/// Removes what could touch the host: files, processes, native code, bytecode.
fn restrict(lua: &Lua) -> mlua::Result<()> {
    lua.load(
        r#"
        local os_keep = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime }
        for k in pairs(os) do os[k] = nil end
        for k, v in pairs(os_keep) do os[k] = v end
        loadfile, dofile = nil, nil
        string.dump = nil
        package.loadlib = nil
        package.cpath = ""
        package.path = ""
        local raw_load = load
        load = function(chunk, name, mode, env)
            if mode ~= nil and mode ~= "t" then
                error("load: only text chunks are allowed in the sandbox (mode 't')", 2)
            end
            if env == nil then return raw_load(chunk, name, "t") end
            return raw_load(chunk, name, "t", env)
        end
        "#,
    )
    .set_name("=sandbox")
    .exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_things_are_gone() {
        let (lua, _) = new_state(&Limits::default()).unwrap();
        let gone: bool = lua
            .load("return io == nil and os.execute == nil and os.exit == nil and loadfile == nil and dofile == nil and debug == nil and string.dump == nil and package.loadlib == nil")
            .eval()
            .unwrap();
        assert!(gone);
        let e = lua
            .load("return load('\\27Lua', 'x', 'b')")
            .exec()
            .unwrap_err();
        assert!(e.to_string().contains("only text chunks"), "{e}");
        let ok: i64 = lua.load("return load('return 1+1')()").eval().unwrap();
        assert_eq!(ok, 2);
    }

    #[test]
    fn unsafe_mode_keeps_them() {
        let limits = Limits {
            allow_unsafe: true,
            ..Default::default()
        };
        let (lua, _) = new_state(&limits).unwrap();
        let there: bool = lua
            .load("return io ~= nil and os.execute ~= nil and debug ~= nil")
            .eval()
            .unwrap();
        assert!(there);
    }

    #[test]
    fn instruction_budget() {
        let limits = Limits {
            instructions: 1_000_000,
            ..Default::default()
        };
        let (lua, counter) = new_state(&limits).unwrap();
        let e = lua.load("while true do end").exec().unwrap_err();
        assert!(
            e.to_string()
                .contains("instruction budget of 1000000 exhausted"),
            "{e}"
        );
        assert!(counter.get() > 1_000_000);
        // Coroutines count too.
        let (lua, _) = new_state(&limits).unwrap();
        let e = lua
            .load("coroutine.wrap(function() while true do end end)()")
            .exec()
            .unwrap_err();
        assert!(e.to_string().contains("instruction budget"), "{e}");
    }

    #[test]
    fn interrupt_flag_stops_a_busy_loop() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let flag = Arc::new(AtomicBool::new(false));
        let limits = Limits {
            interrupt: Some(flag.clone()),
            ..Default::default()
        };
        let (lua, _) = new_state(&limits).unwrap();
        assert_eq!(lua.load("return 1 + 1").eval::<i64>().unwrap(), 2);
        flag.store(true, Ordering::Relaxed);
        // As an async call it yields, even out of pcall: the caller gets control back and
        // drops the future.
        let f = lua
            .load("while true do pcall(function() while true do end end) end")
            .into_function()
            .unwrap();
        let mut fut = std::pin::pin!(f.call_async::<()>(()));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Pending));
        // Where it cannot yield, it raises.
        let e = lua.load("while true do end").exec().unwrap_err();
        assert!(e.to_string().contains(INTERRUPTED), "{e}");
        flag.store(false, Ordering::Relaxed);
        assert_eq!(lua.load("return 2 + 2").eval::<i64>().unwrap(), 4);
    }

    #[test]
    fn memory_limit() {
        let limits = Limits {
            memory_bytes: 8 << 20,
            ..Default::default()
        };
        let (lua, _) = new_state(&limits).unwrap();
        let e = lua
            .load("local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(100) .. i end")
            .exec()
            .unwrap_err();
        assert!(matches!(e, mlua::Error::MemoryError(_)), "{e}");
    }
}
