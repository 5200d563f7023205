//! A TCP forwarder that a test can cut and restore, to make PostgreSQL or Redis unreachable
//! for a while without touching the real service other tests share.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Forwards every connection made to [`Proxy::addr`] to `target` while it is up.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    up: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on an ephemeral loopback port, forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(watch::Sender::new(true));
        let task = tokio::spawn(accept(listener, target, Arc::clone(&up)));
        Proxy { addr, up, task }
    }

    /// Drops every forwarded connection at once and refuses new ones (they are accepted and
    /// closed straight away, as a service that went away would).
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, up: Arc<watch::Sender<bool>>) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        let mut state = up.subscribe();
        if !*state.borrow_and_update() {
            drop(inbound);
            continue;
        }
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                _ = state.wait_for(|up| !*up) => {}
            }
        });
    }
}
