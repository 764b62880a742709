//! Certificates for tests of TLS connections to a private server.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The files [`test_certificates`] makes.
#[derive(Clone, Debug)]
pub struct TestCertificates {
    /// The certificate of a test authority: the root a client trusts (`sslrootcert=`).
    pub root: PathBuf,
    /// The server's certificate for `localhost` and `127.0.0.1`, signed by [`Self::root`].
    pub cert: PathBuf,
    /// The server certificate's private key (PEM, unencrypted).
    pub key: PathBuf,
}

/// Makes a test certificate authority and a server certificate it signs, for `localhost` and
/// `127.0.0.1` (valid one day), with the `openssl` command, in `dir`.
///
/// # Panics
///
/// When `openssl` is missing (the message says how to install it) or fails: this is for tests.
///
/// # Examples
///
/// ```no_run
/// let dir = std::env::temp_dir();
/// let certs = queue_core::testing::test_certificates(&dir);
/// assert!(certs.root.exists() && certs.cert.exists() && certs.key.exists());
/// ```
pub fn test_certificates(dir: &Path) -> TestCertificates {
    let file = |name: &str| dir.join(name);
    let (root, root_key) = (file("root.pem"), file("root-key.pem"));
    let (cert, key, request) = (file("cert.pem"), file("key.pem"), file("request.pem"));
    let extensions = file("server.ext");
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=Skiff test authority",
        ],
        &[("-keyout", &root_key), ("-out", &root)],
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ],
        &[("-keyout", &key), ("-out", &request)],
    );
    std::fs::write(
        &extensions,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", extensions.display()));
    openssl(
        &["x509", "-req", "-days", "1", "-CAcreateserial"],
        &[
            ("-in", &request),
            ("-CA", &root),
            ("-CAkey", &root_key),
            ("-extfile", &extensions),
            ("-out", &cert),
        ],
    );
    TestCertificates { root, cert, key }
}

/// Runs `openssl args… (flag path)…`, panicking on failure.
fn openssl(args: &[&str], paths: &[(&str, &PathBuf)]) {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    for (flag, path) in paths {
        cmd.arg(flag).arg(path);
    }
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            panic!("`openssl` is needed to make test certificates (apt-get install openssl): {e}")
        });
    assert!(status.success(), "openssl {args:?} failed");
}
