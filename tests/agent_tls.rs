//! The agent over HTTPS (`--tls-cert`, `--tls-key`): served from a certificate and key, a
//! renewed certificate taken up without a restart, a broken one not, and plain HTTP refused.

mod common;

use common::{Node, https_get};

/// A certificate for `localhost` and its key, as PEM.
fn pair() -> (String, String) {
    let p = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    (p.cert.pem(), p.key_pair.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_serves_https_and_takes_up_a_renewed_certificate() {
    let node = Node::new(2);
    let (cert_a, key_a) = pair();
    let (cert_b, key_b) = pair();
    let (cert, key) = (node.path("tls.crt"), node.path("tls.key"));
    std::fs::write(&cert, &cert_a).unwrap();
    std::fs::write(&key, &key_a).unwrap();
    let mut config = node.config();
    config.tls = Some((cert.clone(), key.clone()));
    let agent = common::start(config).await;
    let r = https_get(agent.addr(), &cert_a, "localhost", "/health")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // Tokens still apply over TLS.
    let r = https_get(agent.addr(), &cert_a, "localhost", "/gpus")
        .await
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let plain = common::within(
        "a plain HTTP request to the HTTPS port",
        tokio::net::TcpStream::connect(agent.addr()),
    )
    .await
    .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(plain))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("/health")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert!(
        common::within("the plain HTTP answer", sender.send_request(req))
            .await
            .is_err()
    );

    // A renewal halfway written (the new certificate, the old key) is not taken up: the old
    // pair keeps serving.
    std::fs::write(&cert, &cert_b).unwrap();
    let r = https_get(agent.addr(), &cert_a, "localhost", "/health")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // Once the pair is whole, the next connection gets it, and the old one is no longer shown.
    std::fs::write(&key, &key_b).unwrap();
    let r = https_get(agent.addr(), &cert_b, "localhost", "/health")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let e = https_get(agent.addr(), &cert_a, "localhost", "/health")
        .await
        .unwrap_err();
    assert!(e.contains("handshake"), "{e}");
    agent.stop().await.unwrap();
}

#[test]
fn the_agent_refuses_to_start_with_files_that_are_not_a_pair() {
    let node = Node::new(1);
    let (cert_a, _) = pair();
    let (_, key_b) = pair();
    std::fs::write(node.path("tls.crt"), cert_a).unwrap();
    std::fs::write(node.path("tls.key"), key_b).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gfi"))
        .args(["agent", "--listen", "127.0.0.1:0", "--allow-non-chardev"])
        .arg("--kmsg-path")
        .arg(node.path("kmsg"))
        .arg("--proc-root")
        .arg(node.path("proc"))
        .arg("--token-file")
        .arg(node.path("token"))
        .arg("--state-dir")
        .arg(node.path("state"))
        .arg("--tls-cert")
        .arg(node.path("tls.crt"))
        .arg("--tls-key")
        .arg(node.path("tls.key"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--tls-cert and --tls-key do not make a usable pair"),
        "{err}"
    );
    // One without the other is a usage error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gfi"))
        .args(["agent", "--insecure-no-auth", "--tls-cert", "/x.crt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}
