//! [`RedisCluster`]: a private Redis Cluster of `redis-server` processes for tests.

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{RedisServer, ServerConfig};

/// A Redis Cluster of private `redis-server` processes on 127.0.0.1 (each in its own
/// temporary directory, killed on drop): by default 3 masters with one replica each, created
/// with `redis-cli --cluster create … --cluster-replicas 1`, ready once every node says
/// `cluster_state:ok`.
///
/// # Examples
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn demo() -> queue_core::Result<()> {
/// use queue_redis::testing::RedisCluster;
///
/// let cluster = RedisCluster::start();
/// let store = queue_redis::RedisStorage::connect(&cluster.url()).await?;
/// # let _ = store; Ok(()) }
/// ```
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// A port `p` below 55536 with `p` and `p + 10000` (the cluster bus) free.
fn cluster_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("local addr").port() % 30000 + 20000;
        drop(listener);
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10000) {
            return port;
        }
    }
}

impl RedisCluster {
    /// 3 masters and 3 replicas.
    pub fn start() -> Self {
        Self::with(3, 1)
    }

    /// `masters` masters (at least 3, as `redis-cli --cluster create` needs) with `replicas`
    /// replicas each.
    pub fn with(masters: usize, replicas: usize) -> Self {
        let count = masters * (1 + replicas);
        let nodes: Vec<RedisServer> = (0..count)
            .map(|_| {
                let config = ServerConfig {
                    cluster: true,
                    ..ServerConfig::default()
                };
                RedisServer::on_port(config, cluster_port())
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        let out = create
            .arg("--cluster-replicas")
            .arg(replicas.to_string())
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_ok(Duration::from_secs(30));
        cluster.wait_synced(Duration::from_secs(30));
        cluster
    }

    /// Waits until every replica's link to its master is up (its first sync done).
    pub fn wait_synced(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let synced = self.nodes.iter().filter(|n| n.pid().is_some()).all(|n| {
                let text = info(n.port(), "INFO", "replication");
                text.contains("role:master") || text.contains("master_link_status:up")
            });
            if synced {
                return;
            }
            assert!(Instant::now() < deadline, "the replicas did not sync");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every live node says `cluster_state:ok` and knows every master's slots.
    pub fn wait_ok(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ok = self.nodes.iter().filter(|n| n.pid().is_some()).all(|n| {
                info(n.port(), "CLUSTER", "INFO").contains("cluster_state:ok")
                    && self.live_masters_seen_by(n.port())
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the node on `port` sees a master on every live master's port.
    fn live_masters_seen_by(&self, port: u16) -> bool {
        let seen = masters_of(&info(port, "CLUSTER", "NODES"));
        !seen.is_empty()
            && seen.iter().all(|p| {
                self.nodes
                    .iter()
                    .any(|n| n.port() == *p && n.pid().is_some())
            })
    }

    /// `redis+cluster://127.0.0.1:<port of the first live node>/`: a seed; the store
    /// discovers the rest.
    pub fn url(&self) -> String {
        let node = self
            .nodes
            .iter()
            .find(|n| n.pid().is_some())
            .expect("a live node");
        format!("redis+cluster://127.0.0.1:{}/", node.port())
    }

    /// Every node, masters and replicas.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The ports of the masters now, as a live node sees them.
    pub fn master_ports(&self) -> Vec<u16> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.pid().is_some())
            .expect("a live node");
        masters_of(&info(node.port(), "CLUSTER", "NODES"))
    }

    /// The port of the master that owns `key`'s slot, as a live node sees it (during a
    /// failover, the old master until a replica has taken over).
    pub fn master_of(&self, key: &str) -> u16 {
        let port = self
            .nodes
            .iter()
            .find(|n| n.pid().is_some())
            .expect("a live node")
            .port();
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .and_then(|c| c.get_connection())
            .expect("connect to a cluster node");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut conn)
            .expect("CLUSTER KEYSLOT");
        let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut conn)
            .expect("CLUSTER SLOTS");
        for range in slots {
            if let redis::Value::Array(items) = range {
                let num = |v: &redis::Value| match v {
                    redis::Value::Int(n) => *n,
                    _ => -1,
                };
                let (lo, hi) = (num(&items[0]), num(&items[1]));
                if (lo..=hi).contains(&i64::from(slot)) {
                    if let redis::Value::Array(master) = &items[2] {
                        return u16::try_from(num(&master[1])).expect("a port");
                    }
                }
            }
        }
        panic!("no master owns slot {slot}");
    }

    /// Kills (SIGKILL) the node on `port`; its replica takes over after the node timeout (2 s).
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port() == port) {
            node.stop();
        }
    }

    /// Starts the node on `port` again (same port and directory, so it keeps its cluster
    /// config): a master that a replica replaced comes back as that replica's replica.
    pub fn restart(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port() == port) {
            node.restart();
        }
    }

    /// Keeps the nodes running after this handle is gone, until process `pid` exits; then the
    /// watchdogs also remove `also` (paths, shell-quoted).
    fn detach_until_exit_of(self, pid: u32, also: &str) -> String {
        let url = self.url();
        for node in self.nodes {
            node.detach_until_exit_of(pid, also);
        }
        url
    }
}

/// One reply of `CLUSTER INFO` / `CLUSTER NODES` (or any two-word command) as text; empty if
/// the node does not answer.
fn info(port: u16, a: &str, b: &str) -> String {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .and_then(|mut c| redis::cmd(a).arg(b).query::<String>(&mut c))
        .unwrap_or_default()
}

/// The ports of the live masters (with slots) in a `CLUSTER NODES` reply.
fn masters_of(nodes: &str) -> Vec<u16> {
    let mut ports: HashMap<u16, ()> = HashMap::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() > 8 && fields[2].contains("master") && !fields[2].contains("fail") {
            if let Some(port) = fields[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
            {
                ports.insert(port, ());
            }
        }
    }
    let mut ports: Vec<u16> = ports.into_keys().collect();
    ports.sort_unstable();
    ports
}

/// One cluster (3 masters, 3 replicas) for every test process that the same parent runs (a
/// `cargo nextest` run starts a process per test; starting a cluster for each would cost
/// seconds apiece), started on first use and killed when that parent exits: its
/// `redis+cluster://` URL. The first process to get `skiff-test-cluster-<parent>.lock` in the
/// temporary directory starts it and writes the URL next to it; the others wait for the URL.
pub fn shared_cluster_url() -> String {
    static SHARED: OnceLock<String> = OnceLock::new();
    SHARED.get_or_init(start_or_join).clone()
}

fn start_or_join() -> String {
    let parent = std::os::unix::process::parent_id();
    let dir = std::env::temp_dir();
    let url_file = dir.join(format!("skiff-test-cluster-{parent}.url"));
    let lock_file = dir.join(format!("skiff-test-cluster-{parent}.lock"));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(url) = std::fs::read_to_string(&url_file) {
            if !url.is_empty() {
                return url;
            }
        }
        let claimed = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock_file)
            .is_ok();
        if claimed {
            let also = format!("'{}' '{}'", url_file.display(), lock_file.display());
            let url = RedisCluster::start().detach_until_exit_of(parent, &also);
            let tmp = dir.join(format!("skiff-test-cluster-{parent}.url.tmp"));
            std::fs::write(&tmp, &url).expect("write the cluster's URL");
            std::fs::rename(&tmp, &url_file).expect("publish the cluster's URL");
            return url;
        }
        assert!(
            Instant::now() < deadline,
            "another test process took {} but published no cluster URL",
            lock_file.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
