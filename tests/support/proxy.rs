//! A TCP proxy a test controls, to cut the network between a worker and its store.
//!
//! [`Proxy::start`] listens on a free port of 127.0.0.1 and forwards every connection to a
//! target. A test points a store URL at [`Proxy::port`] and then plays a partition:
//!
//! * [`stall`](Proxy::stall)`(`[`Lost::Nothing`]`)`: nothing crosses in either direction; the
//!   bytes in transit are held (the proxy stops reading, so the senders' buffers fill up) and
//!   delivered by [`resume`](Proxy::resume), as TCP's retransmissions deliver them after a
//!   short partition. No socket is closed.
//! * [`stall`](Proxy::stall)`(`[`Lost::Connections`]`)`: the same, except that the connections
//!   open now never carry another byte: the bytes in transit are dropped, the server's side is
//!   closed (the server forgets them), and the client's side stays open without a FIN or a
//!   RST, silent forever, as when a NAT or a firewall on the path forgets its connections
//!   during a partition. A client notices only with a timeout of its own. Connections made
//!   after the stall began work once the link is back.
//! * [`cut`](Proxy::cut): every open connection is reset (RST) at once.
//!
//! A connection accepted while the link is stalled is forwarded once it is back (the kernel
//! completes the handshake, as retransmitted SYNs would once the path returns).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a stall does to the connections open when it begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lost {
    /// Nothing: their bytes are held and delivered after [`Proxy::resume`].
    Nothing,
    /// The connections: they stay silent forever (see the [module docs](self)).
    Connections,
}

#[derive(Clone, Copy, Debug, Default)]
struct Link {
    stalled: bool,
    /// Bumped by each stall that loses the connections open at the time.
    lost: u64,
    /// Bumped by each cut.
    cuts: u64,
}

/// What becomes of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Flow,
    Wait,
    Silent,
    Reset,
    /// The proxy is gone.
    Closed,
}

/// See the [module docs](self). Dropping it stops it and closes every connection.
pub struct Proxy {
    port: u16,
    link: watch::Sender<Link>,
    accepted: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `target` on the current Tokio runtime.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a proxy port");
        let port = listener.local_addr().expect("the proxy's address").port();
        let (link, _) = watch::channel(Link::default());
        let accepted = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn({
            let link = link.clone();
            let accepted = accepted.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let _ = client.set_nodelay(true);
                    tokio::spawn(serve(client, target, link.subscribe()));
                }
            }
        });
        Proxy {
            port,
            link,
            accepted,
            accept,
        }
    }

    /// The port the proxy listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Stops all traffic until [`resume`](Self::resume); `lost` says what becomes of the
    /// connections open now.
    pub fn stall(&self, lost: Lost) {
        self.link.send_modify(|link| {
            link.stalled = true;
            if lost == Lost::Connections {
                link.lost += 1;
            }
        });
    }

    /// Lets traffic through again.
    pub fn resume(&self) {
        self.link.send_modify(|link| link.stalled = false);
    }

    /// Resets every open connection (RST).
    pub fn cut(&self) {
        self.link.send_modify(|link| link.cuts += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // The connections' tasks see the sender gone and close their sockets.
    }
}

/// The fate of a connection made under `born`, now that the link is `now`.
fn fate(born: Link, now: Link) -> Fate {
    if now.cuts > born.cuts {
        Fate::Reset
    } else if now.lost > born.lost {
        Fate::Silent
    } else if now.stalled {
        Fate::Wait
    } else {
        Fate::Flow
    }
}

/// Waits until the connection may carry bytes (`Flow`) or never will again.
async fn until_flowing(link: &mut watch::Receiver<Link>, born: Link) -> Fate {
    loop {
        let now = fate(born, *link.borrow_and_update());
        if now != Fate::Wait {
            return now;
        }
        if link.changed().await.is_err() {
            return Fate::Closed;
        }
    }
}

/// Resolves when the connection is to fall silent, be reset, or the proxy is gone.
async fn until_ended(link: &mut watch::Receiver<Link>, born: Link) -> Fate {
    loop {
        let now = fate(born, *link.borrow_and_update());
        if matches!(now, Fate::Silent | Fate::Reset) {
            return now;
        }
        if link.changed().await.is_err() {
            return Fate::Closed;
        }
    }
}

/// Copies `from` to `to` while the link lets it; returns why it stopped (`Closed` also for
/// an end of stream or an error on either side).
async fn pump(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    mut link: watch::Receiver<Link>,
    born: Link,
) -> Fate {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Fate::Closed,
                Ok(n) => n,
            },
            fate = until_ended(&mut link, born) => return fate,
        };
        // Held here while the link is stalled.
        match until_flowing(&mut link, born).await {
            Fate::Flow => {}
            other => return other,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return Fate::Closed;
        }
    }
}

async fn serve(mut client: TcpStream, target: SocketAddr, mut link: watch::Receiver<Link>) {
    let born = *link.borrow_and_update();
    let end = match until_flowing(&mut link, born).await {
        Fate::Flow => match TcpStream::connect(target).await {
            Ok(mut upstream) => {
                let _ = upstream.set_nodelay(true);
                let end = {
                    let (mut cr, mut cw) = client.split();
                    let (mut ur, mut uw) = upstream.split();
                    tokio::select! {
                        end = pump(&mut cr, &mut uw, link.clone(), born) => end,
                        end = pump(&mut ur, &mut cw, link.clone(), born) => end,
                    }
                };
                if end == Fate::Reset {
                    let _ = upstream.set_zero_linger();
                }
                end
            }
            // The target is down: the client sees its connection closed.
            Err(_) => Fate::Closed,
        },
        other => other,
    };
    match end {
        Fate::Silent => {
            // The server's side is gone (dropped above); the client's stays open and silent
            // until the client gives up on it or the proxy stops.
            let mut sink = vec![0u8; 16 * 1024];
            loop {
                tokio::select! {
                    read = client.read(&mut sink) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    },
                    changed = link.changed() => if changed.is_err() { return },
                }
            }
        }
        Fate::Reset => {
            let _ = client.set_zero_linger();
        }
        Fate::Flow | Fate::Wait | Fate::Closed => {}
    }
}
