//! Owned connections: a few connections to one server that a caller's task drives itself, for
//! single-task enqueues (one producer awaiting one `enqueue` after another: a web handler).
//!
//! A shared multiplexed connection (`lanes.rs`) runs its I/O in a driver task of its own, so a
//! call crosses to that task and back: two wake-ups of other tasks, and on a multi-threaded
//! runtime often two thread hops, per call. An owned connection is the same `redis`
//! connection with its driver future kept here instead of spawned: the caller polls it
//! together with its request ([`OwnedConn`] is a [`ConnectionLike`] that does that), so the
//! request is written, and its reply read, by the caller's own task.
//!
//! One connection serves one call at a time; the pool keeps at most [`OWNED_MAX`] (taken
//! last-in first-out, so a sequential producer reuses one), and a call that finds them all busy
//! goes through the shared connections instead, which pipeline concurrent calls better anyway.
//!
//! Failures stay clean:
//! * a connection goes back to the pool only after a call on it completed; a call whose
//!   future was dropped midway (the caller timed out or was cancelled) drops its connection,
//!   so no connection with an unread reply is ever handed out again;
//! * a call that failed in a way that means the connection is gone (I/O error, closed, timed
//!   out) drops it; a server error (a script's error, `NOSCRIPT`) keeps it;
//! * an idle connection is checked before it is handed out (its driver polled once: a
//!   connection the server closed meanwhile has ended), so a server restart or a
//!   `CLIENT KILL` seen by the kernel costs no failed call, and one killed silently (a network
//!   partition) costs the one call that finds out.
//!
//! They take the URL's TLS (`rediss://`, `#insecure`), credentials, database and protocol, and
//! name themselves `skiff-enqueue` (`CLIENT LIST`). Not used on a Redis Cluster (a call there
//! goes through the cluster client, which routes it), with
//! [`RedisOptions::wait_replicas`](crate::RedisOptions::wait_replicas) (the `WAIT` must follow
//! on the connection of the change: such calls take the shared path), or for a Unix socket.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, Pipeline, RedisError, RedisFuture,
    RedisResult, Value,
};
use tokio::net::TcpStream;
use tokio_util::either::Either;

/// Owned connections kept at most (see the [module docs](self)).
pub(crate) const OWNED_MAX: usize = 4;

/// The name an owned connection gives itself (`CLIENT SETNAME`).
pub(crate) const OWNED_NAME: &str = "skiff-enqueue";

type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One owned connection: the `redis` connection and its driver, polled by the caller.
pub(crate) struct OwnedConn {
    conn: MultiplexedConnection,
    driver: Driver,
    /// The driver ended: the connection is closed.
    closed: bool,
    /// How long a call waits for its reply.
    timeout: Duration,
}

impl OwnedConn {
    /// Polls the driver once without a caller to wake: whether the connection is still open
    /// (a connection the server closed ends its driver).
    fn alive(&mut self) -> bool {
        if !self.closed {
            let mut cx = Context::from_waker(Waker::noop());
            if self.driver.as_mut().poll(&mut cx).is_ready() {
                self.closed = true;
            }
        }
        !self.closed
    }

    /// Runs `request` (a call on `self.conn`) while polling the driver in the same task, for
    /// at most the connection's response timeout.
    ///
    /// Only the socket (through the driver) and the timeout may wake the caller: the request
    /// is polled with a waker that does nothing, and the driver too while the request is
    /// queued for it. Otherwise queueing the request, and later the driver handing over the
    /// reply, would wake the caller's own task while it runs, which a multi-threaded Tokio
    /// runtime answers by scheduling the task again and waking another worker to steal it:
    /// context switches for nothing. Nothing else can move the call on: its reply comes only
    /// from the driver, which this task polls.
    fn drive<'a, T: Send + 'a>(
        &'a mut self,
        request: impl FnOnce(&'a mut MultiplexedConnection) -> RedisFuture<'a, T> + Send + 'a,
    ) -> RedisFuture<'a, T> {
        let OwnedConn {
            conn,
            driver,
            closed,
            timeout,
        } = self;
        if *closed {
            return Box::pin(async { Err(gone()) });
        }
        let timeout = *timeout;
        let mut req = request(conn);
        let mut queued = false;
        let call = std::future::poll_fn(move |cx| {
            let mut quiet = Context::from_waker(Waker::noop());
            if !queued {
                queued = true;
                // The driver's wakers are now the quiet one, so queueing wakes nobody.
                if driver.as_mut().poll(&mut quiet).is_ready() {
                    *closed = true;
                    return Poll::Ready(Err(gone()));
                }
                if let Poll::Ready(v) = req.as_mut().poll(&mut quiet) {
                    return Poll::Ready(v);
                }
            }
            // The driver writes the request, and later reads its reply, in this task.
            if driver.as_mut().poll(cx).is_ready() {
                *closed = true;
                return match req.as_mut().poll(&mut quiet) {
                    Poll::Ready(v) => Poll::Ready(v),
                    Poll::Pending => Poll::Ready(Err(gone())),
                };
            }
            req.as_mut().poll(&mut quiet)
        });
        Box::pin(async move {
            match tokio::time::timeout(timeout, call).await {
                Ok(reply) => reply,
                Err(_) => Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no reply within the response timeout",
                ))),
            }
        })
    }
}

