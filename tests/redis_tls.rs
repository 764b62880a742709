//! `rediss://` against a private redis-server that only speaks TLS (self-signed certificate,
//! made with openssl for this test; `#insecure` skips verifying it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skiff::prelude::*;

struct TlsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls_server() -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    let queue_core::testing::TestCertificates { cert, key, .. } =
        queue_core::testing::test_certificates(dir.path());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&cert)
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install redis-server)");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "TLS redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsServer {
        child,
        port,
        _dir: dir,
    }
}

#[skiff::task]
async fn echo(s: String) -> Result<String, TaskError> {
    Ok(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_round_trip() {
    let server = start_tls_server();
    let url = format!("rediss://127.0.0.1:{}/0#insecure", server.port);
    let queue = Queue::connect(&url).await.expect("TLS connection");
    let handle = echo("over TLS".into()).enqueue(&queue).await.unwrap();
    let running = Consumer::builder(queue.clone())
        .register(echo)
        .build()
        .unwrap()
        .spawn();
    assert_eq!(
        handle.get(Duration::from_secs(60)).await.unwrap(),
        "over TLS"
    );
    running.shutdown(Duration::from_secs(5)).await.unwrap();

    // Plain text to the TLS port is an error, not a hang or a panic (one attempt: `connect`
    // itself would keep trying for its connect timeout).
    let plain = format!("redis://127.0.0.1:{}/0", server.port);
    let started = Instant::now();
    let one_attempt = skiff::connect_within(&plain, Duration::ZERO);
    let err = tokio::time::timeout(Duration::from_secs(30), one_attempt)
        .await
        .expect("a plain connection to a TLS port gives up")
        .unwrap_err();
    assert!(err.to_string().contains("redis"), "{err}");
    eprintln!(
        "plain connection refused after {:?}: {err}",
        started.elapsed()
    );
}
