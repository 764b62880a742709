//! One Redis server or a Redis Cluster, behind one connection type.
//!
//! [`Conn`] is either a multiplexed connection to one server or a cluster connection (the
//! `redis` crate's async cluster client: it learns the slot map from a seed node, routes each
//! command or script call by its key, follows `MOVED` and `ASK` redirections, and refreshes
//! the map after a failover). Both pipeline the calls of every task that holds a clone, so the
//! rest of the store uses either the same way.
//!
//! A cluster URL is `redis+cluster://[user:password@]host:port[,host:port…]/` (or
//! `rediss+cluster://` for TLS): the nodes named are seeds, the others are discovered. A
//! cluster has one database, 0.

use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// A connection to one server or to a cluster (see the [module docs](self)).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How to open a [`Conn`].
#[derive(Clone)]
pub(crate) enum Connector {
    Single(Client, AsyncConnectionConfig),
    Cluster(ClusterClient),
}

impl Connector {
    pub(crate) async fn connect(&self) -> RedisResult<Conn> {
        match self {
            Connector::Single(client, config) => client
                .get_multiplexed_async_connection_with_config(config)
                .await
                .map(Conn::Single),
            Connector::Cluster(client) => client.get_async_connection().await.map(Conn::Cluster),
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Connector::Cluster(_))
    }
}

/// The seed URLs of a cluster URL (`redis+cluster://a:1,b:2/` → `redis://a:1/`,
/// `redis://b:2/`, with the credentials of the first), or `None` for a URL of one server.
pub(crate) fn cluster_seeds(url: &str) -> Option<Vec<String>> {
    cluster_seeds_with(url, &[])
}

/// [`cluster_seeds`], followed by a seed for each of `more` (`host:port`) not named already.
/// A store seeds its cluster client with every node it found at open, so that it can connect
/// again while the node its URL names is down.
pub(crate) fn cluster_seeds_with(url: &str, more: &[String]) -> Option<Vec<String>> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
        ("redis", rest)
    } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
        ("rediss", rest)
    } else {
        return None;
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (auth, hosts) = match authority.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), authority),
    };
    // The path (a cluster has database 0 only) and Skiff's own query options are not the
    // client's.
    let _ = path;
    let mut all: Vec<&str> = hosts.split(',').filter(|h| !h.is_empty()).collect();
    for h in more {
        if !all.contains(&h.as_str()) {
            all.push(h);
        }
    }
    Some(
        all.into_iter()
            .map(|h| format!("{scheme}://{auth}{h}/"))
            .collect(),
    )
}

/// Every node's `host:port` in a `CLUSTER NODES` reply (masters and replicas, failed or not).
pub(crate) fn node_addresses(nodes: &str) -> Vec<String> {
    nodes
        .lines()
        .filter_map(|line| line.split(' ').nth(1))
        .filter_map(|a| a.split('@').next())
        .filter(|a| !a.starts_with(':'))
        .map(str::to_owned)
        .collect()
}

/// A cluster client for `seeds` with these timeouts (`response: None`: as long as a call
/// takes, for blocking waits that the caller bounds).
pub(crate) fn cluster_client(
    seeds: &[String],
    connect: Duration,
    response: Option<Duration>,
) -> RedisResult<ClusterClient> {
    let mut builder = ClusterClient::builder(seeds.iter().map(String::as_str))
        .connection_timeout(connect)
        // A failover takes the cluster's node timeout and an election: calls retry meanwhile
        // (each at most the response timeout), then fail with the error.
        .retries(6)
        .min_retry_wait(100)
        .max_retry_wait(2000);
    builder = match response {
        Some(t) => builder.response_timeout(t),
        None => builder.response_timeout(Duration::from_secs(24 * 3600)),
    };
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::{cluster_seeds, cluster_seeds_with};

    #[test]
    fn cluster_urls_name_their_seeds() {
        assert_eq!(cluster_seeds("redis://h:1/0"), None);
        assert_eq!(
            cluster_seeds("redis+cluster://h:1/").unwrap(),
            vec!["redis://h:1/"]
        );
        assert_eq!(
            cluster_seeds("redis+cluster://:pw@a:1,b:2").unwrap(),
            vec!["redis://:pw@a:1/", "redis://:pw@b:2/"]
        );
        assert_eq!(
            cluster_seeds("rediss+cluster://u:p@a:1/?wait=1").unwrap(),
            vec!["rediss://u:p@a:1/"]
        );
        assert_eq!(
            cluster_seeds_with("redis+cluster://:pw@a:1/", &["a:1".into(), "b:2".into()]).unwrap(),
            vec!["redis://:pw@a:1/", "redis://:pw@b:2/"]
        );
        let nodes = "07c3 127.0.0.1:30004@40004 slave e7d1 0 1 5 connected\n\
                     e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n";
        assert_eq!(
            super::node_addresses(nodes),
            vec!["127.0.0.1:30004", "127.0.0.1:30001"]
        );
    }
}
