//! `inject_xid`: one XID line into a node's kernel log.

use super::set_fn;
use crate::backend::InjectRequest;
use crate::journal::EntryKind;
use crate::lua::Ctx;
use crate::lua::convert::*;
use crate::xid::line::{LineOptions, LineStyle, check_process_name, check_text, provenance_name};
use crate::xid::{PciAddress, catalog};
use mlua::{Lua, Table, Value};

pub const OPTIONS: &[&str] = &[
    "style",
    "text",
    "pid",
    "process_name",
    "channel",
    "level",
    "id",
    "preflight",
];

pub fn register(lua: &Lua, gfi: &Table) -> mlua::Result<()> {
    set_fn(
        lua,
        gfi,
        "inject_xid",
        lua.create_async_function(
            |lua, (node, gpu, xid, opts): (Value, Value, Value, Value)| async move {
                const F: &str = "inject_xid";
                let ctx = Ctx::get(&lua)?;
                let node = node_name(F, 1, &node)?;
                let gpu = gpu_selector(F, 2, &node, &gpu)?;
                let xid = catalog::validate_xid(integer(F, 3, "xid", &xid)?)
                    .map_err(|e| arg_err(F, 3, "xid", e))?;
                let o = options(F, 4, &opts, OPTIONS)?;
                let line = line_options(&ctx, &o)?;
                let preflight = opt_bool(F, &o, "preflight")?.unwrap_or(true);
                let seq = ctx.fault_seq.get() + 1;
                ctx.fault_seq.set(seq);
                let fault_id = match opt_string(F, &o, "id")? {
                    Some(id) => {
                        if id.is_empty()
                            || id.len() > 64
                            || !id
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                        {
                            return Err(err(format!(
                                "{F}: option 'id' must be 1-64 letters, digits, '-', '_' or '.'"
                            )));
                        }
                        id
                    }
                    None => format!("{}-{seq:04}", ctx.run_id),
                };
                if ctx.dry_run {
                    return Err(err(format!(
                        "{F}: this is a dry run (--dry-run): nothing is injected; a plan's run() prints its schedule instead"
                    )));
                }
                // The guardrails, here rather than in a stdlib module, so no script reaches
                // the backend around them.
                if let Err(stop) = ctx
                    .guard
                    .check_injection(&*ctx.backend, &node, xid, ctx.clock.now())
                    .await
                {
                    return Err(err(format!("{F}: {}", stop.describe())));
                }
                let req = InjectRequest {
                    node: node.clone(),
                    gpu,
                    xid,
                    line,
                    fault_id,
                    provenance: provenance_name(&ctx.run_id),
                    preflight,
                };
                match ctx.backend.inject_xid(&req).await {
                    Ok(rec) => {
                        ctx.injections.set(ctx.injections.get() + 1);
                        ctx.guard.injected(&node, &rec.line);
                        let info = catalog::lookup_or_generic(xid);
                        ctx.journal.record(
                            crate::journal::EntryKind::Inject,
                            Some(&node),
                            format!(
                                "XID {xid} ({}) on GPU {} ({})",
                                info.mnemonic, rec.gpu, rec.pci
                            ),
                            serde_json::to_value(&rec).unwrap_or_default(),
                        );
                        for w in &rec.warnings {
                            ctx.journal.record(
                                EntryKind::Log,
                                Some(&node),
                                format!("warning: {w}"),
                                serde_json::json!({"level": "warn", "fault_id": rec.id}),
                            );
                        }
                        let t = to_lua(&lua, &rec)?;
                        if let Value::Table(t) = &t {
                            t.set("at", ctx.now())?;
                        }
                        one(&lua, t)
                    }
                    Err(e) => refused(&lua, F, Some(&node), e, EntryKind::InjectFailed),
                }
            },
        )?,
    )?;
    Ok(())
}

fn line_options(ctx: &Ctx, o: &Option<Table>) -> mlua::Result<LineOptions> {
    const F: &str = "inject_xid";
    let style = match opt_string(F, o, "style")? {
        Some(s) => s
            .parse::<LineStyle>()
            .map_err(|e| err(format!("{F}: option 'style': {e}")))?,
        None => ctx.line_style,
    };
    let text = opt_string(F, o, "text")?;
    if let Some(t) = &text {
        check_text("text", t).map_err(|e| err(format!("{F}: option {e}")))?;
    }
    let process_name = opt_string(F, o, "process_name")?;
    if let Some(n) = &process_name {
        check_process_name(n).map_err(|e| err(format!("{F}: option {e}")))?;
    }
    let pid = match opt_integer(F, o, "pid")? {
        Some(p) if (0..=u32::MAX as i64).contains(&p) => Some(p as u32),
        Some(p) => {
            return Err(err(format!(
                "{F}: option 'pid' must be 0..4294967295, got {p}"
            )));
        }
        None => None,
    };
    let channel = match opt_integer(F, o, "channel")? {
        Some(c) if (0..=u32::MAX as i64).contains(&c) => Some(c as u32),
        Some(c) => {
            return Err(err(format!(
                "{F}: option 'channel' must be 0..4294967295, got {c}"
            )));
        }
        None => None,
    };
    let level = match opt_integer(F, o, "level")? {
        Some(l) if (0..=7).contains(&l) => Some(l as u8),
        Some(l) => {
            return Err(err(format!(
                "{F}: option 'level' must be a syslog level 0-7, got {l}"
            )));
        }
        None => None,
    };
    Ok(LineOptions {
        style,
        text,
        pid,
        process_name,
        channel,
        level,
    })
}

/// `format_xid(pci, xid [, opts])`: the line `inject_xid` would write, without writing it.
pub fn register_format(lua: &Lua, gfi: &Table) -> mlua::Result<()> {
    set_fn(
        lua,
        gfi,
        "format_xid",
        lua.create_function(|lua, (pci, xid, opts): (Value, Value, Value)| {
            const F: &str = "format_xid";
            let ctx = Ctx::get(lua)?;
            let pci: PciAddress = match &pci {
                Value::String(s) => s.to_str()?.parse().map_err(|e| arg_err(F, 1, "pci", e))?,
                other => {
                    return Err(arg_err(
                        F,
                        1,
                        "pci",
                        format!("must be a PCI address string, got {}", describe(other)),
                    ));
                }
            };
            let xid = catalog::validate_xid(integer(F, 2, "xid", &xid)?)
                .map_err(|e| arg_err(F, 2, "xid", e))?;
            let o = options(F, 3, &opts, OPTIONS)?;
            let line = line_options(&ctx, &o)?;
            crate::xid::line::format_line(&pci, xid, &line, &provenance_name(&ctx.run_id))
                .map(|l| l.trim_end_matches('\n').to_string())
                .map_err(|e| err(format!("{F}: {e}")))
        })?,
    )
}
