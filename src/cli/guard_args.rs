//! `gfi run`'s guardrail flags: each overrides the script's `guard{...}` setting of the same
//! name, and any of them arms the guard for a script that sets none.

use crate::guard::GuardConfig;
use crate::guard::rules::{Limit, Window, parse_label};
use clap::Args;

#[derive(Debug, Clone, Default, Args)]
pub struct GuardArgs {
    /// Most nodes of the pool unavailable (cordoned or not Ready) at once: a count (3) or a
    /// percentage of the pool (10%, rounded down). Checked before every injection.
    #[arg(long, value_name = "N|P%", value_parser = Limit::parse)]
    pub max_unavailable: Option<Limit>,
    /// Only nodes with this label are targets, e.g. gfi.dev/fault-target=true.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_label)]
    pub require_label: Option<(String, String)>,
    /// Inject only within this window, e.g. "Tue 10:00-16:00 Europe/Berlin" (local time in an
    /// IANA zone, following daylight saving time), "Mon-Fri 09:00-17:00 UTC" or
    /// "22:00-06:00 +01:00"; several separated by ';'.
    #[arg(long, value_name = "WINDOW", value_parser = Window::parse)]
    pub window: Option<Window>,
    /// The pool max-unavailable counts, as a label selector (default nvidia.com/gpu.present=true).
    #[arg(long, value_name = "SELECTOR")]
    pub guard_pool: Option<String>,
    /// Do not stop on an XID line without this run's marker on a target node.
    #[arg(long)]
    pub no_tripwire: bool,
}

impl GuardArgs {
    pub fn config(&self) -> GuardConfig {
        GuardConfig {
            max_unavailable: self.max_unavailable,
            require_label: self.require_label.clone(),
            window: self.window.clone(),
            pool: self.guard_pool.clone(),
            tripwire: self.no_tripwire.then_some(false),
            breaker: None,
        }
    }
}
