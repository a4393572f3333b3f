//! How a real-cluster backend finds the Kubernetes API, the way kubectl does: `--kubeconfig`
//! (else `KUBECONFIG`, else `~/.kube/config`) with `--context` (else the current context), and
//! inside a pod with no kubeconfig, the pod's ServiceAccount.
//!
//! The kubeconfig is read and its context checked when the backend is built, so a wrong path
//! or context fails the run before it starts; the client itself connects on first use.

use super::BackendError;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::PathBuf;

/// The client options of `gfi run`/`gfi repl` for `local` and `kube`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeConnect {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// A resolved choice of API server, not yet connected.
#[derive(Clone)]
pub struct KubeTarget {
    source: Source,
    /// "https://10.0.0.1:6443 (context prod-gpu)": for error messages.
    pub description: String,
}

#[derive(Clone)]
enum Source {
    Kubeconfig(Box<Kubeconfig>, KubeConfigOptions),
    InCluster(Box<kube::Config>),
}

/// Why no API server could be chosen, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoApiServer(pub String);

impl KubeConnect {
    /// Picks the API server without connecting. `Ok(None)`: there is nothing to connect to (no
    /// kubeconfig and not in a pod), which is not an error until a call needs the API.
    pub fn resolve(&self) -> Result<Option<KubeTarget>, BackendError> {
        let invalid = |why: String| BackendError::invalid("Kubernetes client configuration", why);
        let (kc, from) = match &self.kubeconfig {
            Some(p) => (
                Kubeconfig::read_from(p).map_err(|e| {
                    invalid(format!("cannot read --kubeconfig {}: {e}", p.display()))
                })?,
                p.display().to_string(),
            ),
            None => match default_kubeconfig() {
                Some(from) => (
                    Kubeconfig::read()
                        .map_err(|e| invalid(format!("cannot read the kubeconfig {from}: {e}")))?,
                    from,
                ),
                None => return self.in_cluster(),
            },
        };
        let context = match self.context.clone().or_else(|| kc.current_context.clone()) {
            Some(c) => c,
            None => {
                return Err(invalid(format!(
                    "the kubeconfig {from} has no current-context; name one with --context ({})",
                    names(kc.contexts.iter().map(|c| c.name.as_str()))
                )));
            }
        };
        let Some(ctx) = kc.contexts.iter().find(|c| c.name == context) else {
            return Err(invalid(format!(
                "the kubeconfig {from} has no context {context:?} ({})",
                names(kc.contexts.iter().map(|c| c.name.as_str()))
            )));
        };
        let cluster = ctx.context.as_ref().map(|c| c.cluster.as_str());
        let server = cluster
            .and_then(|name| kc.clusters.iter().find(|c| c.name == name))
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone())
            .ok_or_else(|| {
                invalid(format!(
                    "context {context:?} of {from} names cluster {:?}, which has no server URL",
                    cluster.unwrap_or("")
                ))
            })?;
        let opts = KubeConfigOptions {
            context: Some(context.clone()),
            ..Default::default()
        };
        Ok(Some(KubeTarget {
            source: Source::Kubeconfig(Box::new(kc), opts),
            description: format!("{server} (context {context} of {from})"),
        }))
    }

    fn in_cluster(&self) -> Result<Option<KubeTarget>, BackendError> {
        if std::env::var("KUBERNETES_SERVICE_HOST").is_ok_and(|h| !h.is_empty()) {
            if let Some(c) = &self.context {
                return Err(BackendError::invalid(
                    "--context",
                    format!(
                        "{c:?} names a kubeconfig context, but there is no kubeconfig here (running in a pod: the pod's ServiceAccount is used); drop --context or pass --kubeconfig"
                    ),
                ));
            }
            let cfg = kube::Config::incluster().map_err(|e| {
                BackendError::invalid(
                    "in-cluster Kubernetes configuration",
                    format!("KUBERNETES_SERVICE_HOST is set but the pod's ServiceAccount config is unusable: {e}"),
                )
            })?;
            let description = format!("{} (in-cluster ServiceAccount)", cfg.cluster_url);
            return Ok(Some(KubeTarget {
                source: Source::InCluster(Box::new(cfg)),
                description,
            }));
        }
        if let Some(c) = &self.context {
            return Err(BackendError::invalid(
                "--context",
                format!(
                    "{c:?} names a kubeconfig context, but there is no kubeconfig (KUBECONFIG is not set and ~/.kube/config does not exist); pass --kubeconfig FILE"
                ),
            ));
        }
        Ok(None)
    }

    /// Why [`resolve`](Self::resolve) found nothing, for the calls that need the API.
    pub fn nothing_found() -> String {
        "there is no Kubernetes client configuration: no --kubeconfig, KUBECONFIG is not set, ~/.kube/config does not exist and this is not a pod (KUBERNETES_SERVICE_HOST is not set)".into()
    }
}

