//! [`Channels`]: gRPC channels to Strata servers, one per address, made on first use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_rpc::tls::Security;
use tonic::transport::Channel;

/// How long a channel waits for a TCP connection before the call fails (and the caller
/// tries another replica).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// One lazily connected channel per `host:port`, shared by clones of the cache.
///
/// A channel connects on its first call and reconnects by itself after a failure, so a
/// channel is kept for the life of the cache: an address that stops answering costs a failed
/// call (after [`CONNECT_TIMEOUT`]), never a stale entry to evict. Wrap the channel in the
/// service client you need with `strata_rpc::limits` (which sets the message size limits):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let channels = strata_client::Channels::new();
/// let kv = strata_rpc::limits::kv_client(channels.get("127.0.0.1:7000").unwrap());
/// # let _ = kv;
/// assert!(channels.get("not an address").is_err());
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Channels {
    by_address: Arc<Mutex<HashMap<String, Channel>>>,
    security: Security,
}

impl Channels {
    /// An empty cache of plaintext channels.
    pub fn new() -> Channels {
        Channels::default()
    }

    /// An empty cache of channels made as `security` says (mutual TLS, or plaintext).
    pub fn with_security(security: Security) -> Channels {
        Channels {
            by_address: Arc::default(),
            security,
        }
    }

    /// The channel to `address` (`host:port`), made now if the cache has none. Needs a tokio
    /// runtime (a channel's connection runs on it). Fails only for an address that is not a
    /// valid URI authority.
    pub fn get(&self, address: &str) -> Result<Channel, String> {
        let mut by_address = self.by_address.lock();
        if let Some(c) = by_address.get(address) {
            return Ok(c.clone());
        }
        let endpoint = (self.security.endpoint(address))
            .map_err(|e| format!("bad address {address}: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let channel = self.security.connect_lazy(endpoint);
        by_address.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_channel_per_address_shared_by_clones() {
        let channels = Channels::new();
        let copy = channels.clone();
        channels.get("127.0.0.1:1").unwrap();
        copy.get("127.0.0.1:1").unwrap();
        copy.get("127.0.0.1:2").unwrap();
        assert_eq!(channels.by_address.lock().len(), 2);
        assert!(channels.get("bad address").is_err());
        assert_eq!(channels.by_address.lock().len(), 2);
    }
}
