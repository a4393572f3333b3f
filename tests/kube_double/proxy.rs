//! The pods/proxy subresource: `/api/v1/namespaces/NS/pods/[SCHEME:]POD[:PORT]/proxy/REST`
//! forwarded to `http://<status.podIP>:PORT/REST` over a real TCP connection, the answer
//! streamed back. Like kube-apiserver, it drops `Authorization`, `Proxy-Authorization` and
//! every `X-Remote-*` header and passes the rest, the query and the body unchanged. With the
//! `https` scheme it speaks TLS to the pod and, like kube-apiserver's proxy transport, does not
//! verify the pod's certificate.

use super::resources;
use super::status::ApiError;
use super::store::Store;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, Method, Response};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

fn dropped_on_the_way_in(name: &HeaderName) -> bool {
    let n = name.as_str();
    n == "authorization"
        || n == "proxy-authorization"
        || n.starts_with("x-remote-")
        || n == "content-length"
        || HOP_BY_HOP.contains(&n)
}

/// `[scheme:]name[:port]`, as the API server splits a proxy target.
fn split_target(id: &str) -> Result<(&str, &str, &str), ApiError> {
    let parts: Vec<&str> = id.split(':').collect();
    let invalid = || ApiError::bad_request(format!("invalid pod request {id:?}"));
    match parts.as_slice() {
        [name] => Ok(("", name, "")),
        [name, port] => Ok(("", name, port)),
        [scheme, name, port] if *scheme == "http" || *scheme == "https" => Ok((scheme, name, port)),
        _ => Err(invalid()),
    }
}

/// Where the request goes: the pod's IP and port, from the stored Pod, and whether over TLS.
fn location(store: &Mutex<Store>, ns: &str, id: &str) -> Result<(SocketAddr, bool), ApiError> {
    let (scheme, name, port) = split_target(id)?;
    let pod = store
        .lock()
        .unwrap()
        .get(resources::pods(), ns, name)
        .ok_or_else(|| ApiError::not_found(resources::pods(), name))?;
    let port = if port.is_empty() {
        pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| c["ports"][0]["containerPort"].as_u64())
            .map(|p| p.to_string())
            .unwrap_or_default()
    } else {
        port.to_string()
    };
    // The API server only reaches global unicast addresses; the double also reaches loopback,
    // where its tests' pods live.
    let ip: IpAddr = pod["status"]["podIP"]
        .as_str()
        .unwrap_or("")
        .parse()
        .map_err(|_| ApiError::bad_request("address not allowed"))?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(ApiError::bad_request("address not allowed"));
    }
    let port: u16 = match port.parse() {
        Ok(p) => p,
        // The real server's request crashed on a named port; the double refuses it.
        Err(_) => {
            return Err(ApiError::service_unavailable(format!(
                "error trying to reach service: dial tcp: address {ip}:{port}: unknown port (the \
                 double takes port numbers only)"
            )));
        }
    };
    Ok((SocketAddr::new(ip, port), scheme == "https"))
}

/// kube-apiserver's proxy transport skips verification of pod certificates
/// (`InsecureSkipVerify`); so does the double, with the signatures still checked.
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_to_pods() -> tokio_rustls::TlsConnector {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

/// One request on a fresh HTTP/1.1 connection over `io`.
async fn exchange<IO>(
    io: IO,
    req: hyper::Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, ApiError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let reach = |e: &dyn std::fmt::Display| {
        ApiError::service_unavailable(format!("error trying to reach service: {e}"))
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| reach(&e))?;
    tokio::spawn(conn);
    sender.send_request(req).await.map_err(|e| reach(&e))
}

fn unreachable(addr: SocketAddr, e: &std::io::Error) -> ApiError {
    let why = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => e.to_string(),
    };
    ApiError::service_unavailable(format!(
        "error trying to reach service: dial tcp {addr}: {why}"
    ))
}

pub struct Forward<'a> {
    pub namespace: &'a str,
    pub target: &'a str,
    pub rest: &'a str,
    pub query: Option<&'a str>,
    pub method: Method,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    pub client: SocketAddr,
}

pub async fn forward(store: &Mutex<Store>, f: Forward<'_>) -> Result<Response<Body>, ApiError> {
    let (addr, tls) = location(store, f.namespace, f.target)?;
    let stream = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .map_err(|_| unreachable(addr, &std::io::ErrorKind::TimedOut.into()))?
    .map_err(|e| unreachable(addr, &e))?;
    let uri = match f.query {
        Some(q) => format!("/{}?{q}", f.rest),
        None => format!("/{}", f.rest),
    };
    let mut req = hyper::Request::builder().method(f.method).uri(uri);
    for (name, value) in f.headers {
        if !dropped_on_the_way_in(name) {
            req = req.header(name, value);
        }
    }
    req = req
        .header("host", addr.to_string())
        .header("x-forwarded-for", f.client.ip().to_string());
    let req = req
        .body(Full::new(f.body))
        .map_err(|e| ApiError::bad_request(format!("cannot forward the request: {e}")))?;
    let resp = if tls {
        let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
        let stream = tls_to_pods().connect(name, stream).await.map_err(|e| {
            ApiError::service_unavailable(format!("error trying to reach service: {e}"))
        })?;
        exchange(stream, req).await?
    } else {
        exchange(stream, req).await?
    };
    let (parts, body) = resp.into_parts();
    let mut out = Response::builder().status(parts.status);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            out = out.header(name, value);
        }
    }
    out.body(Body::new(body))
        .map_err(|e| ApiError::internal(&format!("cannot relay the pod's answer: {e}")))
}
