//! A plain Redis connection of a test's own, to look at keys and plant them as a crash or a lost
//! reply would leave them.

use redis::AsyncCommands;

pub async fn raw(url: &str, cluster: bool) -> RawRedis {
    if cluster {
        let urls: Vec<String> = url.split(',').map(str::to_owned).collect();
        RawRedis::Cluster(redis::cluster::ClusterClient::new(urls).unwrap().get_async_connection().await.unwrap())
    } else {
        RawRedis::Single(redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap())
    }
}

/// A plain connection of the test's own, to look at and plant keys as a crash would leave them.
pub enum RawRedis {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl RawRedis {
    pub async fn is_member(&mut self, key: &str, member: &str) -> bool {
        match self {
            Self::Single(c) => c.sismember(key, member).await.unwrap(),
            Self::Cluster(c) => c.sismember(key, member).await.unwrap(),
        }
    }

    pub async fn set(&mut self, key: &str, value: &str) {
        match self {
            Self::Single(c) => c.set::<_, _, ()>(key, value).await.unwrap(),
            Self::Cluster(c) => c.set::<_, _, ()>(key, value).await.unwrap(),
        }
    }

    pub async fn get(&mut self, key: &str) -> Option<String> {
        match self {
            Self::Single(c) => c.get(key).await.unwrap(),
            Self::Cluster(c) => c.get(key).await.unwrap(),
        }
    }
}

impl RawRedis {
    pub async fn cmd<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        match self {
            Self::Single(c) => cmd.query_async(c).await.unwrap(),
            Self::Cluster(c) => cmd.query_async(c).await.unwrap(),
        }
    }
}