impl KubeTarget {
    /// Whether this is a pod's own ServiceAccount (the agents are then reached directly).
    pub fn in_cluster(&self) -> bool {
        matches!(self.source, Source::InCluster(_))
    }

    /// Builds the client (runs an exec credential plugin if the kubeconfig has one).
    pub async fn connect(&self) -> Result<kube::Client, BackendError> {
        let failed = |e: String| BackendError::Unreachable {
            node: None,
            what: "connecting to the Kubernetes API".into(),
            target: self.description.clone(),
            reason: e,
        };
        let cfg = match &self.source {
            Source::Kubeconfig(kc, opts) => {
                kube::Config::from_custom_kubeconfig((**kc).clone(), opts)
                    .await
                    .map_err(|e| failed(e.to_string()))?
            }
            Source::InCluster(cfg) => (**cfg).clone(),
        };
        kube::Client::try_from(cfg).map_err(|e| failed(e.to_string()))
    }
}

/// The kubeconfig kubectl would read, if there is one.
fn default_kubeconfig() -> Option<String> {
    if let Some(v) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        return Some(format!("KUBECONFIG={}", v.to_string_lossy()));
    }
    let home = std::env::var_os("HOME")?;
    let p = PathBuf::from(home).join(".kube").join("config");
    p.exists().then(|| p.display().to_string())
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<String> = it.map(str::to_string).collect();
    if v.is_empty() {
        "it has no contexts".into()
    } else {
        format!("contexts: {}", super::summarize(&v, 8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KC: &str = "apiVersion: v1
kind: Config
current-context: a
clusters:
- name: c1
  cluster: {server: 'https://10.1.2.3:6443'}
contexts:
- name: a
  context: {cluster: c1, user: u}
- name: b
  context: {cluster: missing, user: u}
users:
- name: u
  user: {token: t}
";

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("kubeconfig");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    #[test]
    fn picks_the_current_context_or_the_named_one() {
        let (_d, p) = file(KC);
        let c = KubeConnect {
            kubeconfig: Some(p.clone()),
            context: None,
        };
        let t = c.resolve().unwrap().unwrap();
        assert!(
            t.description
                .starts_with("https://10.1.2.3:6443 (context a of "),
            "{}",
            t.description
        );
        assert!(!t.in_cluster());
        let err = KubeConnect {
            kubeconfig: Some(p.clone()),
            context: Some("zz".into()),
        }
        .resolve()
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("no context \"zz\" (contexts: a, b)"), "{err}");
        let err = KubeConnect {
            kubeconfig: Some(p),
            context: Some("b".into()),
        }
        .resolve()
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("names cluster \"missing\", which has no server URL"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_kubeconfig_names_its_path() {
        let err = KubeConnect {
            kubeconfig: Some("/nonexistent/kc".into()),
            context: None,
        }
        .resolve()
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("cannot read --kubeconfig /nonexistent/kc"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn connects_from_the_kubeconfig() {
        let (_d, p) = file(KC);
        let t = KubeConnect {
            kubeconfig: Some(p),
            context: None,
        }
        .resolve()
        .unwrap()
        .unwrap();
        let client = t.connect().await.unwrap();
        assert_eq!(client.default_namespace(), "default");
    }
}