impl ConnectionLike for OwnedConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.drive(move |c| Box::pin(c.send_packed_command(cmd)))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.drive(move |c| Box::pin(c.send_packed_commands(pipeline, offset, count)))
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// The error of a call on a closed owned connection.
fn gone() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the connection was closed",
    ))
}

/// The pool of owned connections of one store (see the [module docs](self)).
pub(crate) struct OwnedPool {
    info: ConnectionInfo,
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    response_timeout: Duration,
    idle: Mutex<Vec<OwnedConn>>,
    /// Connections idle, in use or connecting.
    open: AtomicUsize,
}

impl OwnedPool {
    /// A pool for the server of `info`, or `None` where owned connections are not used (a
    /// Unix socket; TLS parameters beyond what a URL says).
    pub(crate) fn new(
        info: ConnectionInfo,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> RedisResult<Option<Self>> {
        let tls = match info.addr() {
            ConnectionAddr::Tcp(..) => None,
            ConnectionAddr::TcpTls {
                insecure,
                tls_params: None,
                ..
            } => Some(tls_config(*insecure)?),
            _ => return Ok(None),
        };
        Ok(Some(Self {
            info,
            tls,
            connect_timeout,
            response_timeout,
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
        }))
    }

    /// An owned connection: an idle one, or a new one while fewer than [`OWNED_MAX`] are
    /// open; `None` when all are busy.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it connects drops the new connection.
    pub(crate) async fn get(&self) -> RedisResult<Option<Owned<'_>>> {
        loop {
            let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(mut conn) = conn else { break };
            if conn.alive() {
                return Ok(Some(Owned {
                    pool: self,
                    conn: Some(conn),
                    keep: false,
                }));
            }
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
        let open = self.open.fetch_add(1, Ordering::Relaxed);
        // Counted from here: dropped (or failed) before it holds a connection, it uncounts.
        let mut owned = Owned {
            pool: self,
            conn: None,
            keep: false,
        };
        if open >= OWNED_MAX {
            return Ok(None);
        }
        owned.conn = Some(self.connect().await?);
        Ok(Some(owned))
    }

    async fn connect(&self) -> RedisResult<OwnedConn> {
        let (host, port) = match self.info.addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                (host.as_str(), *port)
            }
            _ => return Err(gone()),
        };
        let open = async {
            let tcp = TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let stream = match &self.tls {
                None => Either::Left(tcp),
                Some(config) => {
                    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                    let tls = tokio_rustls::TlsConnector::from(config.clone())
                        .connect(name, tcp)
                        .await?;
                    Either::Right(tls)
                }
            };
            // The calls' timeout is `drive`'s: the connection's own would need the request
            // polled with the caller's waker.
            let config = AsyncConnectionConfig::new().set_response_timeout(None);
            let (conn, driver) =
                MultiplexedConnection::new_with_config(self.info.redis_settings(), stream, config)
                    .await?;
            let mut conn = OwnedConn {
                conn,
                driver: Box::pin(driver),
                closed: false,
                timeout: self.response_timeout,
            };
            redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(OWNED_NAME)
                .query_async::<()>(&mut conn)
                .await?;
            Ok::<_, RedisError>(conn)
        };
        match tokio::time::timeout(self.connect_timeout, open).await {
            Ok(conn) => conn,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connecting timed out",
            ))),
        }
    }
}

/// An owned connection taken from its pool. Dropped, it goes back to the pool only if
/// [`keep`](Owned::keep) was called after a call that completed; otherwise it is closed.
pub(crate) struct Owned<'a> {
    pool: &'a OwnedPool,
    conn: Option<OwnedConn>,
    keep: bool,
}

impl Owned<'_> {
    /// The connection.
    pub(crate) fn conn(&mut self) -> Option<&mut OwnedConn> {
        self.conn.as_mut()
    }

    /// Marks the connection fit for another call: its last call completed and it did not
    /// break (`err`: that call's error, if it failed).
    pub(crate) fn keep(&mut self, err: Option<&RedisError>) {
        self.keep = err.is_none_or(|e| !crate::lanes::broken(e));
    }
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        match self.conn.take() {
            Some(conn) if self.keep && !conn.closed => {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(conn);
            }
            _ => {
                self.pool.open.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// The TLS client configuration of a `rediss://` URL, as the `redis` crate builds it: the Web
/// PKI roots, or with `#insecure` no certificate check at all.
fn tls_config(insecure: bool) -> RedisResult<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCheck(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

fn tls_error(e: rustls::Error) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// `#insecure`: any certificate is accepted (signatures are still checked).
#[derive(Debug)]
struct NoCheck(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
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
        cert: &rustls::pki_types::CertificateDer<'_>,
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
