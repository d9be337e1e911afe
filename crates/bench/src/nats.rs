//! The NATS `all` measures on: one fresh server, or a cluster of fresh
//! servers with routes on loopback whose event stream has a replica on
//! every server (`--cluster 3`: R3).

use anyhow::Context;
use psirt_testkit::{NatsCluster, NatsServer};

/// Fresh nats-server(s) with JetStream, stopped and removed on drop.
pub enum Nats {
    Server(NatsServer),
    Cluster(NatsCluster),
}

impl Nats {
    /// Starts one server when `servers` is 1, a cluster of `servers`
    /// otherwise, and waits until JetStream answers on each.
    pub async fn start(servers: usize) -> anyhow::Result<Self> {
        if servers <= 1 {
            let server = NatsServer::start().await.context("failed to start nats-server")?;
            return Ok(Self::Server(server));
        }
        let cluster = NatsCluster::start(servers, None)
            .await
            .with_context(|| format!("failed to start a cluster of {servers} nats-servers"))?;
        Ok(Self::Cluster(cluster))
    }

    /// Every server's URL, comma-separated (what `nats.url` takes).
    pub fn url(&self) -> String {
        match self {
            Self::Server(server) => server.url(),
            Self::Cluster(cluster) => cluster.urls(),
        }
    }

    /// Servers running.
    pub fn servers(&self) -> usize {
        match self {
            Self::Server(_) => 1,
            Self::Cluster(cluster) => cluster.servers.len(),
        }
    }

    /// Replicas of the event stream: one on every server.
    pub fn replicas(&self) -> usize {
        self.servers()
    }

    /// `one nats-server` or `a cluster of 3 nats-servers (stream R3)`.
    pub fn describe(&self) -> String {
        match self.servers() {
            1 => "one nats-server".to_owned(),
            n => format!("a cluster of {n} nats-servers (stream R{})", self.replicas()),
        }
    }
}
