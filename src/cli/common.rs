//! What subcommands share on the command line: the Lua limits and `--arg` (`gfi run`, `gfi
//! repl`), and HTTPS for a server (`gfi agent`, `gfi controller`). (The backend's flags are
//! [`crate::backend::spec::BackendArgs`].)

use crate::lua::sandbox::Limits;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct LuaArgs {
    /// Keep io, os.execute, loadfile, dofile and debug in the Lua state.
    #[arg(long)]
    pub allow_unsafe: bool,
    /// More directories where `require` looks for modules.
    #[arg(long = "lib-path", value_name = "DIR")]
    pub lib_paths: Vec<PathBuf>,
    /// Lua memory limit, e.g. 512MiB, 2GiB.
    #[arg(long, value_name = "SIZE", default_value = "512MiB", value_parser = parse_size)]
    pub memory_limit: usize,
    /// Lua instruction budget for the whole run (`gfi repl`: for each chunk).
    #[arg(long, value_name = "N", default_value_t = Limits::default().instructions)]
    pub instruction_limit: u64,
}

impl LuaArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            memory_bytes: self.memory_limit,
            instructions: self.instruction_limit,
            allow_unsafe: self.allow_unsafe,
            interrupt: None,
        }
    }
}

pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (expected e.g. 512MiB, 2GiB, 1048576)"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}' (use KiB, MiB or GiB)")),
    };
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if bytes < (1 << 20) {
        return Err(format!("'{s}' is below the 1MiB minimum"));
    }
    Ok(bytes)
}

/// `--arg key=value`.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not key=value"))?;
    crate::session::check_arg_name(k)?;
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert!(parse_size("12").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn kv() {
        assert_eq!(
            parse_kv("faults=10").unwrap(),
            ("faults".into(), "10".into())
        );
        assert_eq!(parse_kv("x=a=b").unwrap().1, "a=b");
        assert!(parse_kv("novalue").is_err());
        assert!(parse_kv("bad key=1").is_err());
    }
}

/// HTTPS for a server.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// Serve HTTPS: the PEM certificate chain (with --tls-key; e.g. a kubernetes.io/tls Secret's
    /// tls.crt). A renewed certificate is taken up without a restart.
    #[arg(long, env = "GFI_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key.
    #[arg(long, env = "GFI_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The certificate and key files, when HTTPS was asked for.
    pub fn files(&self) -> Option<(PathBuf, PathBuf)> {
        self.tls_cert.clone().zip(self.tls_key.clone())
    }
}
