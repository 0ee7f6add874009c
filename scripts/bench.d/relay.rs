//! The benchmark's floor, built as the example `bench-relay` and started by `scripts/bench`
//! (never installed, never part of the test suite): a TCP relay between each client connection
//! and the mock that copies bytes both ways and reads no HTTP. It makes the same system calls per
//! request as any proxy (a read and a write on each side) and does nothing else, so what it adds
//! to the direct lane is what this machine charges any proxy, before the proxy does any work.
//!
//! Run: `bench-relay UPSTREAM_ADDR`; it prints `relay listening on http://ADDR`.

use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};

// The same runtime as `izzi serve`: one worker per core it may run on.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let upstream: SocketAddr = std::env::args()
        .nth(1)
        .context("usage: bench-relay UPSTREAM_ADDR (host:port)")?
        .parse()
        .context("UPSTREAM_ADDR must be host:port")?;
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let mut out = std::io::stdout();
    writeln!(out, "relay listening on http://{}", listener.local_addr()?)?;
    out.flush()?;
    loop {
        let (mut client, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            // Both sides as izzi sets them: no Nagle delay on small writes.
            if client.set_nodelay(true).is_ok() && server.set_nodelay(true).is_ok() {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
    }
}
